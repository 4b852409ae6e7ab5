// The operator API's cluster views on a real two-host overlay: two hosts (namespaces on one
// underlay, etcd on it, started by pid), each running the built vxnetd with --store and
// --overlay-network and its API on its own loopback; containers ADDed through the built CNI
// plugin on both hosts (two on A, one on B). Asked on host A (curl inside A's namespace, as an
// operator on A would):
// - /api/v1/hosts: both hosts alive, with their underlay addresses, leases and blocks;
// - /api/v1/blocks: each host's block with size/used/free matching the containers made there
//   (used as each host publishes it under its lease);
// - /api/v1/allocations: A's own (its IPAM store) in `allocations`, B's container in `remote`
//   (the endpoint catalog, from etcd); every answer valid against /api/openapi.json;
// - `vxnetctl --api` hosts and ipam ls, table and --json, say the same as the API;
// - /metrics on both hosts: overlay peers 1, lease held, agent up, etcd round trips > 0, block usage;
// - the web view in chromium (run inside A's namespace) shows both hosts with their blocks and
//   usage, and B's container in the allocation table; screenshot .tap/screenshots/web-view-cluster.png;
// - B's vxnetd SIGKILLed (no revoke): B turns expired in /hosts once its lease (TTL 6 s) runs out,
//   a `hosts` change event arrives on A's event stream, B's block is orphaned, its container
//   leaves `remote`, A's peers drop to 0, and the page shows B expired without a reload;
// - etcd SIGKILLed by pid: /api/v1/hosts answers 503 in vxnet's error JSON and
//   vxnet_etcd_request_errors_total rises on A.
// Root, etcd, chromium and a build needed; everything vxt-named or inside the test's namespaces.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ETCD } from '../helpers/etcd';
import { missingChromium, openPage, screenshot } from '../helpers/browser';
import { type Doc, responseSchema, validate } from '../helpers/openapi';
import { parsePromText, sampleSum, sampleValue } from '../helpers/prom-text';
import { exec, pollUntil } from '../helpers/sh';
import { bare, resultAddrs, runInNetns } from '../integration/helpers/cni';
import { BIN, binaryCluster, missingBuild, type VxnetdNode } from './helpers/binaries';
import { cannotRun } from './helpers/hosts';

const NET = 'vxt-ovapi';
const VNI = 4863;
const SUBNET = '10.235.0.0/16';
const PORT = 8127;
const BASE = `http://127.0.0.1:${PORT}`;
const LEASE_TTL = 6;

interface HttpAnswer { status: number; body: any }

/** GET BASE+path inside n's namespace (its vxnetd listens on that namespace's loopback). */
async function get(n: VxnetdNode, p: string, timeoutS = 5): Promise<HttpAnswer> {
  const r = await exec('ip', ['netns', 'exec', n.host.ns.name, 'curl', '-s', '-m', String(timeoutS), '-w', '\n%{http_code}', `${BASE}${p}`], { timeoutMs: (timeoutS + 5) * 1000 });
  const cut = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(cut + 1));
  const text = r.stdout.slice(0, cut);
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* not JSON (/metrics) */ }
  return { status: r.code === 0 ? status : 0, body };
}

async function getOk(n: VxnetdNode, p: string): Promise<any> {
  const a = await get(n, p);
  if (a.status !== 200) throw new Error(`GET ${p} on ${n.id}: ${a.status} ${JSON.stringify(a.body)}`);
  return a.body;
}

async function metrics(n: VxnetdNode): Promise<ReturnType<typeof parsePromText>> {
  const a = await get(n, '/metrics');
  if (a.status !== 200) throw new Error(`/metrics on ${n.id}: ${a.status}`);
  return parsePromText(String(a.body));
}

