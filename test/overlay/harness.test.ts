// The multi-host harness with nothing but the built binaries, as an operator runs them: hosts
// are namespaces on an underlay bridge, etcd runs on the underlay, the network is defined once
// with `vxnetctl network create`, each host runs its own `vxnetd --no-docker --store ...
// --overlay-network NAME` (joining the cluster's definition by name) inside its namespace, and
// containers are namespaces attached by the built `vxnet` CNI plugin run inside their host's
// namespace, with the IPAM store vxnetd uses, handing its calls to that host's vxnetd. Checked: containers on three hosts reach each
// other (IPv4, IPv6); a full-size packet with DF set crosses the tunnel and one byte more is
// refused (iputils ping -M do); `vxnetctl ipam pools --store` shows each block's usage as the
// hosts publish it; with etcd down a CNI ADD still works (the block is local) and the new
// container is reachable; a host whose vxnetd is SIGKILLed leaves its peers after the TTL.
// Root only; every object is vxt-prefixed or inside the test's namespaces.
import t, { type Test } from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { formatCidr } from '../../ipam/addr';
import { readLocalState } from '../../overlay/local';
import { vxlanDeviceName } from '../../overlay/plan';
import { ETCD, startEtcd } from '../helpers/etcd';
import { newNetns, type Netns } from '../helpers/netns';
import { exec, mustExec, pollUntil } from '../helpers/sh';
import { type CniCall, type CniOutcome, bare, cniEnv, describe, newContainerId, resultAddrs, runInNetns } from '../integration/helpers/cni';
import { type Host, cannotRun, newUnderlay, reachable, shown } from './helpers/hosts';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = (name: string): string => path.join(ROOT, 'dist', 'bin', name);
const NET = 'vxt-ovh';
const VNI = 4848;
const DEV = vxlanDeviceName(VNI);
const TTL = 3;
const PING = '/usr/bin/ping'; // iputils: -M do sets DF (busybox ping cannot)

interface Node { id: string; host: Host; dir: string; vxnetd: ChildProcess; log: () => string; blocks: string[]; c?: { ns: Netns; v4: string; v6: string } }

const runIn = (ns: Netns, bin: string, args: string[], env: NodeJS.ProcessEnv, stdin?: unknown): Promise<CniOutcome> => runInNetns(ns, bin, args, env, stdin, 30_000);

