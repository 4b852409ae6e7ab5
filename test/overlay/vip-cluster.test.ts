// VIPs across two hosts of the overlay: two vxnetd (--store etcd://, --overlay-network), a named
// VIP VIP_0=/web:80 (vxnet.ports=8080) with backends ADDed on host A and on host B through each
// host's vxnetd. Both hosts give the VIP the same address (the etcd claim), and both hosts' DNS
// answer it for web.l4lb.vxnet; a client container on A and one on B each reach the backends of
// both hosts through it (A's or B's table DNATs, the overlay carries the packet to the other
// host, conntrack un-DNATs the reply); a DEL on B takes that backend out of A's VIP; B
// SIGKILLed (no revoke), its backends leave A's VIP once its lease expires in etcd (the time
// from the expiry, seen by an etcd watch, to A's vxnetd logging them out is reported and must be
// < 1 s, the bound). Everything vxt-named or inside the test's namespaces; root, etcd,
// a build.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { ETCD } from '../helpers/etcd';
import { exec, pollUntil } from '../helpers/sh';
import { serveEcho } from '../helpers/vip-traffic';
import { bare, describe, resultAddrs } from '../integration/helpers/cni';
import { binaryCluster, missingBuild, type BinaryCluster, type VxnetdNode } from './helpers/binaries';
import { cannotRun } from './helpers/hosts';
import type { Netns } from '../helpers/netns';

const NET = 'vxt-ovvip';
const VNI = 4862;
const HTTP = 8481;
const DNS_PORT = 5354;
const hex = randomBytes(3).toString('hex');
const TABLE = `vxt-vip${hex}`;
const LINK = `vxt-vl${hex}`;
const RANGE = '198.19.77.0/24';
const LABELS = { args: { cni: { labels: [{ key: 'VIP_0', value: '/web:80' }, { key: 'vxnet.ports', value: '8080' }] } } };

interface VipJson { vip: string; addresses: string[]; backends: Array<{ name: string; host: string; ip: string; state: string }> }

/** host's /v1/vips, read from inside its namespace (its vxnetd listens on the namespace's loopback). */
async function vipsOn(n: VxnetdNode): Promise<VipJson[]> {
  const r = await exec('ip', ['netns', 'exec', n.host.ns.name, 'curl', '-s', '-m', '2', `http://127.0.0.1:${HTTP}/v1/vips`]);
  if (r.code !== 0) return [];
  try { return JSON.parse(r.stdout) as VipJson[]; } catch { return []; }
}
const backendsOn = async (n: VxnetdNode): Promise<string[]> => ((await vipsOn(n))[0]?.backends ?? []).map((b) => b.name).sort();

async function get(ns: Netns, ip: string): Promise<string> {
  const r = await exec('ip', ['netns', 'exec', ns.name, 'curl', '-s', '-m', '2', `http://${ip}:80/`]);
  return r.code === 0 ? r.stdout.trim() : `curl exit ${r.code}`;
}

async function heard(ns: Netns, ip: string, want: readonly string[], max: number): Promise<{ seen: string[]; tries: number }> {
  const seen = new Set<string>();
  let tries = 0;
  while (tries < max && !want.every((w) => seen.has(w))) { tries++; seen.add(await get(ns, ip)); }
  return { seen: [...seen].sort(), tries };
}

/** How many catalog keys host `id` holds in etcd (they go when its lease expires). */
async function keysOf(cluster: BinaryCluster, id: string): Promise<number> {
  const prefix = `/vxnet/endpoints/${encodeURIComponent(id)}/`;
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const r = await exec('ip', ['netns', 'exec', cluster.underlay.ns.name, 'curl', '-s', '-m', '2', '-X', 'POST', `http://${cluster.etcd.endpoints[0]}/v3/kv/range`,
    '-d', JSON.stringify({ key: b64(prefix), range_end: b64(end), count_only: true })]);
  return Number((JSON.parse(r.stdout || '{}') as { count?: string }).count ?? 0);
}

