// OverlayAgent in-process (real etcd, host namespaces) on a subnet of two blocks whose holders
// both died while no peer watched: nobody saw their member records vanish, so nobody marked
// their blocks orphaned. A third host starting then must not wait forever: it starts (it does
// not fail on the full subnet), says why it has no block, marks the dead holders' blocks
// itself, and claims one once the grace period is over, within about a second.
import t, { Test } from 'tap';
import { existsSync } from 'node:fs';
import { formatCidr } from '../../ipam/addr';
import { parseOverlayNetwork } from '../../overlay/plan';
import { readLocalState } from '../../overlay/local';
import { ETCD, startEtcd } from '../helpers/etcd';
import { pollUntil } from '../helpers/sh';
import { cannotRun, newUnderlay } from './helpers/hosts';
import { overlayCluster } from './helpers/cluster';

const NET = parseOverlayNetwork({ name: 'vxt-ovd', vni: 4350, subnets: ['10.234.0.0/23'], blockPrefix: 24 });
const TTL = 2;
const GRACE_MS = 2000;

async function main(t: Test): Promise<void> {
  t.setTimeout(60_000);
  const etcd = await startEtcd(t);
  const underlay = await newUnderlay(t, 1500);
  const cl = overlayCluster(t, underlay, { endpoints: etcd.clientUrls, network: NET, ttlSeconds: TTL, graceMs: GRACE_MS });
  const [a, b] = [await cl.addNode(1), await cl.addNode(2)];
  t.same([a.v4, b.v4], ['10.234.0.0/24', '10.234.1.0/24'], 'two hosts hold both blocks');
  // Both die (no revoke): their records expire after the TTL with no live peer to see it.
  await a.agent.stop({ revoke: false });
  await b.agent.stop({ revoke: false });
  const registry = a.agent.registry;
  await pollUntil(async () => (await registry.hosts()).items.length === 0, { timeoutMs: TTL * 1000 + 3000, intervalMs: 50, what: 'both leases expired' });
  t.ok((await registry.blocks(NET.name)).every((x) => x.orphanedAt === undefined), 'nobody marked their blocks');

  const host = await underlay.addHost(3);
  const started = Date.now();
  const c = await cl.startAgent(host, 'host-3');
  t.pass('the third host starts on a full subnet');
  // Right after start its blocks are marked (by itself) and it waits for the end of the grace period.
  const waiting = c.shortage(NET.name);
  const state = readLocalState(cl.localDir('host-3'), NET.name);
  t.ok(waiting !== undefined || c.blocks(NET.name).length === 1, 'waiting (or, on a slow machine, done already)');
  if (waiting) t.same(state?.blocks, [], 'its local state has no block...');
  if (waiting) t.equal(state?.noBlock?.blocks, 2, '...and says why');
  await pollUntil(() => c.blocks(NET.name).length === 1, { timeoutMs: GRACE_MS + 5000, intervalMs: 10, what: 'host-3 has a block' });
  const ms = Date.now() - started;
  t.equal(formatCidr(c.blocks(NET.name)[0]), '10.234.0.0/24', 'the lowest reclaimable block');
  t.ok(ms >= GRACE_MS && ms <= GRACE_MS + 1500, `claimed ${ms} ms after it started (grace ${GRACE_MS} ms, started with it)`);
  t.same(readLocalState(cl.localDir('host-3'), NET.name)?.blocks.map(formatCidr), ['10.234.0.0/24'], 'local state: the block, no reason');
  t.equal(readLocalState(cl.localDir('host-3'), NET.name)?.noBlock, undefined);
  const members = await pollUntil(async () => {
    const m = (await registry.members(NET.name)).items;
    return m.length === 1 && m;
  }, { timeoutMs: 3000, what: 'host-3\'s member record' });
  t.same(members.map((m) => [m.id, m.blocks.map(formatCidr)]), [['host-3', ['10.234.0.0/24']]], 'its member record, for peers');
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`);
  if (reason) t.plan(0, reason);
  else await t.test('a waiting host marks dead holders nobody watched, and claims after the grace period', main);
})();