async function main(t: Test): Promise<void> {
  t.setTimeout(120_000);
  const root = t;
  const underlay = await newUnderlay(t, 1500);
  await mustExec('ip', ['-n', underlay.ns.name, 'addr', 'add', '10.238.0.1/24', 'dev', 'vxtul']);
  const etcd = await startEtcd(t, { netns: [underlay.ns.name], hosts: ['10.238.0.1'] });
  const tmp = mkdtempSync(path.join(tmpdir(), 'vxt-harness-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const ctlEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  const ctl = (args: string[]): Promise<CniOutcome> => runIn(underlay.ns, BIN('vxnetctl'), [...args, '--store', etcd.storeUrl], ctlEnv);

  const def = await ctl(['network', 'create', NET, '--vni', String(VNI), '--subnet', '10.236.0.0/16', '--subnet', 'fd36::/48']);
  t.equal(def.code, 0, `vxnetctl network create: ${def.stderr}`);

  const nodes: Node[] = [];
  const startHost = async (i: number): Promise<Node> => {
    const host = await underlay.addHost(i);
    await mustExec('ip', ['-n', host.ns.name, 'route', 'add', 'default', 'via', '10.238.0.1']);
    const id = `vxt-h${i}`;
    const dir = path.join(tmp, id);
    const socket = `/run/docker/plugins/vxt${randomBytes(4).toString('hex')}.sock`;
    root.teardown(() => rmSync(socket, { force: true }));
    // `ip netns exec` execs vxnetd in place: the pid held is vxnetd's.
    const vxnetd = spawn('ip', ['netns', 'exec', host.ns.name, BIN('vxnetd'), '--no-docker', '--no-dns', '--socket', socket, '--data-dir', path.join(dir, 'data'),
      '--store', etcd.storeUrl, '--overlay-network', NET, '--host-id', id, '--lease-ttl', String(TTL), '--overlay-dir', path.join(dir, 'overlay'),
      '--cni-socket', path.join(dir, 'cni.sock'), '--log-level', 'debug'], { stdio: ['ignore', 'ignore', 'pipe'], env: ctlEnv });
    root.teardown(() => { if (vxnetd.exitCode === null && vxnetd.signalCode === null) vxnetd.kill('SIGKILL'); });
    let log = '';
    vxnetd.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
    const n: Node = { id, host, dir, vxnetd, log: () => log, blocks: [] };
    const state = await pollUntil(() => {
      if (vxnetd.exitCode !== null) throw new Error(`vxnetd ${id} exited ${vxnetd.exitCode}: ${log}`);
      try { return readLocalState(path.join(dir, 'overlay'), NET); } catch { return undefined; }
    }, { timeoutMs: 20_000, intervalMs: 50, what: `${id}: overlay state written` });
    if (state.blocks.length !== 2) throw new Error(`${id}: blocks ${JSON.stringify(state.blocks)}`);
    n.blocks = state.blocks.map(formatCidr);
    return n;
  };

  const routesOf = async (n: Node): Promise<string[]> =>
    [...(await shown(n.host.ns, ['-4', 'route', 'show', 'dev', DEV])), ...(await shown(n.host.ns, ['-6', 'route', 'show', 'dev', DEV]))].map((l) => l.split(' ')[0]);
  /** Whether n routes both of peer's blocks through the VXLAN device (want) or neither (!want). */
  const routesTo = async (n: Node, peer: Node, want = true): Promise<boolean> => {
    const r = await routesOf(n);
    return peer.blocks.every((b) => r.includes(b) === want);
  };

  const attach = async (n: Node): Promise<void> => {
    const conf = {
      cniVersion: '1.1.0', name: NET, type: 'vxnet', mode: 'overlay', natTable: 'vxtnat', ipMasq: true,
      overlayStateDir: path.join(n.dir, 'overlay'), ipam: { dataDir: path.join(n.dir, 'data') },
    };
    const c = await newNetns(root);
    const call: CniCall = { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: c.path };
    // The plugin hands the call to its host's vxnetd (same namespace, same build).
    const add = await runIn(n.host.ns, BIN('vxnet'), [], cniEnv({ ...call, env: { VXNET_CNI_SOCKET: path.join(n.dir, 'cni.sock') } }), conf);
    if (add.code !== 0) throw new Error(`ADD on ${n.id} failed: ${describe(add)}`);
    // Its log line may reach us just after the plugin's answer.
    await pollUntil(() => n.log().includes(`"container":"${call.containerId}"`), { timeoutMs: 3000, intervalMs: 10, what: `${n.id}: vxnetd's log of the ADD of ${call.containerId}` });
    const addrs = resultAddrs(add.json);
    n.c = { ns: c, v4: bare(addrs[0]), v6: bare(addrs[1]) };
  };

  await t.test('three hosts, each with its own vxnetd joining the network by name, containers attached by the CNI plugin', async (t) => {
    for (const i of [1, 2, 3]) nodes.push(await startHost(i));
    for (const n of nodes) t.match(n.log(), /"joining overlay networks".*"vxt-ovh"/, `${n.id}: joined the cluster's definition`);
    const blocks = nodes.map((n) => readLocalState(path.join(n.dir, 'overlay'), NET)?.blocks.length);
    t.same(blocks, [2, 2, 2], 'an IPv4 and an IPv6 block each');
    for (const n of nodes) await attach(n);
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue;
        await pollUntil(() => routesTo(a, b), { timeoutMs: 10_000, what: `${a.id} routes to ${b.id}` });
        t.ok(await reachable(a.c!.ns, b.c!.v4), `${a.id} -> ${b.id} ${b.c!.v4}`);
        t.ok(await reachable(a.c!.ns, b.c!.v6), `${a.id} -> ${b.id} ${b.c!.v6}`);
      }
    }
  });

  await t.test('MTU: a full-size packet with DF set crosses the tunnel, one byte more is refused', async (t) => {
    const a = nodes[0];
    const c = nodes[2];
    const ping = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      exec('ip', ['netns', 'exec', a.c!.ns.name, PING, '-c', '1', '-W', '2', '-M', 'do', ...args], { timeoutMs: 10_000 });
    // Overlay MTU 1450 (underlay 1500 - 50): ICMP payload 1450 - 20 - 8 over IPv4, 1450 - 40 - 8 over IPv6.
    const v4 = await ping(['-s', '1422', c.c!.v4]);
    t.equal(v4.code, 0, `1450-byte IPv4 packet, DF set, host-1 -> host-3: ${v4.stdout}${v4.stderr}`);
    const v6 = await ping(['-6', '-s', '1402', c.c!.v6]);
    t.equal(v6.code, 0, `1450-byte IPv6 packet host-1 -> host-3: ${v6.stdout}${v6.stderr}`);
    const over = await ping(['-s', '1423', c.c!.v4]);
    t.not(over.code, 0, 'a 1451-byte IPv4 packet with DF set does not go');
    t.match(over.stdout + over.stderr, /message too long|mtu ?= ?1450|Frag needed/i, 'refused locally: the container knows the MTU');
  });

  await t.test('vxnetctl ipam pools --store: every block with its host and usage', async (t) => {
    type Doc = { blocks: Array<{ network: string; block: string; hostId: string; state: string; used: number | null; free: string | null }> };
    const doc = await pollUntil(async () => {
      const r = await ctl(['ipam', 'pools', '--json', '--data-dir', path.join(nodes[0].dir, 'data')]);
      if (r.code !== 0) throw new Error(`ipam pools: ${r.stderr}`);
      const d = JSON.parse(r.stdout) as Doc;
      return d.blocks.length === 6 && d.blocks.every((b) => b.used === 1) && d;
    }, { timeoutMs: TTL * 1000 + 5000, intervalMs: 200, what: 'six blocks with one address used each' });
    t.same(doc.blocks.map((b) => b.hostId).sort(), ['vxt-h1', 'vxt-h1', 'vxt-h2', 'vxt-h2', 'vxt-h3', 'vxt-h3']);
    t.ok(doc.blocks.every((b) => b.network === NET && b.state === 'held'), 'all held, all of vxt-ovh');
    t.same(doc.blocks.filter((b) => b.block.includes('.')).map((b) => b.free), ['252', '252', '252'], 'a /24 hands out 253 addresses: 252 free');
    const text = await ctl(['ipam', 'pools', '--data-dir', path.join(nodes[0].dir, 'data')]);
    t.match(text.stdout, /^Overlay blocks in etcd:\/\/10\.238\.0\.1:\d+/);
    t.match(text.stdout, /vxt-ovh\s+10\.236\.\d+\.0\/24\s+vxt-h2\s+held\s+253\s+1\s+252/);
    t.match(text.stdout, /This host's IPAM store:\nNETWORK/);
  });

  await t.test('etcd down: a CNI ADD still works from the host\'s block, and the new container reaches the others', async (t) => {
    await etcd.kill(0);
    const [a, b] = nodes;
    const before = a.c!;
    await attach(a);
    const added = a.c!;
    t.not(added.v4, before.v4, `a second container on ${a.id}: ${added.v4}`);
    t.ok(await reachable(added.ns, b.c!.v4), `${a.id}'s new container -> ${b.id} with etcd down`);
    t.ok(await reachable(b.c!.ns, added.v6), `${b.id} -> ${a.id}'s new container (IPv6) with etcd down`);
    await etcd.restart(0);
    await pollUntil(async () => {
      const r = await ctl(['hosts', '--json']);
      const d = r.code === 0 ? JSON.parse(r.stdout) as { hosts: Array<{ lease: string }> } : undefined;
      return d !== undefined && d.hosts.length === 3 && d.hosts.every((h) => h.lease.startsWith('alive'));
    }, { timeoutMs: 20_000, intervalMs: 200, what: 'three hosts registered again after etcd came back' });
    t.pass('etcd back: all three hosts registered');
  });

  await t.test('a host whose vxnetd is SIGKILLed leaves its peers after the TTL', async (t) => {
    const [a, b, dead] = nodes;
    const killed = Date.now();
    dead.vxnetd.kill('SIGKILL');
    for (const n of [a, b]) {
      await pollUntil(() => routesTo(n, dead, false), { timeoutMs: TTL * 1000 + 5000, intervalMs: 50, what: `${n.id} drops ${dead.id}` })
        .catch(async (err: Error) => {
          const hosts = await ctl(['hosts']);
          throw new Error(`${err.message}; routes ${JSON.stringify(await routesOf(n))}; exit ${dead.vxnetd.exitCode}/${dead.vxnetd.signalCode}; ${hosts.stdout}${hosts.stderr}`);
        });
    }
    t.pass(`gone from both peers ${Date.now() - killed} ms after the kill (TTL ${TTL} s)`);
    t.ok(await routesTo(a, b) && await routesTo(b, a), 'host-1 and host-2 still route to each other');
    t.ok(await reachable(a.c!.ns, b.c!.v4), 'host-1 -> host-2 unaffected');
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`)
    ?? (existsSync(PING) ? undefined : 'needs iputils ping (Debian\'s iputils-ping)')
    ?? (['vxnetd', 'vxnetctl', 'vxnet'].every((b) => existsSync(BIN(b))) ? undefined : 'needs a build (npm run build)');
  if (reason) t.plan(0, reason);
  else await t.test('the multi-host harness with the built vxnetd, vxnetctl and vxnet', main);
})();
