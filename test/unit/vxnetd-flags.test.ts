// bin/vxnetd/flags.ts: vxnetd's command line and environment, parsed once into typed values (the
// services take them as they are), every mistake a UsageError naming the flag.
import t from 'tap';
import { formatCidr, formatIp, parseCidr, parseIp } from '../../ipam/addr';
import { HELP, type VxnetdConfig, parseOverlayNetworkFlag, parseVxnetdArgs } from '../../bin/vxnetd/flags';

/** The config the arguments give; fails the test when they ask for help or the version. */
function run(argv: string[], env: NodeJS.ProcessEnv = {}): VxnetdConfig {
  const inv = parseVxnetdArgs(argv, env);
  if (inv.action !== 'run') throw new Error(`${argv.join(' ')}: ${inv.action}, not run`);
  return inv.config;
}

t.test('vxnetd command line', async (t) => {
  t.same(run([]), {
    socket: '/run/docker/plugins/vxnet.sock', cniSocket: '/run/vxnet/cni.sock', dataDir: '/var/lib/vxnet', dockerSocket: '/var/run/docker.sock', podmanSocket: '/run/podman/podman.sock',
    reconcileIntervalMs: 60_000, reconcileGraceMs: 60_000, overlayDir: '/run/vxnet/overlay', overlay: undefined, logLevel: 'info',
    dns: {
      domain: 'vxnet', listen: ['198.51.100.1', '198.51.100.2', '198.51.100.3'].map((a) => ({ ip: parseIp(a), port: 53 })), link: 'vxnet-dns',
      upstreams: undefined, ttl: 5, allow: [], stateFile: '/run/vxnet/dns.json',
    },
    httpListen: { ip: parseIp('127.0.0.1'), port: 8123 }, api: {},
    vip: { range: parseCidr('198.18.0.0/15'), range6: parseCidr('fd76:786e:6574::/64'), table: 'vxnet-vip', link: 'vxnet-dns' },
  }, 'the defaults');
  t.equal(run(['--http-listen', '']).httpListen, undefined, '--http-listen "" serves no HTTP API');
  t.same(run(['--http-listen', '127.0.0.1:0']).httpListen, { ip: parseIp('127.0.0.1'), port: 0 }, 'port 0: the kernel chooses');
  t.throws(() => run(['--http-listen', 'nowhere']), /--http-listen "nowhere": expected ADDRESS:PORT/);
  t.match(run(['--socket', '/x/y.sock', '--data-dir', '/d', '--log-level', 'debug', '--reconcile-interval', '0', '--reconcile-grace', '5']),
    { socket: '/x/y.sock', dataDir: '/d', logLevel: 'debug', reconcileIntervalMs: 0, reconcileGraceMs: 5000 });
  t.match(run([], { DOCKER_HOST: 'unix:///tmp/d.sock', VXNET_DATA_DIR: '/e', VXNET_LOG_LEVEL: 'warn' }), { dockerSocket: '/tmp/d.sock', dataDir: '/e', logLevel: 'warn' });
  t.match(run(['--docker-socket', '/a.sock'], { DOCKER_HOST: 'unix:///tmp/d.sock' }), { dockerSocket: '/a.sock' }, '--docker-socket wins over $DOCKER_HOST');
  t.match(run([], { DOCKER_HOST: 'tcp://h:2375' }), { dockerSocket: '/var/run/docker.sock' }, 'a $DOCKER_HOST that is not unix:// is not ours to use');
  t.equal(run(['--no-docker']).dockerSocket, undefined);
  t.equal(run(['--podman-socket', '/tmp/p.sock']).podmanSocket, '/tmp/p.sock');
  t.equal(run(['--podman-socket', '']).podmanSocket, undefined, '--podman-socket "": none');
  t.throws(() => run(['--podman-socket', 'p.sock']), { name: 'UsageError', message: /^--podman-socket "p.sock": must be an absolute path/ });
  t.equal(run(['--cni-socket', '/tmp/c.sock']).cniSocket, '/tmp/c.sock');
  t.equal(run(['--cni-socket', '']).cniSocket, undefined, '--cni-socket "": none');
  t.equal(run(['--reconcile-interval', '2147483']).reconcileIntervalMs, 2_147_483_000, 'the longest interval a timer takes');
  t.same(parseVxnetdArgs(['--help'], {}), { action: 'help' });
  t.same(parseVxnetdArgs(['--version'], {}), { action: 'version' });
  const bad: Array<[string[], RegExp]> = [
    [['--bogus'], /Unknown option '--bogus'/],
    [['--log-level', 'loud'], /^--log-level "loud": must be one of debug, info, warn, error$/],
    [['--socket', 'rel.sock'], /^--socket "rel.sock": must be an absolute path ending in .sock/],
    [['--socket', '/x/y'], /^--socket "\/x\/y"/],
    [['--data-dir', 'rel'], /^--data-dir "rel": must be an absolute path$/],
    [['--reconcile-interval', 'x'], /^--reconcile-interval "x": must be a whole number of seconds/],
    [['--reconcile-interval', '2147484'], /^--reconcile-interval "2147484": must be a whole number of seconds, 0 to 2147483$/],
    [['--reconcile-grace=-1'], /^--reconcile-grace "-1"/],
    [['--no-docker', '--docker-socket', '/x'], /^--docker-socket and --no-docker exclude each other$/],
    [['extra'], /Unexpected argument 'extra'/],
    [['--cni-socket', 'rel.sock'], /^--cni-socket "rel.sock": must be an absolute path \(or "" for none\)$/],
    [['--overlay-dir', 'rel'], /^--overlay-dir "rel"/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseVxnetdArgs(argv, {}), { name: 'UsageError', message }, argv.join(' '));
  for (const flag of ['--socket', '--cni-socket', '--data-dir', '--docker-socket', '--podman-socket', '--no-docker', '--reconcile-interval', '--reconcile-grace', '--log-level', '--overlay-dir', '--version', '--help']) {
    t.match(HELP, flag, `--help documents ${flag}`);
  }
  const opening = HELP.slice(0, HELP.indexOf('Usage:'));
  for (const job of ['Docker', 'CNI', 'DNS', 'HTTP API', 'overlay']) t.match(opening, job, `--help's opening paragraph names ${job}`);
});

t.test('vxnetd command line: the overlay flags, typed', async (t) => {
  t.equal(run([]).overlay, undefined, 'no --store: no overlay agent');
  t.same(run(['--store', 'etcd://127.0.0.1:2379,[::1]:2380']).overlay, {
    endpoints: ['127.0.0.1:2379', '[::1]:2380'], networks: [], join: [], ttlSeconds: 10, graceMs: 600_000,
  }, 'defaults; the store as its endpoints');
  t.same(run(['--store', 'etcd://h'], {}).overlay?.endpoints, ['h:2379'], 'the default port');
  t.same(run([], { VXNET_STORE: 'etcd://h:2379' }).overlay?.endpoints, ['h:2379'], '$VXNET_STORE');
  t.same(run(['--store', 'etcd://a:1'], { VXNET_STORE: 'etcd://h:2379' }).overlay?.endpoints, ['a:1'], '--store wins over $VXNET_STORE');
  const full = run(['--store', 'etcd://h:2379', '--no-docker', '--host-id', 'node-1', '--underlay', '192.0.2.7', '--lease-ttl', '3', '--block-grace', '30',
    '--overlay-dir', '/tmp/ov', '--overlay-network', 'ov1,vni=4242,subnet=10.237.0.0/16,subnet=fd37::/48,block=26,block6=64,mtu=1400',
    '--overlay-network', '{"name":"ov2","vni":7,"subnets":["10.240.0.0/16"]}', '--overlay-network', 'ov3']);
  t.equal(full.dockerSocket, undefined);
  t.equal(full.overlayDir, '/tmp/ov');
  const ov = full.overlay!;
  t.match(ov, { hostId: 'node-1', ttlSeconds: 3, graceMs: 30_000, join: ['ov3'] }, 'every overlay flag');
  t.same(ov.underlay, parseIp('192.0.2.7'), 'the underlay as an Ip');
  t.same(ov.networks.map((n) => ({ ...n, subnets: n.subnets.map(formatCidr) })), [
    { name: 'ov1', vni: 4242, subnets: ['10.237.0.0/16', 'fd37::/48'], blockPrefix: { 4: 26, 6: 64 }, mtu: 1400, port: 4789 },
    { name: 'ov2', vni: 7, subnets: ['10.240.0.0/16'], blockPrefix: { 4: 24 }, mtu: undefined, port: 4789 },
  ], 'definitions as OverlayNetwork values (defaults filled in)');
  t.equal(formatIp(run(['--store', 'etcd://h', '--underlay', 'fd00::7']).overlay!.underlay!), 'fd00::7', 'an IPv6 underlay');
  const one = parseOverlayNetworkFlag('n,vni=1,subnet=10.1.0.0/16,port=4790');
  t.ok('define' in one && one.define.port === 4790 && one.define.vni === 1);
  t.same(parseOverlayNetworkFlag('ov-1'), { join: 'ov-1' }, 'a name alone: join the cluster\'s definition');
  t.same(parseOverlayNetworkFlag(' ov-1 '), { join: 'ov-1' });
  t.match(run(['--overlay-dir', '/x']), { overlayDir: '/x' }, '--overlay-dir without --store: the Docker driver reads overlay state there');
  t.throws(() => parseOverlayNetworkFlag('bad name!'), { name: 'UsageError', message: /^--overlay-network "bad name!"/ }, 'not a name, not a spec');
  const bad: Array<[string[], RegExp]> = [
    [['--overlay-network', 'n,vni=1,subnet=10.1.0.0/16'], /^--overlay-network needs --store/],
    [['--host-id', 'h'], /^--host-id needs --store/], [['--underlay', '10.0.0.1'], /^--underlay needs --store/],
    [['--lease-ttl', '5'], /^--lease-ttl needs --store/], [['--block-grace', '5'], /^--block-grace needs --store/],
    [['--store', 'http://h:2379'], /^--store: cluster store "http:\/\/h:2379" is not etcd:\/\//], [['--store', 'etcd://'], /^--store: .*names no etcd endpoint/],
    [['--store', 'etcd://h:99999'], /^--store: .*"h:99999" is not host:port/],
    [['--store', 'etcd://h', '--overlay-network', 'n,vni=1'], /^--overlay-network "n,vni=1": subnets: at least one subnet/],
    [['--store', 'etcd://h', '--overlay-network', 'n,vni=x,subnet=10.1.0.0/16'], /vni="x" is not a number/],
    [['--store', 'etcd://h', '--overlay-network', 'n,vni=1,subnet=10.1.0.0/16,colour=blue'], /unknown field "colour=blue"/],
    [['--store', 'etcd://h', '--overlay-network', '{bad json'], /not valid JSON/],
    [['--store', 'etcd://h', '--overlay-network', '[1]'], /^--overlay-network "\[1\]": /],
    [['--store', 'etcd://h', '--overlay-network', 'n,vni=1,subnet=10.1.0.1/16'], /host bits set/],
    [['--store', 'etcd://h', '--overlay-network', 'n,vni=1,subnet=10.1.0.0/16,block=8'], /blockPrefix: 8/],
    [['--store', 'etcd://h', '--overlay-network', 'n,vni=1,subnet=10.1.0.0/16', '--overlay-network', 'n,vni=2,subnet=10.2.0.0/16'], /network "n" given twice/],
    [['--store', 'etcd://h', '--overlay-network', 'n', '--overlay-network', 'n,vni=2,subnet=10.2.0.0/16'], /network "n" given twice/],
    [['--store', 'etcd://h', '--underlay', 'nowhere'], /^--underlay "nowhere": not an IP address$/],
    [['--store', 'etcd://h', '--underlay', 'fe80::1%eth0'], /^--underlay "fe80::1%eth0": not an IP address$/],
    [['--store', 'etcd://h', '--lease-ttl', '0'], /^--lease-ttl "0": must be a whole number of seconds, 1 to 2147483$/],
    [['--store', 'etcd://h', '--lease-ttl', '1.5'], /^--lease-ttl "1.5"/], [['--store', 'etcd://h', '--lease-ttl', '2147484'], /^--lease-ttl "2147484"/],
    [['--store', 'etcd://h', '--block-grace=-1'], /^--block-grace "-1"/], [['--store', 'etcd://h', '--overlay-dir', 'rel'], /^--overlay-dir "rel"/],
    [['--store', 'etcd://h', '--host-id', 'a b'], /^--host-id "a b": 1-253 printable characters, no spaces$/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseVxnetdArgs(argv, {}), { name: 'UsageError', message }, argv.join(' '));
  for (const flag of ['--store', '--overlay-network', '--host-id', '--underlay', '--lease-ttl', '--block-grace', '--overlay-dir', '$VXNET_STORE']) t.match(HELP, flag);
});

t.test('vxnetd command line: the DNS flags, typed', async (t) => {
  const hp = (x: { ip: Parameters<typeof formatIp>[0]; port: number }): string => `${formatIp(x.ip)}:${x.port}`;
  t.equal(run(['--no-dns']).dns, undefined, '--no-dns: no DNS service');
  const dns = run(['--dns-domain', 'Corp.Example.', '--dns-listen', '127.0.0.1:5353', '--dns-listen', '[::1]:0', '--dns-listen', '10.9.0.1',
    '--dns-upstream', '9.9.9.9', '--dns-upstream', '[2620:fe::fe]:5300', '--dns-ttl', '0', '--dns-allow', '10.200.0.0/16', '--dns-allow', '192.0.2.7',
    '--dns-allow', '10.1.2.3/8', '--dns-state', '/tmp/x/dns.json']).dns;
  if (!dns) throw new Error('no dns');
  t.equal(dns.domain, 'corp.example', 'the domain normalised');
  t.same(dns.listen.map(hp), ['127.0.0.1:5353', '::1:0', '10.9.0.1:53'], 'repeatable, port 53 unless given');
  t.equal(dns.link, undefined, 'explicit listen addresses are the operator\'s: no link');
  t.same(dns.upstreams?.map(hp), ['9.9.9.9:53', '2620:fe::fe:5300']);
  t.equal(dns.ttl, 0);
  t.same(dns.allow.map(formatCidr), ['10.200.0.0/16', '192.0.2.7/32', '10.0.0.0/8'], 'a bare address is a host; host bits dropped');
  t.equal(dns.stateFile, '/tmp/x/dns.json');
  t.equal(run(['--dns-link', 'vxt-dns0']).dns?.link, 'vxt-dns0');
  t.equal(run([]).dns?.upstreams, undefined, 'no --dns-upstream: resolv.conf at start');
  const bad: Array<[string[], RegExp]> = [
    [['--dns-domain', 'a..b'], /^--dns-domain "a\.\.b": /], [['--dns-domain', 'b@d'], /^--dns-domain "b@d": .*outside/],
    [['--dns-listen', 'localhost'], /^--dns-listen "localhost": expected ADDRESS\[:PORT\]/], [['--dns-listen', '127.0.0.1:70000'], /^--dns-listen "127.0.0.1:70000"/],
    [['--dns-upstream', '8.8.8.8:x'], /^--dns-upstream "8.8.8.8:x"/],
    [['--dns-ttl=-1'], /^--dns-ttl "-1": must be a whole number of seconds, 0 to 86400$/], [['--dns-ttl', '86401'], /^--dns-ttl "86401"/],
    [['--dns-ttl', '1.5'], /^--dns-ttl "1.5"/],
    [['--dns-allow', '10.0.0.0/33'], /^--dns-allow "10.0.0.0\/33": not a CIDR/], [['--dns-allow', 'lan'], /^--dns-allow "lan"/],
    [['--dns-link', 'a-name-longer-than-15'], /^--dns-link "a-name-longer-than-15": not a link name/],
    [['--dns-link', 'vxt-d', '--dns-listen', '127.0.0.1'], /^--dns-link holds the default addresses only/],
    [['--dns-state', 'rel.json'], /^--dns-state "rel.json": must be an absolute path$/],
    [['--no-dns', '--dns-ttl', '5'], /^--dns-ttl and --no-dns exclude each other$/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseVxnetdArgs(argv, {}), { name: 'UsageError', message }, argv.join(' '));
  for (const flag of ['--dns-domain', '--dns-listen', '--dns-link', '--dns-upstream', '--dns-ttl', '--dns-allow', '--dns-state', '--no-dns', '198.51.100.1']) {
    t.match(HELP, flag, `--help documents ${flag}`);
  }
});

t.test('VIP flags', async (t) => {
  const v = run(['--vip-range', '10.250.7.1/24', '--vip-range6', 'fd00:1::/64', '--vip-table', 'vxt-vip1', '--vip-link', 'vxt-l1']).vip;
  t.equal(v && formatCidr(v.range), '10.250.7.0/24', 'host bits dropped');
  t.equal(v?.range6 && formatCidr(v.range6), 'fd00:1::/64');
  t.match(v, { table: 'vxt-vip1', link: 'vxt-l1' });
  t.equal(run(['--vip-range6', '']).vip?.range6, undefined, '--vip-range6 "": IPv4 only');
  t.equal(run(['--dns-link', 'vxt-d']).vip?.link, 'vxt-d', 'the VIP link defaults to the DNS link');
  t.equal(run(['--no-vip']).vip, undefined, '--no-vip: no VIP service');
  const bad: Array<[string[], RegExp]> = [
    [['--vip-range', '198.18.0.0'], /^--vip-range "198.18.0.0": not a CIDR/],
    [['--vip-range', 'fd00::/64'], /^--vip-range "fd00::\/64": expected an IPv4 range$/],
    [['--vip-range6', '10.0.0.0/8'], /^--vip-range6 "10.0.0.0\/8": expected an IPv6 range$/],
    [['--vip-range', '10.0.0.0/31'], /too small/],
    [['--vip-table', 'a b'], /^--vip-table "a b": not an nftables table name/],
    [['--vip-link', 'much-too-long-link-name'], /^--vip-link "much-too-long-link-name": not a link name/],
    [['--no-vip', '--vip-range', '10.0.0.0/24'], /^--vip-range and --no-vip exclude each other$/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseVxnetdArgs(argv, {}), { name: 'UsageError', message }, argv.join(' '));
  for (const flag of ['--vip-range', '--vip-range6', '--vip-table', '--vip-link', '--no-vip', '198.18.0.0/15', 'fd76:786e:6574::/64', '/v1/vips']) {
    t.match(HELP, flag, `--help documents ${flag}`);
  }
});
