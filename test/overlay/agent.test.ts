// The overlay agent end to end: a real etcd (loopback), three then four "hosts" (namespaces on an
// underlay bridge), one OverlayAgent per host run in-process with its netlink socket inside the
// host's namespace and its own etcd client, containers on each host with addresses from the
// block its agent leased. Containers ping across hosts; a joining host is programmed on every
// peer, watch-driven (npm run bench times it against the 1 s target); a host that stops renewing disappears from its
// peers after the TTL and gets its own block back when it returns; a clean stop is seen at once.
import t, { Test } from 'tap';
import { existsSync } from 'node:fs';
import { formatCidr, formatIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { startOverlayService } from '../../overlay/service';
import { parseOverlayNetwork, vtepMacFor, vxlanDeviceName } from '../../overlay/plan';
import { listHosts } from '../../overlay/registry';
import { readLocalState } from '../../overlay/local';
import { ETCD, startEtcd } from '../helpers/etcd';
import { exec, mustExec, pollUntil } from '../helpers/sh';
import { spawn } from 'node:child_process';
import { masqueradeScript } from '../../net/nat';
import { addContainer, cannotRun, newUnderlay, reachable, shown } from './helpers/hosts';
import { Node, overlayCluster } from './helpers/cluster';

const NET = parseOverlayNetwork({ name: 'vxt-ov', vni: 4343, subnets: ['10.237.0.0/16', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64 });
const DEV = vxlanDeviceName(NET.vni);
const TTL = 2;


const PORT = 9047;

/** Runs a TCP server in a namespace that answers each connection with the peer's address; stopped by pid at teardown. */
async function serveRemoteAddress(t: Test, ns: string): Promise<void> {
  const code = `require('net').createServer((s) => s.end(s.remoteAddress.replace(/^::ffff:/, ''))).listen(${PORT}, '::')`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: 'ignore' });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await pollUntil(async () => (await exec('ip', ['netns', 'exec', ns, 'ss', '-Hltn', `sport = :${PORT}`])).stdout.includes('LISTEN'),
    { timeoutMs: 5000, what: `server in ${ns}` });
}

