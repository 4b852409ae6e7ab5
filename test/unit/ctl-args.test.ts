// ctl/args.ts: which command the words name, what each accepts, and the one-line usage errors.
import t from 'tap';
import { Invocation, USAGE, UsageError, commandHelp, parseCommandLine } from '../../ctl/args';

const run = (argv: string[]): Extract<Invocation, { kind: 'run' }> => {
  const inv = parseCommandLine(argv);
  if (inv.kind !== 'run') throw new Error(`expected a command, got ${inv.kind}`);
  return inv;
};

t.test('commands and their options', async (t) => {
  let inv = run(['ipam', 'ls']);
  t.equal(inv.command, 'ipam ls');
  t.same(inv.positionals, []);
  inv = run(['ipam', 'list', '--network', 'n1']);
  t.equal(inv.command, 'ipam ls', 'list is an alias of ls');
  t.equal(inv.values.network, 'n1');
  inv = run(['--data-dir', '/d', '--json', 'ipam', 'show', '10.0.0.2', '--network=n']);
  t.equal(inv.command, 'ipam show');
  t.same(inv.positionals, ['10.0.0.2']);
  t.equal(inv.values['data-dir'], '/d');
  t.equal(inv.values.json, true);
  t.equal(inv.values.network, 'n');
  inv = run(['ipam', 'release', '--container', 'abc', '--ifname', 'eth1', '--network', 'n', '--json']);
  t.equal(inv.command, 'ipam release');
  t.equal(inv.values.container, 'abc');
  t.equal(inv.values.ifname, 'eth1');
  inv = run(['ipam', 'gc', '--dry-run', '--data-dir', '/x']);
  t.equal(inv.values['dry-run'], true);
  inv = run(['install', '--conflist', '--subnet', '10.1.0.0/16', '--subnet', 'fd01::/64', '--prefix', '/p']);
  t.equal(inv.command, 'install');
  t.same(inv.values.subnet, ['10.1.0.0/16', 'fd01::/64']);
  t.equal(inv.values.conflist, true);
});

t.test('help and version', async (t) => {
  t.same(parseCommandLine([]), { kind: 'help', text: USAGE });
  t.same(parseCommandLine(['--help']), { kind: 'help', text: USAGE });
  t.same(parseCommandLine(['-h']), { kind: 'help', text: USAGE });
  t.same(parseCommandLine(['help']), { kind: 'help', text: USAGE });
  for (const argv of [['ipam', 'ls', '--help'], ['ipam', 'ls', '-h'], ['help', 'ipam', 'ls'], ['-h', 'ipam', 'ls', '--network', 'x']]) {
    t.same(parseCommandLine(argv), { kind: 'help', text: commandHelp('ipam ls') }, argv.join(' '));
  }
  const group = parseCommandLine(['ipam', '--help']);
  t.equal(group.kind, 'help');
  t.match(group.kind === 'help' ? group.text : '', /ipam release \(ADDRESS/);
  t.match(commandHelp('ipam release'), /^Usage: vxnetctl ipam release \(ADDRESS \[--network N\] \| --container ID \[--ifname IF\] --network N\)\n/);
  t.match(commandHelp('install'), /default \/opt\/cni\/bin/);
  t.equal(parseCommandLine(['--version']).kind, 'version');
  t.equal(parseCommandLine(['--version', '--json']).kind, 'version');
  t.match(USAGE, /Exit status: 0 success, 1 failure, 2 usage error/);
});

t.test('usage errors are one line naming the problem and the help to read', async (t) => {
  const cases: Array<[string[], string]> = [
    [['bogus'], 'unknown command "bogus" (see vxnetctl --help)'],
    [['ipam', 'bogus'], 'unknown command "ipam bogus" (see vxnetctl ipam --help)'],
    [['help', 'bogus'], 'unknown command "bogus" (see vxnetctl --help)'],
    [['ipam', 'ls', '--bogus'], 'unknown option --bogus (see vxnetctl ipam ls --help)'],
    [['-x', 'ipam', 'ls'], 'unknown option -x (see vxnetctl ipam ls --help)'],
    [['--bogus'], 'unknown option --bogus (see vxnetctl --help)'],
    [['ipam', 'ls', '--network'], 'option --network needs a value (see vxnetctl ipam ls --help)'],
    [['ipam', 'ls', '--network', '--json'], 'option --network needs a value (see vxnetctl ipam ls --help)'],
    [['ipam', 'ls', '--json=yes'], 'option --json takes no value (see vxnetctl ipam ls --help)'],
    [['ipam', 'ls', '--dry-run'], 'option --dry-run does not apply to "vxnetctl ipam ls" (see vxnetctl ipam ls --help)'],
    [['ipam', 'pools', '--container', 'x'], 'option --container does not apply to "vxnetctl ipam pools" (see vxnetctl ipam pools --help)'],
    [['network', 'ls', '--api', 'http://h:1'], 'option --api does not apply to "vxnetctl network ls": overlay network definitions are read from the cluster store (--store URL or $VXNET_STORE); through a vxnetd\'s API: GET /api/v1/networks, vxnetctl hosts --api URL, vxnetctl ipam pools --api URL'],
    [['lb', 'ls', '--api', 'http://h:1'], 'option --api does not apply to "vxnetctl lb ls": it reads vxnet-lb\'s own listener (--lb URL or $VXNET_LB); a vxnetd\'s API shows its host\'s edge routes at GET /api/v1/edge/routes'],
    [['install', '--network', 'n', '--dry-run'], 'option --dry-run does not apply to "vxnetctl install" (see vxnetctl install --help)'],
    [['ipam', 'ls', 'extra'], 'unexpected argument "extra" to "vxnetctl ipam ls" (see vxnetctl ipam ls --help)'],
    [['ipam', 'show', '10.0.0.1', '10.0.0.2'], 'unexpected argument "10.0.0.2" to "vxnetctl ipam show" (see vxnetctl ipam show --help)'],
    [['ipam', 'ls', '--version'], 'option --version does not apply to "vxnetctl ipam ls" (see vxnetctl ipam ls --help)'],
    [['ipam', 'ls', '--network='], 'option --network needs a non-empty value (see vxnetctl ipam ls --help)'],
    [['--data-dir=', 'ipam', 'ls'], 'option --data-dir needs a non-empty value (see vxnetctl ipam ls --help)'],
  ];
  for (const [argv, message] of cases) {
    t.throws(() => parseCommandLine(argv), { name: 'UsageError', message }, argv.join(' '));
  }
  try {
    parseCommandLine(['ipam', 'ls', '--bogus']);
  } catch (err) {
    t.ok(err instanceof UsageError);
    t.notMatch((err as Error).message, /\n/);
  }
});
