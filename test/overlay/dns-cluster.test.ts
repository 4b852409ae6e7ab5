// Service discovery across hosts: two hosts (namespaces on one underlay, etcd on it), each
// running the built vxnetd with --store and DNS on its own loopback. A container ADDed on host 2
// (K8S_POD_NAME) resolves on host 1's DNS (its endpoint published under host 2's lease, watched
// by host 1); host 2's vxnetd killed (SIGKILL: no revoke), its names leave host 1's DNS when the
// lease expires (TTL 10 s). Root, etcd and a build needed; everything vxt-prefixed.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ETCD } from '../helpers/etcd';
import { exec, pollUntil } from '../helpers/sh';
import { bare, describe, resultAddrs } from '../integration/helpers/cni';
import { binaryCluster, missingBuild, type VxnetdNode } from './helpers/binaries';
import { cannotRun } from './helpers/hosts';

const NET = 'vxt-ovdns';
const VNI = 4861;
const PORT = 5353;

/** `dig` in n's namespace against its own vxnetd: the status and the A records. */
async function dig(n: VxnetdNode, name: string): Promise<{ status: string; answers: string[] }> {
  const r = await exec('ip', ['netns', 'exec', n.host.ns.name, 'dig', '@127.0.0.1', '-p', String(PORT), name, 'A', '+tries=1', '+time=1', '+noall', '+comments', '+answer']);
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? 'no answer';
  return { status, answers: r.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith(';')).map((l) => l.trim().split(/\s+/)[4] ?? '') };
}

async function main(t: Test): Promise<void> {
  t.setTimeout(180_000);
  const cluster = await binaryCluster(t, NET, ['--vni', String(VNI), '--subnet', '10.237.0.0/16', '--block-prefix', '24']);
  const tmp = mkdtempSync(path.join(tmpdir(), 'vxt-ovdns-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const start = (i: number): Promise<VxnetdNode> => cluster.startVxnetd(i, `vxt-d${i}`, ['--overlay-network', NET,
    '--dns-listen', `127.0.0.1:${PORT}`, '--dns-state', path.join(tmp, `dns${i}.json`), '--http-listen', '', '--dns-upstream', '127.0.0.1:9']);
  const [h1, h2] = [await start(1), await start(2)];
  for (const n of [h1, h2]) {
    await pollUntil(async () => {
      if (n.vxnetd.exitCode !== null) throw new Error(`${n.id} exited: ${n.log()}`);
      return (await dig(n, 'nothing.vxnet')).status === 'NXDOMAIN';
    }, { timeoutMs: 20_000, intervalMs: 100, what: `${n.id}'s DNS to answer` });
  }

  // Host 2 needs its block first: ADD until it has one (a refused ADD leaves nothing behind).
  const added = await pollUntil(async () => {
    const r = await cluster.add(h2, {}, 'K8S_POD_NAME=far-away');
    return r.outcome.code === 0 ? r : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200, what: 'an ADD on host 2' });
  const returned = performance.now();
  const ip = bare(resultAddrs(added.outcome.json)[0] ?? '');
  t.ok(ip, `ADD on host 2: ${describe(added.outcome).slice(0, 80)}`);
  t.same((await dig(h2, 'far-away.vxnet')).answers, [ip], 'host 2 answers for its own container');
  await pollUntil(async () => (await dig(h1, 'far-away.vxnet')).answers[0] === ip, { timeoutMs: 10_000, intervalMs: 5, what: 'host 1 to resolve host 2\'s container' });
  const crossMs = performance.now() - returned;
  t.comment(`host 2's ADD returned -> host 1 answers (dig's own start included): ${crossMs.toFixed(0)} ms`);
  t.ok(crossMs < 5000, `host 1 resolves far-away.vxnet (${crossMs.toFixed(0)} ms after the ADD returned on host 2)`);

  h2.vxnetd.kill('SIGKILL');
  const killed = performance.now();
  await pollUntil(async () => (await dig(h1, 'far-away.vxnet')).status === 'NXDOMAIN', { timeoutMs: 40_000, intervalMs: 200, what: 'host 2\'s names to leave host 1' });
  const goneMs = performance.now() - killed;
  t.comment(`host 2 killed -> its name NXDOMAIN on host 1 after ${(goneMs / 1000).toFixed(1)} s (lease TTL 10 s)`);
  t.ok(goneMs > 5000, 'not before the lease could expire (the names were not revoked: a crash)');
  t.pass('a killed host\'s names disappear after its lease TTL');
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`) ?? missingBuild();
  if (reason) t.plan(0, reason);
  else await t.test('DNS across two hosts of the overlay', main);
})();