/** `vxnetctl ARGS --api BASE` inside n's namespace. */
async function ctl(n: VxnetdNode, args: string[]): Promise<string> {
  const r = await runInNetns(n.host.ns, BIN('vxnetctl'), [...args, '--api', BASE], { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, undefined, 30_000);
  if (r.code !== 0) throw new Error(`vxnetctl ${args.join(' ')} --api: ${r.code} ${r.stderr}`);
  return r.stdout;
}

/** Which IPv4 block (a.b.c.d/p) holds ip. */
function inBlock(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const n = (s: string): number => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const mask = 2 ** 32 - 2 ** (32 - Number(bits));
  return (n(ip) & mask) >>> 0 === (n(net) & mask) >>> 0;
}

async function main(t: Test): Promise<void> {
  t.setTimeout(300_000);
  const cluster = await binaryCluster(t, NET, ['--vni', String(VNI), '--subnet', SUBNET, '--block-prefix', '26']);
  const start = (i: number, id: string): Promise<VxnetdNode> =>
    cluster.startVxnetd(i, id, ['--overlay-network', NET, '--http-listen', `127.0.0.1:${PORT}`, '--lease-ttl', String(LEASE_TTL), '--log-level', 'warn']);
  const [a, b] = [await start(1, 'vxt-ca'), await start(2, 'vxt-cb')];
  for (const n of [a, b]) {
    await pollUntil(async () => {
      if (n.vxnetd.exitCode !== null) throw new Error(`${n.id} exited: ${n.log()}`);
      return (await get(n, '/api/v1/summary')).status === 200;
    }, { timeoutMs: 30_000, intervalMs: 100, what: `${n.id}'s API` });
  }
  const doc = (await getOk(a, '/api/openapi.json')) as Doc;
  const valid = (p: string, body: unknown): string[] => validate(doc, responseSchema(doc, p), body);

  /** An ADD on n, retried until the host has its block (a refused ADD leaves nothing behind). */
  const add = (n: VxnetdNode, name: string) => pollUntil(async () => {
    const r = await cluster.add(n, {}, `K8S_POD_NAME=${name}`);
    return r.outcome.code === 0 ? { ...r, name, ip: bare(resultAddrs(r.outcome.json)[0] ?? '') } : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200, what: `an ADD of ${name} on ${n.id}` });
  const a0 = await add(a, 'api-a0');
  const a1 = await add(a, 'api-a1');
  const b0 = await add(b, 'api-b0');
  t.ok(a0.ip && a1.ip && b0.ip, `ADDs: ${a0.ip}, ${a1.ip} on A; ${b0.ip} on B`);

  let blockA = '';
  let blockB = '';
  await t.test('/api/v1/hosts on A: both hosts, their underlay, lease and block', async (t) => {
    const body = await pollUntil(async () => {
      const x = await getOk(a, '/api/v1/hosts');
      return x.hosts.length === 2 && x.hosts.every((h: any) => h.state === 'alive' && h.blocks === 1) ? x : undefined;
    }, { timeoutMs: 20_000, intervalMs: 200, what: 'two alive hosts with a block each' });
    t.same(valid('/api/v1/hosts', body), [], 'valid against the OpenAPI document');
    const [ha, hb] = ['vxt-ca', 'vxt-cb'].map((id) => body.hosts.find((h: any) => h.id === id));
    t.match(ha, { address: a.host.underlay, state: 'alive', self: true, blocks: 1, networks: [{ network: NET }] }, `A: ${a.host.underlay}, this host`);
    t.match(hb, { address: b.host.underlay, state: 'alive', self: false, blocks: 1, networks: [{ network: NET }] }, `B: ${b.host.underlay}, another host`);
    for (const h of [ha, hb]) {
      t.ok(h.leaseTtl > 0 && h.leaseTtl <= LEASE_TTL, `${h.id}'s lease: ${h.leaseTtl} s left of ${LEASE_TTL}`);
      t.ok(Date.parse(h.leaseExpiresAt) > Date.now() - 2000, `${h.id}'s lease expires ahead (${h.leaseExpiresAt})`);
      t.ok(Date.parse(h.since) <= Date.now(), `${h.id} registered at ${h.since}`);
      t.equal(h.networks[0].blocks.length, 1, `${h.id} holds one block of ${NET}: ${h.networks[0].blocks.join(' ')}`);
    }
    blockA = ha.networks[0].blocks[0];
    blockB = hb.networks[0].blocks[0];
    t.not(blockA, blockB, 'different blocks');
    t.ok(inBlock(a0.ip, blockA) && inBlock(a1.ip, blockA), `A's containers are in A's block ${blockA}`);
    t.ok(inBlock(b0.ip, blockB), `B's container is in B's block ${blockB}`);
    t.match(await getOk(a, '/api/v1/summary'), { store: 'etcd', hosts: 2, allocations: 2, networks: 1 }, 'summary: 2 hosts, A\'s 2 allocations');
  });

  await t.test('/api/v1/blocks on A: each host\'s block, used = the containers made there', async (t) => {
    const body = await pollUntil(async () => {
      const x = await getOk(a, `/api/v1/blocks?network=${NET}`);
      const used = (cidr: string): number | null | undefined => x.blocks.find((bl: any) => bl.cidr === cidr)?.used;
      return used(blockA) === 2 && used(blockB) === 1 ? x : undefined;
    }, { timeoutMs: 20_000, intervalMs: 200, what: 'usage 2 on A\'s block and 1 on B\'s (published at lease renewals)' });
    t.same(valid('/api/v1/blocks', body), [], 'valid against the OpenAPI document');
    t.equal(body.blocks.length, 2, 'two blocks');
    const local = (await getOk(a, '/api/v1/networks')).networks.find((n: any) => n.name === NET);
    for (const [cidr, host, used] of [[blockA, 'vxt-ca', 2], [blockB, 'vxt-cb', 1]] as const) {
      const bl = body.blocks.find((x: any) => x.cidr === cidr);
      t.match(bl, { network: NET, host, state: 'held', used }, `${cidr}: held by ${host}, ${used} used`);
      t.equal(BigInt(bl.free), BigInt(bl.size) - BigInt(used), `${cidr}: free = size ${bl.size} - used ${used}`);
      t.ok(Date.parse(bl.usageAt) > 0, `${cidr}: usage published at ${bl.usageAt}`);
      t.equal(bl.size, local.local.size, `${cidr}: the same size as A's own pool of the block (${local.local.size})`);
    }
    t.match(local, { mode: 'overlay', used: 3, local: { used: 2 } }, '/networks: the cluster uses 3, this host 2');
    t.equal(BigInt(local.size), 2n * BigInt(local.local.size), '/networks: size sums both hosts\' blocks');
  });

  await t.test('/api/v1/allocations on A: its own from its store, B\'s from the catalog', async (t) => {
    const body = await pollUntil(async () => {
      const x = await getOk(a, '/api/v1/allocations');
      return x.remote.length === 1 ? x : undefined;
    }, { timeoutMs: 15_000, intervalMs: 200, what: 'B\'s container in A\'s remote allocations' });
    t.same(valid('/api/v1/allocations', body), [], 'valid against the OpenAPI document');
    t.same(body.allocations.map((x: any) => [x.address, x.name, x.containerId, x.host, x.ifname]).sort(),
      [[a0.ip, 'api-a0', a0.call.containerId, 'vxt-ca', 'eth0'], [a1.ip, 'api-a1', a1.call.containerId, 'vxt-ca', 'eth0']].sort(), 'allocations: A\'s two, from its store');
    t.same(body.remote, [{ network: NET, address: b0.ip, family: 4, containerId: b0.call.containerId, name: 'api-b0', runtime: 'cni', aliases: [], host: 'vxt-cb',
      endpoint: `vxt-cb/${NET}/${b0.call.containerId}` }], 'remote: B\'s container, with its host and endpoint id');
    const q = await getOk(a, '/api/v1/allocations?q=api-b');
    t.same([q.allocations.length, q.remote.map((x: any) => x.address)], [0, [b0.ip]], '?q= filters both');
    const byAddr = await getOk(a, `/api/v1/allocations?address=${a0.ip}`);
    t.same([byAddr.allocations.map((x: any) => x.address), byAddr.remote.length], [[a0.ip], 0], '?address= filters both');
    const onB = await getOk(b, '/api/v1/allocations');
    t.same([onB.allocations.map((x: any) => x.address), onB.remote.map((x: any) => x.address).sort()], [[b0.ip], [a0.ip, a1.ip].sort()], 'and the other way round on B');
  });

  await t.test('vxnetctl --api on A: hosts and ipam ls say what the API says', async (t) => {
    const hosts = JSON.parse(await ctl(a, ['hosts', '--json']));
    t.same(hosts.hosts.map((h: any) => [h.id, h.underlay, h.networks[0]?.blocks]).sort(),
      [['vxt-ca', a.host.underlay, [blockA]], ['vxt-cb', b.host.underlay, [blockB]]], 'hosts --json: both, underlay and block');
    t.same(hosts.blocks.map((x: any) => [x.block, x.hostId, x.state]).sort(), [[blockA, 'vxt-ca', 'held'], [blockB, 'vxt-cb', 'held']].sort(), 'hosts --json: the blocks');
    const table = await ctl(a, ['hosts']);
    for (const [id, ip, block] of [['vxt-ca', a.host.underlay, blockA], ['vxt-cb', b.host.underlay, blockB]]) {
      t.ok(table.split('\n').some((l) => l.includes(id) && l.includes(ip) && l.includes(block) && /alive/.test(l)), `hosts table: ${id} ${ip} ${block} alive`);
    }
    const ls = JSON.parse(await ctl(a, ['ipam', 'ls', '--json']));
    const api = await getOk(a, '/api/v1/allocations');
    t.same(ls.allocations, api.allocations.map(({ host: _h, ...x }: any) => x), 'ipam ls --json: the API\'s allocations of A');
    const lsTable = await ctl(a, ['ipam', 'ls']);
    for (const c of [a0, a1]) t.ok(lsTable.split('\n').some((l) => l.includes(c.ip) && l.includes(c.name)), `ipam ls table: ${c.ip} ${c.name}`);
    t.notMatch(lsTable, b0.ip, 'ipam ls is this host\'s store: B\'s address not in it');
  });

  await t.test('/metrics with --store: overlay and etcd families have real values', async (t) => {
    for (const [n, block, used] of [[a, blockA, 2], [b, blockB, 1]] as const) {
      const m = await pollUntil(async () => {
        const x = await metrics(n);
        return sampleValue(x, 'vxnet_overlay_peers', { network: NET }) === 1 ? x : undefined;
      }, { timeoutMs: 10_000, intervalMs: 200, what: `${n.id}'s overlay peers = 1` });
      t.equal(sampleValue(m, 'vxnet_overlay_peers', { network: NET }), 1, `${n.id}: 1 peer on ${NET}`);
      t.equal(sampleValue(m, 'vxnet_overlay_lease_held'), 1, `${n.id}: lease held`);
      t.equal(sampleValue(m, 'vxnet_overlay_agent_up'), 1, `${n.id}: agent up`);
      t.equal(sampleValue(m, 'vxnet_overlay_lease_losses_total'), 0, `${n.id}: no lease lost`);
      const trips = sampleSum(m, 'vxnet_etcd_request_duration_seconds_count', { result: 'ok' });
      t.ok(trips > 0, `${n.id}: ${trips} etcd round trips ok`);
      t.equal(sampleSum(m, 'vxnet_etcd_request_errors_total'), 0, `${n.id}: no etcd errors yet`);
      t.equal(sampleValue(m, 'vxnet_ipam_block_used_addresses', { network: NET, block }), used, `${n.id}: block ${block} ${used} used`);
    }
  });

  // The web view on A, in chromium inside A's namespace; kept open to see B leave.
  const { page, problems } = await openPage(t, BASE, { netns: a.host.ns.name });
  await t.test('the web view on A shows both hosts with their blocks and usage', async (t) => {
    try {
      await page.goto(`${BASE}/ui/`);
      await page.evaluate('window.vxtNoReload = true');
      for (const [id, ip, block, used] of [['vxt-ca', a.host.underlay, blockA, 2], ['vxt-cb', b.host.underlay, blockB, 1]] as const) {
        const row = page.locator(`#hosts tr.host-row[data-host="${id}"]`);
        await row.waitFor({ timeout: 15_000 });
        const text = (await row.innerText()).replace(/\s+/g, ' ');
        t.match(text, ip, `${id}'s row: ${text}`);
        t.match(text, /alive/, `${id} alive`);
        const blockRow = page.locator('#hosts tr.block-row', { hasText: block });
        await blockRow.locator('.usage-text', { hasText: `${used} / ` }).waitFor({ timeout: 10_000 });
        t.match((await blockRow.innerText()).replace(/\s+/g, ' '), new RegExp(`${block.replace(/[./]/g, '\\$&')} ${NET} ${used} / \\d+ used`), `${block} under ${id}: ${used} used`);
      }
      t.match(await page.locator('#hosts tr.host-row[data-host="vxt-ca"]').innerText(), /this host/, 'A tagged as this host');
      const rowB = page.locator(`#allocations tr.allocation[data-address="${b0.ip}"]`);
      await rowB.waitFor({ timeout: 10_000 });
      t.match((await rowB.innerText()).replace(/\s+/g, ' '), /api-b0 .*vxt-cb/, 'B\'s container in the allocation table, on host vxt-cb');
      t.equal(await page.locator('#allocations tr.allocation').count(), 3, 'three rows: two of A, one of B');
      await page.locator('#count-hosts .card-value', { hasText: '2' }).waitFor({ timeout: 5000 });
      t.pass('the header counts 2 hosts');
    } finally {
      await screenshot(t, page, 'web-view-cluster.png');
    }
  });

  await t.test('B leaves (SIGKILL, no revoke): expired on A once its lease runs out, announced', async (t) => {
    const stream = spawn('ip', ['netns', 'exec', a.host.ns.name, 'curl', '-sN', `${BASE}/api/v1/events`], { stdio: ['ignore', 'pipe', 'ignore'] });
    t.teardown(() => { if (stream.exitCode === null && stream.signalCode === null) stream.kill('SIGKILL'); });
    let events = '';
    stream.stdout!.on('data', (d: Buffer) => { events += d.toString(); });
    // The stream compares hosts once a second; let one comparison pass before B goes.
    await pollUntil(() => events.includes(':') || events.includes('event'), { timeoutMs: 5000, what: 'the event stream open' }).catch(() => undefined);
    const mark = events.length;
    b.vxnetd.kill('SIGKILL');
    const killed = Date.now();
    const body = await pollUntil(async () => {
      const x = await getOk(a, '/api/v1/hosts');
      return x.hosts.find((h: any) => h.id === 'vxt-cb')?.state === 'expired' ? x : undefined;
    }, { timeoutMs: (LEASE_TTL + 15) * 1000, intervalMs: 200, what: 'B expired in A\'s /hosts' });
    const ms = Date.now() - killed;
    t.comment(`B killed -> expired in A's /hosts after ${(ms / 1000).toFixed(1)} s (lease TTL ${LEASE_TTL} s)`);
    t.ok(ms > 1000, 'not at once: B\'s lease was not revoked, it expired');
    // Its address is null once etcd has dropped its host record with the lease; read in between
    // (the lease already gone, the record still listed) it is still its underlay address.
    t.match(body.hosts.find((h: any) => h.id === 'vxt-cb'), { state: 'expired', leaseTtl: null, leaseExpiresAt: null, blocks: 1 }, 'B: expired, its block still reserved for it');
    t.match(body.hosts.find((h: any) => h.id === 'vxt-ca'), { state: 'alive' }, 'A: alive');
    t.same(valid('/api/v1/hosts', body), [], 'valid against the OpenAPI document');
    await pollUntil(() => events.slice(mark).includes('"resource":"hosts"'), { timeoutMs: 5000, what: 'a hosts change event' });
    t.pass('A\'s event stream announced the hosts change');
    const blocks = await getOk(a, `/api/v1/blocks?network=${NET}`);
    t.match(blocks.blocks.find((x: any) => x.cidr === blockB), { host: 'vxt-cb', state: 'orphaned' }, `B's block ${blockB} orphaned`);
    t.match(await getOk(a, '/api/v1/summary'), { hosts: 1 }, 'summary: 1 host alive');
    await pollUntil(async () => (await getOk(a, '/api/v1/allocations')).remote.length === 0, { timeoutMs: 15_000, intervalMs: 200, what: 'B\'s container out of remote' });
    t.pass('B\'s container left A\'s remote allocations (its catalog keys expired with its lease)');
    await pollUntil(async () => sampleValue(await metrics(a), 'vxnet_overlay_peers', { network: NET }) === 0, { timeoutMs: 10_000, intervalMs: 200, what: 'A\'s peers = 0' });
    t.pass('A\'s vxnet_overlay_peers went to 0');
    // The page, still open: B shows expired, live, without a reload.
    await page.locator('#hosts tr.host-row[data-host="vxt-cb"]', { hasText: 'expired' }).waitFor({ timeout: 5000 });
    t.pass('the web view shows B expired');
    t.equal(await page.evaluate('window.vxtNoReload === true'), true, 'without a reload');
    t.same(problems, [], 'no page errors, no failed requests, nothing fetched from elsewhere');
  });

  await t.test('etcd stopped: A\'s API answers 503 and the etcd error counter rises', async (t) => {
    const before = sampleSum(await metrics(a), 'vxnet_etcd_request_errors_total');
    await cluster.etcd.kill(0);
    const r = await get(a, '/api/v1/hosts', 30);
    t.equal(r.status, 503, `/hosts with etcd down: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    t.match(r.body, { error: { code: /^(TryAgainLater|IoFailure)$/, message: String } }, 'in vxnet\'s error JSON');
    const after = await pollUntil(async () => {
      const v = sampleSum(await metrics(a), 'vxnet_etcd_request_errors_total');
      return v > before ? v : undefined;
    }, { timeoutMs: 20_000, intervalMs: 500, what: 'vxnet_etcd_request_errors_total to rise' });
    t.ok(after > before, `vxnet_etcd_request_errors_total ${before} -> ${after}`);
    t.equal(a.vxnetd.exitCode, null, 'A\'s vxnetd runs on');
    t.equal((await get(a, '/api/v1/allocations')).status, 200, '/allocations (this host\'s store, the catalog) still answers');
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`) ?? missingBuild() ?? missingChromium();
  if (reason) t.plan(0, reason);
  else await t.test('the operator API\'s cluster views on a two-host overlay', main);
})();

