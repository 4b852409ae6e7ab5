// vxnetctl hosts: usage errors and an unreachable store in-process (no etcd needed), then the
// built dist/bin/vxnetctl against a real etcd on loopback (no root) with a host registered the
// way the agent does it (host and member records under a lease, a block leased).
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import t from 'tap';
import { copyDist } from '../helpers/dist';
import { Etcd3 } from 'etcd3';
import { ctl } from '../helpers/ctl';
import { Ip, parseIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { parseOverlayNetwork } from '../../overlay/plan';
import { DEFAULT_BLOCK_GRACE_SECONDS, DEFAULT_OVERLAY_PREFIX, encodeHost, encodeMember } from '../../overlay/records';
import { OverlayRegistry } from '../../overlay/registry';
import { ETCD, startEtcd } from '../helpers/etcd';
import { hostsOptions, withWaitingRows } from '../../ctl/hosts';
import { parseCidr } from '../../ipam/addr';
import { type ExecResult, exec } from '../helpers/sh';

/** A loopback port nothing listens on (the kernel hands it out, then it is closed). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

t.test('hosts: --block-grace defaults to the overlay agent\'s grace period', async (t) => {
  t.equal(hostsOptions({ store: 'etcd://h' }, {}).graceMs, DEFAULT_BLOCK_GRACE_SECONDS * 1000, 'the overlay\'s default, not one of its own');
  t.equal(hostsOptions({ store: 'etcd://h', 'block-grace': '6' }, {}).graceMs, 6000, 'as given');
  const help = await ctl(['hosts', '--help']);
  t.match(help.stdout, `its --block-grace, default ${DEFAULT_BLOCK_GRACE_SECONDS})`, 'the help names the same default');
});

t.test('hosts: usage errors are one line, exit 2', async (t) => {
  const missing = await ctl(['hosts']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^vxnetctl: hosts needs the cluster store: --store etcd:\/\/HOST:PORT\[,HOST:PORT\.\.\.\] or \$VXNET_STORE \(see vxnetctl hosts --help\)\n$/);
  t.equal(missing.stdout, '');
  for (const [argv, re] of [
    [['hosts', '--store', 'http://h:2379'], /^vxnetctl: --store: cluster store "http:\/\/h:2379" is not etcd:\/\//],
    [['hosts', '--store', ''], /^vxnetctl: option --store needs a non-empty value/],
    [['hosts', '--store', 'etcd://h', '--block-grace', 'soon'], /^vxnetctl: --block-grace "soon": must be a whole number of seconds/],
    [['hosts', 'extra', '--store', 'etcd://h'], /^vxnetctl: unexpected argument "extra" to "vxnetctl hosts"/],
    [['hosts', '--network', 'x'], /^vxnetctl: option --network does not apply to "vxnetctl hosts"/],
    [['ipam', 'ls', '--store', 'etcd://h'], /^vxnetctl: option --store does not apply to "vxnetctl ipam ls"/],
  ] as const) {
    const r = await ctl([...argv]);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, re, argv.join(' '));
    t.equal(r.stderr.split('\n').length, 2, 'one line');
  }
  const help = await ctl(['hosts', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: vxnetctl hosts \[--store etcd:\/\/HOST:PORT/);
  t.match(help.stdout, /\$VXNET_STORE/);
  t.match((await ctl(['--help'])).stdout, /\n {2}hosts {11}overlay hosts in the cluster store/, 'listed in vxnetctl --help');
  t.match((await ctl(['help', 'hosts'])).stdout, /^Usage: vxnetctl hosts/);
});

t.test('hosts: etcd unreachable is one line and exit 1 within a few seconds', async (t) => {
  const port = await closedPort();
  for (const [argv, env] of [[['hosts', '--store', `etcd://127.0.0.1:${port}`], {}], [['hosts', '--json'], { VXNET_STORE: `etcd://127.0.0.1:${port}` }]] as const) {
    const started = Date.now();
    const r = await ctl([...argv], { ...env });
    const ms = Date.now() - started;
    t.equal(r.code, 1, argv.join(' '));
    t.match(r.stderr, new RegExp(`^vxnetctl: cannot reach etcd at 127\\.0\\.0\\.1:${port}: .+\\n$`));
    t.equal(r.stdout, '');
    t.ok(ms < 5000, `gave up after ${ms} ms`);
  }
});

t.test('hosts: a waiting host\'s network goes into its row (or a row after its own)', async (t) => {
  const shortage = { subnet: parseCidr('10.235.0.0/23')!, blockPrefix: 24, blocks: 2, holders: [], nextReclaimableAt: undefined };
  const rows = [
    ['h1', '192.0.2.1', 'ov', 'mac', '10.235.0.0', '10.235.0.0/24', 'alive (ttl 3s)'],
    ['h3', '192.0.2.3', '-', '-', '-', '-', 'alive (ttl 2s)'],
    ['h4', '192.0.2.4', 'other', 'mac', '10.9.0.0', '10.9.0.0/24', 'alive (ttl 1s)'],
  ];
  const out = withWaitingRows(rows, [{ hostId: 'h3', network: 'ov', shortage }, { hostId: 'h4', network: 'ov', shortage }, { hostId: 'gone', network: 'ov', shortage }]);
  t.same(out, [
    rows[0],
    ['h3', '192.0.2.3', 'ov', '-', '-', 'none (subnet full)', 'alive (ttl 2s)'],
    rows[2],
    ['h4', '192.0.2.4', 'ov', '-', '-', 'none (subnet full)', 'alive (ttl 1s)'],
  ]);
  t.same(rows[1][2], '-', 'the input is left as it was');
});

const ip = (s: string): Ip => parseIp(s) as Ip;

if (!existsSync(ETCD)) {
  t.test('hosts against a real etcd', { skip: `needs etcd (${ETCD}, Debian's etcd-server)` }, async () => undefined);
} else {
  t.test('hosts against a real etcd: the built vxnetctl lists a registered host', async (t) => {
    t.setTimeout(60_000);
    const dist = await copyDist(t, ['bin/vxnetctl', 'proto/rpc.proto']);
    const bin = path.join(dist, 'bin', 'vxnetctl');
    const etcd = await startEtcd(t);
    const client = new Etcd3({ hosts: etcd.clientUrls });
    t.teardown(() => client.close());
    const reg = new OverlayRegistry(client, DEFAULT_OVERLAY_PREFIX, createLogger('ctl-hosts-test', 'error'));
    const network = parseOverlayNetwork({ name: 'vxt-ov', vni: 4711, subnets: ['10.233.0.0/16'], blockPrefix: 24 });
    await reg.ensureNetwork(network);
    const { block } = await reg.leaseBlock(network, network.subnets[0], 'vxt-host-1', Date.now, 600_000);
    await reg.leaseBlock(network, network.subnets[0], 'vxt-gone', Date.now, 600_000);
    const lease = client.lease(30);
    await lease.grant();
    t.teardown(() => lease.revoke().catch(() => undefined));
    await lease.put(reg.k.host('vxt-host-1')).value(encodeHost({ id: 'vxt-host-1', underlay: ip('192.0.2.11'), since: Date.now(), networks: ['vxt-ov'] })).exec();
    await lease.put(reg.k.member('vxt-ov', 'vxt-host-1')).value(encodeMember({ underlay: ip('192.0.2.11'), mac: '02:00:00:00:00:11', blocks: [block] })).exec();

    const env: NodeJS.ProcessEnv = { ...process.env, VXNET_STORE: '' };
    delete env.NODE_OPTIONS;
    const run = (args: string[], extra: Record<string, string> = {}): Promise<ExecResult> => exec(bin, args, { env: { ...env, ...extra } });

    const j = await run(['hosts', '--json', '--store', etcd.storeUrl]);
    t.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as { store: string; hosts: Array<Record<string, unknown>>; blocks: Array<Record<string, unknown>> };
    t.equal(doc.store, etcd.storeUrl);
    t.equal(doc.hosts.length, 1);
    t.match(doc.hosts[0], {
      id: 'vxt-host-1', underlay: '192.0.2.11', lease: /^alive \(ttl \d+s\)$/, ttlSeconds: Number,
      networks: [{ network: 'vxt-ov', mac: '02:00:00:00:00:11', vteps: ['10.233.0.0'], blocks: ['10.233.0.0/24'] }],
    });
    t.same(doc.blocks.map((b) => `${b.block} ${b.hostId} ${b.state}`).sort(), ['10.233.0.0/24 vxt-host-1 held', '10.233.1.0/24 vxt-gone orphaned']);
    t.equal(doc.blocks.find((b) => b.hostId === 'vxt-gone')?.orphanedAt, null, 'JSON says null, not nothing');
    t.same((doc as unknown as { waiting: unknown[] }).waiting, [], 'nobody waits: the subnet has free blocks');

    const h = await run(['hosts'], { VXNET_STORE: etcd.storeUrl });
    t.equal(h.code, 0, h.stderr);
    const lines = h.stdout.trimEnd().split('\n');
    t.match(lines[0], /^HOST\s+UNDERLAY\s+NETWORK\s+VTEP MAC\s+VTEP IPS\s+BLOCKS\s+LEASE$/);
    t.match(lines[1], /^vxt-host-1\s+192\.0\.2\.11\s+vxt-ov\s+02:00:00:00:00:11\s+10\.233\.0\.0\s+10\.233\.0\.0\/24\s+alive \(ttl \d+s\)$/);
    t.match(lines[2], /^vxt-gone\s+-\s+vxt-ov\s+-\s+-\s+10\.233\.1\.0\/24\s+expired \(grace not started\)$/);
    t.equal(lines.length, 3);

    await lease.revoke();
    const after = await run(['hosts', '--json', '--store', etcd.storeUrl]);
    t.equal(after.code, 0, after.stderr);
    t.same((JSON.parse(after.stdout) as typeof doc).hosts, [], 'a revoked lease: the host is gone');

    await etcd.stop();
    const started = Date.now();
    const down = await run(['hosts', '--store', etcd.storeUrl]);
    t.equal(down.code, 1);
    t.match(down.stderr, /^vxnetctl: cannot reach etcd at 127\.0\.0\.1:\d+: .+\n$/);
    t.ok(Date.now() - started < 6000, `etcd down: gave up after ${Date.now() - started} ms`);
  });
}
