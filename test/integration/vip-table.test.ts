// The VIP datapath against the real kernel. Everything lives inside test namespaces: a "host"
// namespace holding the bridge, the VIP table and routes, three backend namespaces and a
// client on the bridge, and a client routed through the host over its own veth. The table is
// programmed inside the host namespace (VipTable's `netns` option), so the real host's ruleset
// is never touched.
import t from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { parseIp, type Ip } from '../../ipam/addr';
import { VipTable, type VipEntry } from '../../datapath/vip-table';
import { desiredState, renderFull } from '../../datapath/vip-plan';
import { enableBridgeNetfilter, enableHairpin } from '../../net/nat';
import { exec, newNetns, pollUntil, type Netns } from '../helpers/netns';

const PEER = path.join(__dirname, 'helpers', 'vip-peer.mjs');
const ip = (s: string): Ip => { const r = parseIp(s); if (!r) throw new Error(s); return r; };

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
} else {
  t.setTimeout(300_000);
  void main();
}

async function sh(script: string): Promise<string> {
  const r = await exec('bash', ['-euo', 'pipefail', '-c', script]);
  if (r.code !== 0) throw new Error(`${script}\n${r.stderr}`);
  return r.stdout;
}

/** Runs vip-peer in a namespace and resolves with its parsed JSON output. */
async function peer(ns: string, ...args: Array<string | number>): Promise<string[]> {
  const r = await exec('ip', ['netns', 'exec', ns, process.execPath, PEER, ...args.map(String)], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`vip-peer ${args.join(' ')} in ${ns}: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

const tally = (xs: readonly string[]): Record<string, number> => xs.reduce<Record<string, number>>((m, x) => { m[x] = (m[x] ?? 0) + 1; return m; }, {});

async function main(): Promise<void> {
  const host = await newNetns(t);
  const backends: Netns[] = [];
  for (let i = 0; i < 3; i++) backends.push(await newNetns(t));
  const client = await newNetns(t);
  const routed = await newNetns(t);
  const H = host.name;
  // The namespace's own bridge-nf sysctls off: the bridge's option alone must do.
  await sh(`
    ip netns exec ${H} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    ip netns exec ${H} sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables; do [ -e $f ] && echo 0 > $f; done; true'
    ip -n ${H} link add vxtbr0 type bridge
    ip -n ${H} addr add 10.77.0.1/24 dev vxtbr0
    ip -n ${H} addr add fd77::1/64 dev vxtbr0 nodad
    ip -n ${H} link set vxtbr0 up
  `);
  enableBridgeNetfilter('vxtbr0', H);
  const onBridge = async (ns: string, n: number): Promise<void> => {
    await sh(`
      ip -n ${H} link add vxtv${n} type veth peer name eth0 netns ${ns}
      ip -n ${H} link set vxtv${n} master vxtbr0 up
      ip -n ${ns} addr add 10.77.0.${n}/24 dev eth0
      ip -n ${ns} addr add fd77::${n}/64 dev eth0 nodad
      ip -n ${ns} link set eth0 up
      ip -n ${ns} route add default via 10.77.0.1
      ip -n ${ns} -6 route add default via fd77::1
    `);
    // As the datapath's createPair does for every bridge port (the hairpin subtest needs it).
    if (!enableHairpin(`vxtv${n}`, H)) throw new Error(`cannot set hairpin mode on vxtv${n}`);
  };
  for (const [i, b] of backends.entries()) await onBridge(b.name, 11 + i);
  await onBridge(client.name, 20);
  await sh(`
    ip -n ${H} link add vxtr0 type veth peer name eth0 netns ${routed.name}
    ip -n ${H} addr add 10.78.0.1/24 dev vxtr0
    ip -n ${H} addr add fd78::1/64 dev vxtr0 nodad
    ip -n ${H} link set vxtr0 up
    ip -n ${routed.name} addr add 10.78.0.2/24 dev eth0
    ip -n ${routed.name} addr add fd78::2/64 dev eth0 nodad
    ip -n ${routed.name} link set eth0 up
    ip -n ${routed.name} route add default via 10.78.0.1
    ip -n ${routed.name} -6 route add default via fd78::1
    ip -n ${H} route add 10.96.0.0/16 dev vxtbr0
    ip -n ${H} -6 route add fd96::/64 dev vxtbr0
  `);

  // One server per backend: TCP 8080 and UDP 5353, answering its name.
  const servers: ChildProcessWithoutNullStreams[] = [];
  t.teardown(() => { for (const s of servers) if (s.pid !== undefined && s.exitCode === null) process.kill(s.pid, 'SIGKILL'); });
  for (const [i, b] of backends.entries()) {
    const s = spawn('ip', ['netns', 'exec', b.name, process.execPath, PEER, 'serve', `b${i + 1}`, '8080', '5353']);
    servers.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('exit', (code) => reject(new Error(`server b${i + 1} exited ${code}`)));
      createInterface({ input: s.stdout }).once('line', () => resolve());
    });
  }

  const B = (n: number, port = 8080, weight = 1) => ({ ip: ip(`10.77.0.${10 + n}`), port, weight });
  const B6 = (n: number) => ({ ip: ip(`fd77::${10 + n}`), port: 8080, weight: 1 });
  const base: VipEntry[] = [
    { ip: ip('10.96.0.1'), protocol: 'tcp', port: 80, backends: [B(1), B(2), B(3)] },
    { ip: ip('10.96.0.1'), protocol: 'udp', port: 53, backends: [B(1, 5353), B(2, 5353), B(3, 5353)] },
    { ip: ip('fd96::1'), protocol: 'tcp', port: 80, backends: [B6(1), B6(2), B6(3)] },
    { ip: ip('10.96.0.2'), protocol: 'tcp', port: 80, backends: [B(1)] },
    { ip: ip('10.96.0.3'), protocol: 'tcp', port: 80, backends: [] },
    { ip: ip('10.96.0.4'), protocol: 'tcp', port: 80, backends: [B(2)] },
    { ip: ip('10.96.0.5'), protocol: 'tcp', port: 80, backends: [B(1, 8080, 1), B(2, 8080, 3)] },
  ];
  const logs: string[] = [];
  const table = 'vxt-vip';
  let vips = new VipTable({ table, netns: H, log: (m) => logs.push(m) });
  t.teardown(async () => { await vips.remove().catch(() => undefined); });
  await vips.start();
  const first = await vips.sync(base);
  t.ok(first.full, 'the first sync after start replaces the table');

  await t.test('TCP to a VIP reaches all three backends, on a port other than the VIP\'s', async (t) => {
    for (const [who, ns] of [['a client on the bridge', client.name], ['a routed client', routed.name], ['the host', H]] as const) {
      const got = tally(await peer(ns, 'tcp', '10.96.0.1', 80, 30));
      t.same(Object.keys(got).sort(), ['b1', 'b2', 'b3'], `${who}: ${JSON.stringify(got)}`);
    }
  });

  await t.test('UDP through a VIP', async (t) => {
    for (const ns of [routed.name, client.name]) {
      const got = tally(await peer(ns, 'udp', '10.96.0.1', 53, 30));
      t.same(Object.keys(got).sort(), ['b1', 'b2', 'b3'], JSON.stringify(got));
    }
  });

  await t.test('IPv6 VIP', async (t) => {
    const got = tally(await peer(routed.name, 'tcp', 'fd96::1', 80, 30));
    t.same(Object.keys(got).sort(), ['b1', 'b2', 'b3'], JSON.stringify(got));
    const fromBridge = tally(await peer(client.name, 'tcp', 'fd96::1', 80, 10));
    t.notOk(Object.keys(fromBridge).some((k) => k.startsWith('ERR')), `from the bridge: ${JSON.stringify(fromBridge)}`);
  });

  await t.test('hairpin: a backend connecting to its own VIP gets itself', async (t) => {
    t.same(await peer(backends[0]!.name, 'tcp', '10.96.0.2', 80, 3), ['b1', 'b1', 'b1']);
  });

  await t.test('a VIP without backends refuses at once', async (t) => {
    for (const ns of [routed.name, client.name, H]) {
      const [r] = await peer(ns, 'tcp', '10.96.0.3', 80, 1);
      t.match(r, /^ERR:ECONNREFUSED:/, `${ns}: ${r}`);
      t.ok(Number(r!.split(':')[2]) < 1000, 'not a timeout');
    }
  });

  await t.test('weights are honoured', async (t) => {
    const got = tally(await peer(routed.name, 'tcp', '10.96.0.5', 80, 400));
    const share = (got.b2 ?? 0) / 400;
    t.ok(share > 0.65 && share < 0.85, `weight 3 of 4 got ${share} (${JSON.stringify(got)})`);
  });

  await t.test('a long-lived connection survives its backend leaving the VIP and a restart', async (t) => {
    const hold = spawn('ip', ['netns', 'exec', routed.name, process.execPath, PEER, 'hold', '10.96.0.4', '80']);
    t.teardown(() => { if (hold.pid !== undefined && hold.exitCode === null) process.kill(hold.pid, 'SIGKILL'); });
    const lines = createInterface({ input: hold.stdout });
    const next = () => new Promise<string>((resolve) => lines.once('line', resolve));
    t.equal(await next(), 'HELLO b2');
    const without = base.map((e) => (e.ip.value === ip('10.96.0.4').value && e.protocol === 'tcp' ? { ...e, backends: [B(3)] } : e));
    const stats = await vips.sync(without);
    t.equal(stats.full, false, 'a change is a diff');
    t.ok(stats.elementsAdded <= 3 && stats.elementsRemoved <= 3, `few elements: ${JSON.stringify(stats)}`);
    hold.stdin.write('one\n');
    t.equal(await next(), 'ECHO one', 'the open connection still reaches b2');
    t.same(await peer(routed.name, 'tcp', '10.96.0.4', 80, 3), ['b3', 'b3', 'b3'], 'new connections go to the remaining backend');
    // vxnetd restarted: a new table object adopts the table and replaces it in full.
    await vips.stop();
    vips = new VipTable({ table, netns: H, log: (m) => logs.push(m) });
    await vips.start();
    t.ok((await vips.sync(without)).full, 'the first sync after a restart replaces the table');
    hold.stdin.write('two\n');
    t.equal(await next(), 'ECHO two', 'the open connection survived the restart');
    await vips.sync(base);
  });

  await t.test('the table flushed or deleted by hand is restored', async (t) => {
    const nft = (...args: string[]) => exec('ip', ['netns', 'exec', H, 'nft', ...args]);
    const works = async () => (await peer(routed.name, 'tcp', '10.96.0.2', 80, 1))[0] === 'b1';
    for (const edit of [['flush', 'table', 'inet', table], ['flush', 'map', 'inet', table, 'services4'], ['delete', 'table', 'inet', table]]) {
      logs.length = 0;
      t.equal((await nft(...edit)).code, 0, edit.join(' '));
      const t0 = Date.now();
      await pollUntil(works, { timeoutMs: 5000, intervalMs: 20, what: `VIP working after ${edit.join(' ')}` });
      t.comment(`${edit.join(' ')}: restored after ${Date.now() - t0} ms`);
      t.ok(logs.some((l) => /edited by hand/.test(l)), `logged: ${logs.join(' | ')}`);
      t.notOk(logs.some((l) => /over netlink failed/.test(l)), 'restored over netlink (the skeleton by nft, the elements in one netlink batch)');
    }
  });

  await t.test('10,000 VIPs, then one more', async (t) => {
    const many: VipEntry[] = [...base];
    for (let i = 0; i < 10_000; i++) {
      many.push({ ip: ip(`10.97.${i >> 8}.${i & 255}`), protocol: 'tcp', port: 80, backends: [B(1), B(2), B(3)] });
    }
    logs.length = 0;
    const s1 = await vips.sync(many);
    t.comment(`10,000 VIPs: ${JSON.stringify(s1)}`);
    t.ok(s1.elementsAdded >= 40_000);
    t.ok(s1.full, 'a diff of most of the table goes as a full replace');
    t.same(logs, [], 'over netlink, nothing logged');
    // The elements written over netlink are those nft writes from the text of the same state.
    const text = renderFull('vxt-vipt', desiredState(many));
    t.equal((await exec('ip', ['netns', 'exec', H, 'nft', '-f', '-'], { input: text })).code, 0, 'the text loads into a second table');
    const elements = async (name: string): Promise<string> => {
      const r = await exec('ip', ['netns', 'exec', H, 'nft', '-j', 'list', 'table', 'inet', name], { timeoutMs: 120_000 });
      const sets = (JSON.parse(r.stdout) as { nftables: Array<{ set?: { name: string; elem?: unknown[] }; map?: { name: string; elem?: unknown[] } }> }).nftables;
      return JSON.stringify(sets.flatMap((x) => { const s = x.set ?? x.map; return s ? [[s.name, (s.elem ?? []).map((e) => JSON.stringify(e)).sort()]] : []; }).sort());
    };
    const [viaNetlink, viaText] = [await elements(table), await elements('vxt-vipt')];
    await exec('ip', ['netns', 'exec', H, 'nft', 'delete', 'table', 'inet', 'vxt-vipt']);
    t.ok(viaNetlink.length > 1_000_000 && viaNetlink === viaText, `every map and set holds the same elements (${viaNetlink.length} bytes of JSON)`);
    const s2 = await vips.sync([...many, { ip: ip('10.96.1.1'), protocol: 'tcp', port: 8000, backends: [B(3)] }]);
    t.comment(`one more: ${JSON.stringify(s2)}`);
    t.equal(s2.elementsAdded, 2, 'a services element and a slot element');
    t.same(await peer(routed.name, 'tcp', '10.96.1.1', 8000, 2), ['b3', 'b3']);
    t.same(Object.keys(tally(await peer(routed.name, 'tcp', '10.97.39.15', 80, 20))).sort(), ['b1', 'b2', 'b3']);
  });
}
