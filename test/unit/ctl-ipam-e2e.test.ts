// The built dist/bin/vxnetctl (npm run build first) against temp data dirs populated through
// the IPAM core: ipam pools/ls/show/release/gc in human and --json forms, and its errors.
// Host veth deletion is exercised for real inside a private network namespace (unshare -n),
// so nothing on the host is touched.
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { copyDist } from '../helpers/dist';
import { hostVethName } from '../../datapath/names';
import { parseIpamConf } from '../../ipam/config';
import { ipamAdd, ipamDel } from '../../ipam/core';
import type { IpamStore, Owner } from '../../ipam/store/types';
import { ip, tmpDir, tmpStore } from '../ipam/helpers/embedded';
import { type ExecResult, exec } from '../helpers/sh';



let bin = '';

t.before(async () => {
  bin = path.join(await copyDist(t), 'bin', 'vxnetctl');
});

const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const e = { ...process.env, ...extra };
  if (!('VXNET_DATA_DIR' in extra)) delete e.VXNET_DATA_DIR;
  // Run the binary as an operator would: without the test runner's loader hooks.
  delete e.NODE_OPTIONS;
  delete e.VXNET_DIST;
  return e;
};

const ctl = (args: string[], extra: Record<string, string> = {}): Promise<ExecResult> => exec(bin, args, { env: env(extra) });

const id = (c: string): string => c.repeat(64).slice(0, 64);
const ID = { a: id('a1'), b: id('b2'), c: id('c3'), d: id('d4'), e: id('e5'), h: id('f6'), i: id('07') };

interface Fixture { dataDir: string; store: IpamStore; alive: string; gone: string }

/**
 * Network alpha (10.231.0.0/24): A .2 (cni, live netns, named web), B .3 (cni, netns gone),
 * C .4 (cni, no netns), D .5 (docker, netns gone), I .6 (cni, live; H held .6 before and was
 * deleted). Network beta (dual stack): E 10.232.0.2 + fd00:232::2 on eth1 (cni, netns gone).
 */
async function populate(tt: Test): Promise<Fixture> {
  const { store, dataDir } = await tmpStore(tt);
  const dir = await tmpDir(tt);
  const alive = path.join(dir, 'netns-alive');
  writeFileSync(alive, '');
  const gone = path.join(dir, 'netns-gone');
  const alpha = parseIpamConf('alpha', { ranges: [[{ subnet: '10.231.0.0/24' }]] });
  const beta = parseIpamConf('beta', { ranges: [[{ subnet: '10.232.0.0/24' }], [{ subnet: 'fd00:232::/64' }]] });
  const own = (network: string, containerId: string, more: Partial<Owner>): Owner => ({ network, containerId, ifname: 'eth0', runtime: 'cni', ...more });
  await ipamAdd(store, alpha, own('alpha', ID.a, { name: 'web', netns: alive, aliases: ['web.local'] }));
  await ipamAdd(store, alpha, own('alpha', ID.b, { name: 'old', netns: gone }));
  await ipamAdd(store, alpha, own('alpha', ID.c, {}));
  await ipamAdd(store, alpha, own('alpha', ID.d, { runtime: 'docker', netns: gone, name: 'dock' }));
  await ipamAdd(store, alpha, own('alpha', ID.h, { name: 'before', netns: alive }));
  await ipamDel(store, 'alpha', { containerId: ID.h, ifname: 'eth0' });
  await ipamAdd(store, alpha, own('alpha', ID.i, { name: 'after', netns: alive }), [ip('10.231.0.6')]);
  await ipamAdd(store, beta, own('beta', ID.e, { ifname: 'eth1', netns: gone }));
  return { dataDir, store, alive, gone };
}

const json = <T>(r: ExecResult): T => JSON.parse(r.stdout) as T;