/** An etcd watch on host `id`'s catalog keys; at(): when the first DELETE arrived (Date.now()). */
function watchDeletes(t: Test, cluster: BinaryCluster, id: string): { ready: Promise<void>; at(): number | undefined } {
  const prefix = `/vxnet/endpoints/${encodeURIComponent(id)}/`;
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const b64 = (x: string): string => Buffer.from(x).toString('base64');
  const p = spawn('ip', ['netns', 'exec', cluster.underlay.ns.name, 'curl', '-sN', '-X', 'POST', `http://${cluster.etcd.endpoints[0]}/v3/watch`,
    '-d', JSON.stringify({ create_request: { key: b64(prefix), range_end: b64(end) } })], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
  let at: number | undefined;
  let text = '';
  const ready = new Promise<void>((resolve) => {
    p.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('"created":true')) resolve();
      if (at === undefined && text.includes('"DELETE"')) at = Date.now();
    });
  });
  return { ready, at: () => at };
}

/** When (Date.now() scale) vxnetd's log last said `name` went out of a VIP. */
function loggedOutAt(log: string, name: string): number | undefined {
  let at: number | undefined;
  for (const line of log.split('\n')) {
    if (!line.includes(`backend ${name} `) || !/ out"/.test(line)) continue;
    try { at = Date.parse((JSON.parse(line) as { time: string }).time); } catch { /* not JSON */ }
  }
  return at;
}

async function main(t: Test): Promise<void> {
  t.setTimeout(240_000);
  const cluster = await binaryCluster(t, NET, ['--vni', String(VNI), '--subnet', '10.236.0.0/16', '--block-prefix', '24']);
  const tmp = mkdtempSync(path.join(tmpdir(), 'vxt-ovvip-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const start = (i: number): Promise<VxnetdNode> => cluster.startVxnetd(i, `vxt-v${i}`, ['--overlay-network', NET, '--http-listen', `127.0.0.1:${HTTP}`,
    '--vip-table', TABLE, '--vip-link', LINK, '--vip-range', RANGE, '--vip-range6', '',
    '--dns-listen', `127.0.0.1:${DNS_PORT}`, '--dns-state', path.join(tmp, `dns${i}.json`), '--dns-upstream', '127.0.0.1:9']);
  const [a, b] = [await start(1), await start(2)];
  for (const n of [a, b]) {
    await pollUntil(async () => {
      if (n.vxnetd.exitCode !== null) throw new Error(`${n.id} exited: ${n.log()}`);
      return (await exec('ip', ['netns', 'exec', n.host.ns.name, 'curl', '-s', '-m', '1', `http://127.0.0.1:${HTTP}/v1/vips`])).code === 0;
    }, { timeoutMs: 30_000, intervalMs: 100, what: `${n.id}'s HTTP API` });
  }

  /** An ADD on n (retried until the host has its block: a refused ADD leaves nothing behind). */
  const add = (n: VxnetdNode, name: string, extra: Record<string, unknown>) => pollUntil(async () => {
    const r = await cluster.add(n, extra, `K8S_POD_NAME=${name}`);
    return r.outcome.code === 0 ? { ...r, ip: bare(resultAddrs(r.outcome.json)[0] ?? '') } : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200, what: `an ADD of ${name} on ${n.id}` });

  const names = ['web-a0', 'web-a1', 'web-b0', 'web-b1'];
  const backends = new Map<string, Awaited<ReturnType<typeof add>>>();
  for (const name of names) {
    const r = await add(name.startsWith('web-a') ? a : b, name, LABELS);
    t.ok(r.ip, `${name}: ${describe(r.outcome).slice(0, 60)}`);
    serveEcho(t, r.ns.name, name, 5353, 8080);
    backends.set(name, r);
  }
  const clientA = await add(a, 'client-a', {});
  const clientB = await add(b, 'client-b', {});

  // Both hosts: one VIP, four backends (two per host), the same address.
  for (const n of [a, b]) {
    await pollUntil(async () => (await backendsOn(n)).length === 4, { timeoutMs: 15_000, intervalMs: 50, what: `four backends in ${n.id}'s /v1/vips` });
  }
  const [va, vb] = [(await vipsOn(a))[0]!, (await vipsOn(b))[0]!];
  t.same(await backendsOn(a), names, 'host A lists the backends of both hosts');
  t.same(new Set(va.backends.map((x) => x.host)), new Set([a.id, b.id]), 'with their hosts');
  t.equal(va.addresses.length, 1);
  t.same(vb.addresses, va.addresses, `the same VIP address on both hosts: ${va.addresses[0]} (one etcd claim)`);
  const vip = va.addresses[0]!;
  for (const n of [a, b]) {
    const r = await exec('ip', ['netns', 'exec', n.host.ns.name, 'dig', '@127.0.0.1', '-p', String(DNS_PORT), '+short', '+time=1', '+tries=2', 'web.l4lb.vxnet', 'A']);
    t.equal(r.stdout.trim(), vip, `${n.id}'s DNS: web.l4lb.vxnet is ${vip}`);
  }

  // Traffic: each client reaches the backends of both hosts.
  for (const [what, c] of [['host A', clientA], ['host B', clientB]] as const) {
    const h = await heard(c.ns, vip, names, 120);
    t.same(h.seen, names, `a client container on ${what} reached every backend on both hosts (${h.tries} connections)`);
  }

  // A DEL on B: that backend leaves A's VIP; A's client no longer reaches it.
  const gone = backends.get('web-b1')!;
  const del = await cluster.del(b, gone.call, LABELS);
  t.equal(del.code, 0, `DEL web-b1 on host B: ${describe(del).slice(0, 80)}`);
  const t0 = performance.now();
  await pollUntil(async () => !(await backendsOn(a)).includes('web-b1'), { timeoutMs: 10_000, intervalMs: 10, what: 'web-b1 out of host A\'s VIP' });
  t.comment(`DEL on host B returned -> web-b1 out of host A's VIP: ${(performance.now() - t0).toFixed(0)} ms (curl's own start included)`);
  const left = names.filter((x) => x !== 'web-b1');
  const after = new Set<string>();
  for (let i = 0; i < 24; i++) after.add(await get(clientA.ns, vip));
  t.same([...after].sort(), left, '24 connections from host A after the DEL: only the three left answer');

  // B killed (SIGKILL: its lease is not revoked): its backends leave A's VIP once the lease
  // expires. The expiry is timed by an etcd watch on B's keys (curl streaming the gateway's
  // watch, in the underlay namespace): the moment etcd deletes them; A's side by the time its
  // vxnetd logs the backends out (its log's clock is this machine's). The poll below is the
  // bounded check that it happens at all; its rounds (a curl each) are too coarse to time it.
  t.ok(await keysOf(cluster, b.id) > 0, 'host B\'s endpoints are in etcd under its lease');
  const expiry = watchDeletes(t, cluster, b.id);
  await pollUntil(() => Promise.race([expiry.ready.then(() => true), new Promise<false>((r) => setTimeout(r, 100, false))]),
    { timeoutMs: 10_000, intervalMs: 10, what: 'the etcd watch on host B\'s keys to start' });
  b.vxnetd.kill('SIGKILL');
  const killedAt = Date.now();
  await pollUntil(async () => {
    const onA = await backendsOn(a);
    return onA.length > 0 && !onA.some((x) => x.startsWith('web-b'));
  }, { timeoutMs: 40_000, intervalMs: 50, what: 'host B\'s backends to leave host A\'s VIP' });
  await pollUntil(() => expiry.at() !== undefined, { timeoutMs: 5000, intervalMs: 20, what: 'the watch to see the expiry' });
  const expiredAt = expiry.at()!;
  const outAt = loggedOutAt(a.log(), 'web-b0');
  t.ok(expiredAt - killedAt > 3000, `not before the lease could expire (a crash, no revoke): ${((expiredAt - killedAt) / 1000).toFixed(2)} s after the kill`);
  if (outAt === undefined) {
    t.comment(`host A's log does not say when web-b0 went out; the poll saw it ${Date.now() - expiredAt} ms after the expiry at the latest`);
  } else {
    t.comment(`host B SIGKILLed -> its lease expired (etcd deleted its keys) after ${((expiredAt - killedAt) / 1000).toFixed(2)} s -> host A's VIP dropped its backends ${outAt - expiredAt} ms after the expiry`);
    t.ok(outAt - expiredAt < 1000, `host A dropped B's backends ${outAt - expiredAt} ms after B's lease expired (< 1 s)`);
  }
  t.same(await backendsOn(a), ['web-a0', 'web-a1'], 'host A\'s VIP has its own backends left');
  const last = new Set<string>();
  for (let i = 0; i < 12; i++) last.add(await get(clientA.ns, vip));
  t.same([...last].sort(), ['web-a0', 'web-a1'], 'and every connection goes to them');
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`) ?? missingBuild()
    ?? (existsSync('/usr/bin/curl') ? undefined : 'needs curl');
  if (reason) t.plan(0, reason);
  else await t.test('VIPs across two hosts of the overlay', main);
})();