/** The address a server started by serveRemoteAddress sees a connection from `ns` come from. */
async function seenAs(ns: string, to: string): Promise<string> {
  const code = `const s = require('net').connect(${PORT}, ${JSON.stringify(to)}); let d = ''; s.on('data', (b) => d += b); s.on('end', () => process.stdout.write(d)); s.on('error', (e) => { process.stdout.write('error ' + e.message); })`;
  const r = await exec('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { timeoutMs: 5000 });
  return r.stdout.trim();
}

async function main(t: Test): Promise<void> {
  t.setTimeout(60_000);
  const root = t; // containers live as long as the whole test, not one subtest
  const etcd = await startEtcd(t);
  const underlay = await newUnderlay(t, 1500);

  const cl = overlayCluster(t, underlay, { endpoints: etcd.clientUrls, network: NET, ttlSeconds: TTL });
  const { startAgent, hasRoutesTo, noRoutesTo } = cl;
  const node = (i: number): Promise<Node> => cl.addNode(i);

  const nodes: Node[] = [];
  for (const i of [1, 2, 3]) nodes.push(await node(i));

  await t.test('each host leased its own blocks and every peer programmed them', async (t) => {
    t.same(nodes.map((n) => [n.v4, n.v6]), [['10.237.0.0/24', 'fd37::/64'], ['10.237.1.0/24', 'fd37:0:0:1::/64'], ['10.237.2.0/24', 'fd37:0:0:2::/64']]);
    for (const a of nodes) {
      for (const b of nodes) {
        if (a !== b) t.ok(await pollUntil(() => hasRoutesTo(a, b), { timeoutMs: 3000, what: `${a.id} routes to ${b.id}` }), `${a.id} has ${b.id}'s routes`);
      }
    }
    const local = readLocalState(cl.localDir('host-2'), NET.name);
    t.match(local, { network: NET.name, hostId: 'host-2', vni: NET.vni, device: DEV, mtu: 1450 }, 'local state for the CNI plugin written');
    t.same(local?.blocks.map(formatCidr), [nodes[1].v4, nodes[1].v6], 'with the host\'s blocks');
    for (const n of nodes) n.c = await addContainer(root, n.host, 1450, { v4: n.v4, v6: n.v6 });
  });

  await t.test('containers on three hosts ping each other, IPv4 and IPv6, both directions', async (t) => {
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue;
        t.ok(await reachable(a.c!.ns, b.c!.ip4!), `${a.id} -> ${b.id} ${b.c!.ip4}`);
        t.ok(await reachable(a.c!.ns, b.c!.ip6!), `${a.id} -> ${b.id} ${b.c!.ip6}`);
      }
    }
  });

  await t.test('with the overlay subnets masqueraded: traffic leaving the overlay is NATed, overlay-to-overlay is not', async (t) => {
    // net/nat.ts's rule (source in the set, destination outside it), fed the network's whole
    // subnets rather than the host's block, run inside each host namespace.
    for (const n of nodes) {
      const r = await exec('ip', ['netns', 'exec', n.host.ns.name, 'nft', '-f', '-'], { input: masqueradeScript('vxtnat', NET.subnets) });
      t.equal(r.code, 0, `nft in ${n.id}: ${r.stderr.trim()}`);
    }
    const c1 = nodes[0].c!;
    const c2 = nodes[1].c!;
    await serveRemoteAddress(root, c2.ns.name);
    await serveRemoteAddress(root, nodes[1].host.ns.name);
    t.equal(await seenAs(c1.ns.name, c2.ip4!), c1.ip4, 'container -> container across hosts (IPv4): source kept');
    t.equal(await seenAs(c1.ns.name, c2.ip6!), c1.ip6, 'container -> container across hosts (IPv6): source kept');
    t.equal(await seenAs(c1.ns.name, nodes[1].host.underlay), nodes[0].host.underlay, 'container -> outside the overlay: masqueraded to its host\'s address');
  });

  let n4: Node;
  await t.test('a fourth host joins: on every peer (watch-driven; the bench times it), and reachable', async (t) => {
    // This one the way vxnetd starts it: from flags, the underlay taken from the default route.
    const host = await underlay.addHost(4);
    await mustExec('ip', ['-n', host.ns.name, 'route', 'add', 'default', 'via', '10.238.0.1']);
    const started = Date.now();
    const svc = await startOverlayService({
      endpoints: etcd.endpoints, networks: [NET], hostId: 'host-4', ttlSeconds: TTL, prefix: cl.prefix,
      localDir: cl.localDir('host-4'), netns: host.ns.path,
    }, createLogger('overlay-test', 'error'));
    root.teardown(() => svc.stop());
    t.equal(formatIp(svc.underlay), host.underlay, 'underlay detected from the default route');
    const agent = svc.agent;
    const [v4, v6] = agent.blocks(NET.name).map(formatCidr);
    n4 = { id: 'host-4', host, agent, v4, v6 };
    const registered = Date.now();
    await Promise.all(nodes.map((n) => pollUntil(() => hasRoutesTo(n, n4), { timeoutMs: 5000, intervalMs: 10, what: `${n.id} routes to host-4` })));
    const ms = Date.now() - registered;
    t.pass(`routes to host-4 on all 3 peers ${ms} ms after its registration (start took ${registered - started} ms)`);
    t.equal(v4, '10.237.3.0/24');
    n4.c = await addContainer(root, host, 1450, { v4, v6 });
    t.ok(await pollUntil(() => hasRoutesTo(n4, nodes[0]), { timeoutMs: 3000, what: 'host-4 routes to host-1' }));
    t.ok(await reachable(nodes[0].c!.ns, n4.c.ip4!), 'host-1 -> host-4');
    t.ok(await reachable(n4.c.ns, nodes[2].c!.ip6!), 'host-4 -> host-3 IPv6');
  });

  await t.test('a host that stops renewing disappears from its peers after the TTL; comes back with its own block', async (t) => {
    const dead = nodes[2];
    const before = [dead.v4, dead.v6];
    const stopped = Date.now();
    await dead.agent.stop({ revoke: false });
    const others = [nodes[0], nodes[1], n4];
    t.ok(await noRoutesTo(nodes[0], dead) === false, 'still there right after it stopped renewing');
    await Promise.all(others.map((n) => pollUntil(() => noRoutesTo(n, dead), { timeoutMs: TTL * 1000 + 4000, intervalMs: 20, what: `${n.id} drops host-3` })));
    const ms = Date.now() - stopped;
    t.ok(ms >= 1000 && ms <= TTL * 1000 + 3000, `gone from all 3 peers ${ms} ms after the last renewal stopped (TTL ${TTL}s)`);
    const neigh = (await shown(nodes[0].host.ns, ['neigh', 'show', 'dev', DEV])).join('\n');
    t.notMatch(neigh, /10\.237\.2\.0/, 'its neighbour entry is gone too');
    t.notOk(await reachable(nodes[0].c!.ns, dead.c!.ip4!, 500), 'host-3 unreachable');
    const listing = await pollUntil(async () => {
      const l = await listHosts(nodes[0].agent.registry, Date.now(), 60_000);
      return l.blocks.some((b) => b.hostId === 'host-3' && b.state === 'orphaned' && b.orphanedAt !== undefined) && l;
    }, { timeoutMs: 3000, what: 'host-3 blocks marked orphaned' });
    t.same(listing.hosts.map((h) => h.id), ['host-1', 'host-2', 'host-4'], 'hosts listing: host-3 gone');
    t.ok(listing.hosts.every((h) => /^alive/.test(h.lease) && h.networks[0].blocks.length === 2), 'live hosts with two blocks each');

    // Same identity again: same blocks, so host-3's container (still on 10.237.2.5) works again.
    dead.agent = await startAgent(dead.host, 'host-3');
    t.same(dead.agent.blocks(NET.name).map(formatCidr), before, 'own blocks back');
    await Promise.all(others.map((n) => pollUntil(() => hasRoutesTo(n, dead), { timeoutMs: 3000, what: `${n.id} has host-3 again` })));
    t.ok(await reachable(nodes[0].c!.ns, dead.c!.ip4!), 'host-1 -> host-3 again');
    t.ok(await reachable(dead.c!.ns, n4.c!.ip6!), 'host-3 -> host-4 IPv6');
    const l = await listHosts(nodes[0].agent.registry, Date.now(), 60_000);
    t.ok(l.blocks.filter((b) => b.hostId === 'host-3').every((b) => b.state === 'held' && b.orphanedAt === undefined), 'orphan mark cleared');
  });

  await t.test('a clean stop (lease revoked) removes the host from its peers at once', async (t) => {
    const started = Date.now();
    await n4.agent.stop({ revoke: true });
    await Promise.all(nodes.map((n) => pollUntil(() => noRoutesTo(n, n4), { timeoutMs: 5000, intervalMs: 10, what: `${n.id} drops host-4` })));
    const ms = Date.now() - started;
    t.pass(`gone from all peers in ${ms} ms`);
  });

  await t.test('entries or the device deleted by hand come back at once (kernel notifications, no polling)', async (t) => {
    const h = nodes[0];
    const other = nodes[1];
    const hn = h.host.ns.name;
    let started = Date.now();
    await mustExec('ip', ['-n', hn, 'route', 'del', other.v4, 'dev', DEV]);
    await mustExec('ip', ['-n', hn, 'neigh', 'del', other.v6.replace('/64', ''), 'dev', DEV]);
    await mustExec('bridge', ['-n', hn, 'fdb', 'del', vtepMacFor(other.id, NET.vni), 'dev', DEV, 'dst', other.host.underlay]);
    await pollUntil(async () => (await hasRoutesTo(h, other))
      && (await shown(h.host.ns, ['fdb', 'show', 'dev', DEV])).some((l) => l.includes(other.host.underlay)), { timeoutMs: 5000, intervalMs: 10, what: 'entries restored' });
    t.pass(`route, neighbour and FDB entry restored ${Date.now() - started} ms after their deletion`);
    t.ok(await reachable(h.c!.ns, other.c!.ip6!), 'host-1 -> host-2 IPv6');
    started = Date.now();
    await mustExec('ip', ['-n', hn, 'link', 'del', DEV]);
    await pollUntil(async () => (await hasRoutesTo(h, other)) && (await hasRoutesTo(h, nodes[2])), { timeoutMs: 5000, intervalMs: 10, what: 'device recreated' });
    t.pass(`device and all its entries back ${Date.now() - started} ms after it was deleted`);
    t.ok(await reachable(h.c!.ns, nodes[2].c!.ip4!), 'host-1 -> host-3');
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`);
  if (reason) t.plan(0, reason);
  else await t.test('overlay agents on a real etcd across host namespaces', main);
})();