/** A failed command: the exit code and exactly one "vxnetctl: ..." line on stderr, no stack. */
function failed(tt: Test, r: ExecResult, code: number, message: RegExp | string): void {
  tt.equal(r.code, code, `exit ${code}`);
  tt.equal(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.split('\n').filter(Boolean);
  tt.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(r.stderr)}`);
  tt.match(lines[0], /^vxnetctl: /);
  tt.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  if (typeof message === 'string') tt.equal(lines[0], message.startsWith('vxnetctl: ') ? message : `vxnetctl: ${message}`);
  else tt.match(lines[0], message);
}

interface AllocationOut { network: string; address: string; family: number; containerId: string; ifname: string; name: string | null; runtime: string; netns: string | null; aliases: string[]; rangeSet: number; since: string }
interface HistoryOut extends AllocationOut { until: string; reason: string }

t.test('ipam pools', async (t) => {
  const f = await populate(t);
  let r = await ctl(['ipam', 'pools', '--data-dir', f.dataDir]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, [
    'NETWORK  SUBNETS                        SIZE  USED                  FREE',
    'alpha    10.231.0.0/24                   253     5                   248',
    'beta     10.232.0.0/24                   253     1                   252',
    'beta     fd00:232::/64  18446744073709551614     1  18446744073709551613',
    '',
  ].join('\n'));
  r = await ctl(['ipam', 'pools', '--data-dir', f.dataDir, '--json', '--network', 'beta']);
  t.equal(r.code, 0, r.stderr);
  const out = json<{ store: string; note: string | null; pools: Array<Record<string, unknown>> }>(r);
  t.match(out.store, /^embedded:.*ipam\.db$/);
  t.equal(out.note, null);
  t.equal(out.pools.length, 1);
  t.match(out.pools[0], {
    network: 'beta', subnets: ['10.232.0.0/24', 'fd00:232::/64'], size: '18446744073709551867', used: 2, free: '18446744073709551865',
    rangeSets: [
      { subnets: ['10.232.0.0/24'], size: '253', used: 1, free: '252', ranges: [{ subnet: '10.232.0.0/24', rangeStart: '10.232.0.1', rangeEnd: '10.232.0.254', gateway: '10.232.0.1' }] },
      { subnets: ['fd00:232::/64'], size: '18446744073709551614', used: 1, free: '18446744073709551613' },
    ],
  });
  t.match(out.pools[0].updated, /^\d{4}-\d\d-\d\dT/);
  r = await ctl(['ipam', 'pools', '--data-dir', f.dataDir, '--network', 'nope']);
  t.equal(r.code, 0);
  t.equal(r.stdout, 'no network "nope" in the IPAM store\n');
});

t.test('ipam ls', async (t) => {
  const f = await populate(t);
  let r = await ctl(['ipam', 'ls', '--data-dir', f.dataDir]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0], /^NETWORK\s+ADDRESS\s+CONTAINER\s+NAME\s+IFNAME\s+RUNTIME\s+SINCE$/);
  const rows = lines.slice(1).map((l) => l.split(/\s{2,}/));
  t.same(rows.map((c) => c.slice(0, 6)), [
    ['alpha', '10.231.0.2', ID.a.slice(0, 12), 'web', 'eth0', 'cni'],
    ['alpha', '10.231.0.3', ID.b.slice(0, 12), 'old', 'eth0', 'cni'],
    ['alpha', '10.231.0.4', ID.c.slice(0, 12), '-', 'eth0', 'cni'],
    ['alpha', '10.231.0.5', ID.d.slice(0, 12), 'dock', 'eth0', 'docker'],
    ['alpha', '10.231.0.6', ID.i.slice(0, 12), 'after', 'eth0', 'cni'],
    ['beta', '10.232.0.2', ID.e.slice(0, 12), '-', 'eth1', 'cni'],
    ['beta', 'fd00:232::2', ID.e.slice(0, 12), '-', 'eth1', 'cni'],
  ]);
  for (const row of rows) t.match(row[6], /^(just now|\d+s ago)$/);

  r = await ctl(['--json', 'ipam', 'ls', '--network', 'alpha'], { VXNET_DATA_DIR: f.dataDir });
  t.equal(r.code, 0, r.stderr);
  const out = json<{ note: string | null; allocations: AllocationOut[] }>(r);
  t.equal(out.allocations.length, 5);
  t.same(Object.keys(out.allocations[0]).sort(), ['address', 'aliases', 'containerId', 'family', 'ifname', 'name', 'netns', 'network', 'rangeSet', 'runtime', 'since']);
  t.match(out.allocations[0], { network: 'alpha', address: '10.231.0.2', family: 4, containerId: ID.a, ifname: 'eth0', name: 'web', runtime: 'cni', netns: f.alive, aliases: ['web.local'], rangeSet: 0 });
  t.equal(out.allocations[2].name, null);
  t.equal(out.allocations[2].netns, null);
  t.ok(Math.abs(Date.parse(out.allocations[0].since) - Date.now()) < 60_000);

  r = await ctl(['ipam', 'ls', '--network', 'nope', '--data-dir', f.dataDir]);
  t.equal(r.stdout, 'no addresses allocated in network "nope"\n');
});

t.test('ipam show: owner and history', async (t) => {
  const f = await populate(t);
  let r = await ctl(['ipam', 'show', '10.231.0.6', '--data-dir', f.dataDir]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^Address: +10\.231\.0\.6\nNetwork: +alpha \(10\.231\.0\.0\/24\)\nStatus: +allocated since \d{4}-\d\d-\d\dT[\d:]+Z \((just now|\d+s ago)\)\n/);
  t.match(r.stdout, new RegExp(`Container: +${ID.i}\n`));
  t.match(r.stdout, /Name: +after\n/);
  t.match(r.stdout, new RegExp(`Host veth: +${hostVethName(ID.i, 'eth0')} \\(absent\\)\n`));
  t.match(r.stdout, new RegExp(`History \\(newest first\\):\nCONTAINER +NAME +IFNAME +RUNTIME +FROM +UNTIL +REASON\n${ID.h.slice(0, 12)} +before +eth0 +cni +\\S+Z +\\S+Z +del\n$`));

  r = await ctl(['ipam', 'show', '10.231.0.6', '--data-dir', f.dataDir, '--json']);
  const out = json<{ address: string; networks: Array<{ network: string; subnets: string[]; owner: AllocationOut | null; hostVeth: { name: string; exists: boolean } | null; history: HistoryOut[] }> }>(r);
  t.equal(out.address, '10.231.0.6');
  t.equal(out.networks.length, 1);
  t.match(out.networks[0], { network: 'alpha', subnets: ['10.231.0.0/24'], owner: { containerId: ID.i, name: 'after' }, hostVeth: { name: hostVethName(ID.i, 'eth0'), exists: false } });
  t.equal(out.networks[0].history.length, 1);
  t.match(out.networks[0].history[0], { containerId: ID.h, name: 'before', reason: 'del', address: '10.231.0.6' });
  t.match(out.networks[0].history[0].until, /Z$/);

  r = await ctl(['ipam', 'show', 'fd00:232:0::2', '--data-dir', f.dataDir], {});
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Address: +fd00:232::2\nNetwork: +beta \(fd00:232::\/64\)\n/);
  t.match(r.stdout, /History: none\n$/);

  r = await ctl(['ipam', 'show', '10.231.0.100', '--data-dir', f.dataDir]);
  t.equal(r.code, 0);
  t.match(r.stdout, /Status: +free\n/);
  r = await ctl(['ipam', 'show', '10.231.0.100', '--data-dir', f.dataDir, '--json']);
  t.same(json<{ networks: unknown[] }>(r).networks, [{ network: 'alpha', subnets: ['10.231.0.0/24'], owner: null, hostVeth: null, history: [] }]);

  failed(t, await ctl(['ipam', 'show', '192.168.7.7', '--data-dir', f.dataDir]), 1, "192.168.7.7 is in no network's subnets and has no history");
  failed(t, await ctl(['ipam', 'show', '10.231.0.2', '--network', 'nope', '--data-dir', f.dataDir]), 1, 'no network "nope" in the IPAM store');
  failed(t, await ctl(['ipam', 'show', '10.232.0.9', '--network', 'alpha', '--data-dir', f.dataDir]), 1, '10.232.0.9 is outside network "alpha"\'s subnets and has no history there');
  failed(t, await ctl(['ipam', 'show', '10.231.0.300', '--data-dir', f.dataDir]), 2, 'vxnetctl: "10.231.0.300" is not an IP address');
  failed(t, await ctl(['ipam', 'show', '--data-dir', f.dataDir]), 2, 'vxnetctl: "vxnetctl ipam show" needs an ADDRESS (see vxnetctl ipam show --help)');
});

t.test('ipam release by address and by container', async (t) => {
  const f = await populate(t);
  const vethA = hostVethName(ID.a, 'eth0');
  let r = await ctl(['ipam', 'release', '10.231.0.2', '--data-dir', f.dataDir]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `released 10.231.0.2 from container ${ID.a.slice(0, 12)} eth0 (network alpha)\nhost veth ${vethA} was already gone\n`);
  r = await ctl(['ipam', 'show', '10.231.0.2', '--data-dir', f.dataDir, '--json']);
  t.match(json<{ networks: Array<{ owner: unknown; history: HistoryOut[] }> }>(r).networks[0], { owner: null, history: [{ containerId: ID.a, reason: 'vxnetctl release' }] });
  failed(t, await ctl(['ipam', 'release', '10.231.0.2', '--data-dir', f.dataDir]), 1, 'vxnetctl: 10.231.0.2 is not allocated in any network');
  failed(t, await ctl(['ipam', 'release', '10.231.0.3', '--network', 'beta', '--data-dir', f.dataDir]), 1, 'vxnetctl: 10.231.0.3 is not allocated in network "beta"');

  // One address of a dual-stack attachment: the veth stays, the attachment still holds the other.
  const vethE = hostVethName(ID.e, 'eth1');
  r = await ctl(['ipam', 'release', '10.232.0.2', '--network', 'beta', '--data-dir', f.dataDir, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.match(json<Record<string, unknown>>(r), {
    released: [{ address: '10.232.0.2', containerId: ID.e, network: 'beta' }],
    veths: [{ name: vethE, containerId: ID.e, ifname: 'eth1', result: 'kept' }],
  });

  // By container, with the 12-character id ls shows.
  r = await ctl(['ipam', 'release', '--container', ID.e.slice(0, 12), '--network', 'beta', '--data-dir', f.dataDir]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `released fd00:232::2 from container ${ID.e.slice(0, 12)} eth1 (network beta)\nhost veth ${vethE} was already gone\n`);

  r = await ctl(['ipam', 'release', '--container', ID.b, '--ifname', 'eth0', '--network', 'alpha', '--data-dir', f.dataDir, '--json']);
  t.equal(r.code, 0, r.stderr);
  const out = json<{ released: AllocationOut[]; veths: Array<Record<string, unknown>> }>(r);
  t.same(out.released.map((a) => a.address), ['10.231.0.3']);
  t.same(out.veths, [{ name: hostVethName(ID.b, 'eth0'), containerId: ID.b, ifname: 'eth0', result: 'absent' }]);

  failed(t, await ctl(['ipam', 'release', '--container', ID.b, '--network', 'alpha', '--data-dir', f.dataDir]), 1,
    `vxnetctl: no address of network "alpha" is allocated to container ${ID.b}`);
  failed(t, await ctl(['ipam', 'release', '--container', ID.c, '--ifname', 'eth9', '--network', 'alpha', '--data-dir', f.dataDir]), 1,
    `vxnetctl: no address of network "alpha" is allocated to container ${ID.c} eth9`);
  failed(t, await ctl(['ipam', 'release', '--container', ID.c, '--data-dir', f.dataDir]), 2, /--container needs --network N/);
  failed(t, await ctl(['ipam', 'release', '10.231.0.4', '--container', ID.c, '--network', 'alpha', '--data-dir', f.dataDir]), 2, /give an ADDRESS or --container, not both/);
  failed(t, await ctl(['ipam', 'release', '--data-dir', f.dataDir]), 2, /needs an ADDRESS, or --container ID --network N/);
  failed(t, await ctl(['ipam', 'release', '10.231.0.4', '--ifname', 'eth0', '--data-dir', f.dataDir]), 2, /--ifname goes with --container/);

  // Ambiguous prefixes are refused; ls still shows what is left.
  const conf = parseIpamConf('alpha', { ranges: [[{ subnet: '10.231.0.0/24' }]] });
  await ipamAdd(f.store, conf, { network: 'alpha', containerId: 'cafe' + id('1'), ifname: 'eth0', runtime: 'cni' });
  await ipamAdd(f.store, conf, { network: 'alpha', containerId: 'cafe' + id('2'), ifname: 'eth0', runtime: 'cni' });
  failed(t, await ctl(['ipam', 'release', '--container', 'cafe', '--network', 'alpha', '--data-dir', f.dataDir]), 2,
    /container id "cafe" is ambiguous in network "alpha": it matches cafe11111111, cafe22222222$/);
  r = await ctl(['ipam', 'ls', '--data-dir', f.dataDir, '--json']);
  t.same(json<{ allocations: AllocationOut[] }>(r).allocations.map((a) => a.address), ['10.231.0.4', '10.231.0.5', '10.231.0.6', '10.231.0.7', '10.231.0.8']);
});

t.test('ipam gc', async (t) => {
  const f = await populate(t);
  let r = await ctl(['ipam', 'gc', '--dry-run', '--data-dir', f.dataDir]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0], /^NETWORK\s+ADDRESS\s+CONTAINER\s+IFNAME\s+NETNS\s+HOST VETH$/);
  t.same(lines.slice(1, 4).map((l) => l.split(/\s{2,}/)), [
    ['alpha', '10.231.0.3', ID.b.slice(0, 12), 'eth0', f.gone, `${hostVethName(ID.b, 'eth0')} (absent)`],
    ['beta', '10.232.0.2', ID.e.slice(0, 12), 'eth1', f.gone, `${hostVethName(ID.e, 'eth1')} (absent)`],
    ['beta', 'fd00:232::2', ID.e.slice(0, 12), 'eth1', f.gone, `${hostVethName(ID.e, 'eth1')} (absent)`],
  ]);
  t.equal(lines[4], 'would release 3 addresses of 2 attachments whose netns is gone (checked 7 allocations; kept 2 live, 1 without a netns, 1 of other runtimes)');
  r = await ctl(['ipam', 'ls', '--data-dir', f.dataDir, '--json']);
  t.equal(json<{ allocations: unknown[] }>(r).allocations.length, 7, 'a dry run changes nothing');

  r = await ctl(['ipam', 'gc', '--network', 'beta', '--data-dir', f.dataDir, '--json']);
  t.equal(r.code, 0, r.stderr);
  const out = json<{ dryRun: boolean; checked: number; note: null; released: AllocationOut[]; kept: Record<string, number>; veths: unknown[] }>(r);
  t.match(out, { dryRun: false, checked: 2, note: null, kept: { alive: 0, noNetns: 0, otherRuntime: 0, unknown: 0 } });
  t.same(out.released.map((a) => a.address), ['10.232.0.2', 'fd00:232::2']);
  t.same(out.veths, [{ name: hostVethName(ID.e, 'eth1'), containerId: ID.e, ifname: 'eth1', result: 'absent' }]);

  r = await ctl(['ipam', 'gc', '--data-dir', f.dataDir]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^released 1 address of 1 attachment whose netns is gone \(checked 5 allocations; kept 2 live, 1 without a netns, 1 of other runtimes\)$/m);
  r = await ctl(['ipam', 'show', '10.231.0.3', '--data-dir', f.dataDir, '--json']);
  t.match(json<{ networks: Array<{ owner: unknown; history: HistoryOut[] }> }>(r).networks[0], { owner: null, history: [{ containerId: ID.b, reason: 'vxnetctl gc' }] });

  r = await ctl(['ipam', 'gc', '--data-dir', f.dataDir]);
  t.equal(r.stdout, 'nothing to collect (checked 4 allocations; kept 2 live, 1 without a netns, 1 of other runtimes)\n');
});

t.test('no store: pools and ls say so, nothing is created; show and release fail', async (t) => {
  const dir = await tmpDir(t);
  const dataDir = path.join(dir, 'vxnet');
  let r = await ctl(['ipam', 'pools', '--data-dir', dataDir]);
  t.equal(r.code, 0);
  t.equal(r.stdout, `no IPAM store at ${dataDir}/ipam.db (nothing allocated yet)\n`);
  r = await ctl(['ipam', 'ls', '--json'], { VXNET_DATA_DIR: dataDir });
  t.equal(r.code, 0);
  t.same(json<unknown>(r), { store: null, note: `no IPAM store at ${dataDir}/ipam.db (nothing allocated yet)`, allocations: [] });
  r = await ctl(['ipam', 'pools', '--json', '--data-dir', dataDir]);
  t.same(json<unknown>(r), { store: null, note: `no IPAM store at ${dataDir}/ipam.db (nothing allocated yet)`, pools: [] });
  r = await ctl(['ipam', 'gc', '--data-dir', dataDir]);
  t.equal(r.code, 0);
  t.equal(r.stdout, `no IPAM store at ${dataDir}/ipam.db (nothing allocated yet)\n`);
  failed(t, await ctl(['ipam', 'show', '10.0.0.1', '--data-dir', dataDir]), 1, `vxnetctl: no IPAM store at ${dataDir}/ipam.db (nothing allocated yet)`);
  failed(t, await ctl(['ipam', 'release', '10.0.0.1', '--data-dir', dataDir]), 1, `vxnetctl: no IPAM store at ${dataDir}/ipam.db (nothing allocated yet)`);
  t.notOk(existsSync(dataDir), 'no data dir was created');
});

t.test('usage errors exit 2 with one line', async (t) => {
  failed(t, await ctl(['frobnicate']), 2, 'vxnetctl: unknown command "frobnicate" (see vxnetctl --help)');
  failed(t, await ctl(['ipam', 'ls', '--frob']), 2, 'vxnetctl: unknown option --frob (see vxnetctl ipam ls --help)');
  failed(t, await ctl(['ipam', 'gc', '--container', 'x']), 2, /does not apply to "vxnetctl ipam gc"/);
  let r = await ctl(['--version']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^vxnetctl \d+\.\d+\.\d+\n$/);
  r = await ctl(['ipam', 'release', '-h']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^Usage: vxnetctl ipam release /);
  r = await ctl([]);
  t.equal(r.code, 0);
  t.match(r.stdout, /^Usage: vxnetctl /);
});

// Real host veths, in a namespace of their own that dies with the shell.
const canNetns = process.getuid?.() === 0 && existsSync('/usr/bin/unshare') && ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].some(existsSync);
t.test('release and gc delete the host veth (private netns)', { skip: canNetns ? false : 'needs root, unshare and ip' }, async (t) => {
  const f = await populate(t);
  const vethA = hostVethName(ID.a, 'eth0');
  const vethB = hostVethName(ID.b, 'eth0');
  const script = `
    set -e
    ip link add ${vethA} type veth peer name vxt-pa
    ip link add ${vethB} type veth peer name vxt-pb
    "$BIN" ipam release 10.231.0.2 --data-dir "$DATA"
    echo ---
    "$BIN" ipam gc --network alpha --data-dir "$DATA"
    echo ---
    ip -o link show | grep -c '${vethA}\\|${vethB}\\|vxt-p' || true
  `;
  const r = await exec('unshare', ['-n', 'bash', '-c', script], { env: env({ BIN: bin, DATA: f.dataDir }) });
  t.equal(r.code, 0, r.stderr);
  const [release, gc, left] = r.stdout.split('---\n');
  t.equal(release, `released 10.231.0.2 from container ${ID.a.slice(0, 12)} eth0 (network alpha)\ndeleted host veth ${vethA}\n`);
  t.match(gc, new RegExp(`^alpha +10\\.231\\.0\\.3 +${ID.b.slice(0, 12)} +eth0 +\\S+ +${vethB} \\(deleted\\)$`, 'm'));
  t.equal(left.trim(), '0', 'both veths and their peers are gone');
});
