// Agents as processes, one inside each host namespace (`ip netns exec`, as vxnetd would run on
// a host), started from flags through overlay/service.ts with the underlay taken from the
// default route. A host whose agent is SIGKILLed disappears from its peers after the TTL; one
// stopped with SIGTERM (lease revoked) at once; containers keep reaching the survivors.
import t, { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { overlayNetworkToJson, parseOverlayNetwork, vxlanDeviceName } from '../../overlay/plan';
import { readLocalState } from '../../overlay/local';
import { ETCD, startEtcd } from '../helpers/etcd';
import { mustExec, pollUntil } from '../helpers/sh';
import { Container, Host, addContainer, cannotRun, newUnderlay, reachable, shown } from './helpers/hosts';

const NET = parseOverlayNetwork({ name: 'vxt-ovp', vni: 4646, subnets: ['10.237.0.0/16', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64 });
const DEV = vxlanDeviceName(NET.vni);
const TTL = 2;
const AGENT = path.join(__dirname, 'fixtures', 'agent-proc.ts');

interface Proc { id: string; host: Host; child: ChildProcess; v4: string; v6: string; c?: Container }

async function main(t: Test): Promise<void> {
  t.setTimeout(60_000);
  const root = t; // containers outlive the subtest that creates them
  const underlay = await newUnderlay(t, 1500);
  // etcd on the underlay (the agents run inside their hosts' namespaces and reach it there).
  await mustExec('ip', ['-n', underlay.ns.name, 'addr', 'add', '10.238.0.1/24', 'dev', 'vxtul']);
  const etcd = await startEtcd(t, { netns: [underlay.ns.name], hosts: ['10.238.0.1'] });
  const prefix = `/vxt-${process.pid}-${Date.now()}/overlay/`;
  const localRoot = mkdtempSync(path.join(tmpdir(), 'vxt-overlay-proc-'));
  t.teardown(() => rmSync(localRoot, { recursive: true, force: true }));

  const startProc = async (i: number): Promise<Proc> => {
    const host = await underlay.addHost(i);
    await mustExec('ip', ['-n', host.ns.name, 'route', 'add', 'default', 'via', '10.238.0.1']);
    const id = `host-${i}`;
    const config = { endpoints: etcd.endpoints, networks: [overlayNetworkToJson(NET)], hostId: id, ttlSeconds: TTL, prefix, localDir: path.join(localRoot, id) };
    // `ip netns exec` execs node in place: child.pid is the agent's pid.
    const child = spawn('ip', ['netns', 'exec', host.ns.name, process.execPath, ...process.execArgv, AGENT], {
      env: { ...process.env, VXT_OVERLAY_CONFIG: JSON.stringify(config) }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const line = await pollUntil(() => {
      if (child.exitCode !== null) throw new Error(`agent ${id} exited ${child.exitCode}: ${err}`);
      return out.includes('\n') && out.split('\n')[0];
    }, { timeoutMs: 15_000, what: `agent ${id} ready` });
    const ready = JSON.parse(line) as { underlay: string; blocks: string[] };
    if (ready.underlay !== host.underlay) throw new Error(`agent ${id} took ${ready.underlay} as its underlay`);
    return { id, host, child, v4: ready.blocks[0], v6: ready.blocks[1] };
  };
  const routes = async (p: Proc): Promise<string[]> =>
    [...(await shown(p.host.ns, ['-4', 'route', 'show', 'dev', DEV])), ...(await shown(p.host.ns, ['-6', 'route', 'show', 'dev', DEV]))].map((l) => l.split(' ')[0]);
  const has = async (p: Proc, q: Proc): Promise<boolean> => { const r = await routes(p); return r.includes(q.v4) && r.includes(q.v6); };
  const hasNot = async (p: Proc, q: Proc): Promise<boolean> => { const r = await routes(p); return !r.includes(q.v4) && !r.includes(q.v6); };

  const procs: Proc[] = [];
  for (const i of [1, 2, 3]) procs.push(await startProc(i));

  await t.test('three agent processes program each other; containers ping across hosts', async (t) => {
    for (const a of procs) for (const b of procs) if (a !== b) await pollUntil(() => has(a, b), { timeoutMs: 5000, what: `${a.id} routes to ${b.id}` });
    t.pass('every host has every peer\'s routes');
    t.match(readLocalState(path.join(localRoot, 'host-1'), NET.name), { hostId: 'host-1', mtu: 1450 }, 'local state written by the process');
    for (const p of procs) p.c = await addContainer(root, p.host, 1450, { v4: p.v4, v6: p.v6 });
    t.ok(await reachable(procs[0].c!.ns, procs[2].c!.ip4!), 'host-1 -> host-3');
    t.ok(await reachable(procs[2].c!.ns, procs[1].c!.ip6!), 'host-3 -> host-2 IPv6');
  });

  await t.test('an agent SIGKILLed: its host leaves its peers after the TTL', async (t) => {
    const dead = procs[2];
    const killed = Date.now();
    dead.child.kill('SIGKILL');
    await Promise.all([procs[0], procs[1]].map((p) => pollUntil(() => hasNot(p, dead), { timeoutMs: TTL * 1000 + 5000, intervalMs: 20, what: `${p.id} drops host-3` })));
    const ms = Date.now() - killed;
    t.ok(ms >= 1000 && ms <= TTL * 1000 + 4000, `gone from both peers ${ms} ms after the kill (TTL ${TTL}s)`);
    t.ok(await reachable(procs[0].c!.ns, procs[1].c!.ip4!), 'host-1 -> host-2 unaffected');
  });

  await t.test('an agent stopped with SIGTERM revokes its lease: gone from its peer at once', async (t) => {
    const leaving = procs[1];
    const stopped = Date.now();
    leaving.child.kill('SIGTERM');
    await pollUntil(() => hasNot(procs[0], leaving), { timeoutMs: 5000, intervalMs: 10, what: 'host-1 drops host-2' });
    t.pass(`gone ${Date.now() - stopped} ms after SIGTERM (process exit included)`);
    await pollUntil(() => leaving.child.exitCode !== null, { timeoutMs: 5000, what: 'host-2 agent exits' });
    t.equal(leaving.child.exitCode, 0, 'clean exit');
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`);
  if (reason) t.plan(0, reason);
  else await t.test('overlay agents as processes inside host namespaces', main);
})();
