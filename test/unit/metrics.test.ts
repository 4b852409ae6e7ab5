// vxnetd's metrics, the pure parts: lib/metrics.ts (CellTable, the registry's text), dns/metrics.ts
// (question type and rcode read from the bytes, the counting wrapper), ipam/store/observed.ts
// (committed transactions counted, rolled back ones not), ipam/usage.ts, bin/vxnetd/metrics.ts
// (CNI result codes, Docker methods timed by code), and the strict exposition reader the
// integration test trusts (test/helpers/prom-text.ts), which must refuse broken text.
import * as dnsPacket from 'dns-packet';
import t from 'tap';
import { countedHandler, NO_TYPE, questionType, queryTable, RCODES } from '../../dns/metrics';
import type { Handler } from '../../dns/handler';
import { CellTable, VxnetdMetrics } from '../../lib/metrics';
import { observeStore, tally } from '../../ipam/store/observed';
import type { Allocation, IpamStore, IpamTx, Owner } from '../../ipam/store/types';
import { freeOf, poolUsage } from '../../ipam/usage';
import { cniResultCode, etcdObserverOf, ipamEventsOf, scrapeVips, timedMethods, timedVipKernel } from '../../bin/vxnetd/metrics';
import type { VipKernel } from '../../vip/kernel';
import type { VipView } from '../../vip/model';
import { InvalidNetworkConfig } from '../../lib/errors';
import { parsePromText, sampleSum, sampleValue } from '../helpers/prom-text';

const q = (name: string, type: dnsPacket.RecordType): Buffer => dnsPacket.encode({ type: 'query', id: 7, questions: [{ name, type, class: 'IN' }] });
const reply = (rcode: number): Buffer => { const b = Buffer.alloc(12); b[2] = 0x80; b[3] = rcode; return b; };

t.test('CellTable: cells cached per key, shared per label, bounded', async (t) => {
  const table = new CellTable<number>(['a', 'b'], (k) => (k < 10 ? `k${k}` : 'big'), 3);
  const r1 = table.row(1);
  t.equal(table.row(1), r1, 'the same cells for the same key (no allocation on the hot path)');
  r1[0]!.n += 2;
  table.row(11)[1]!.n++;
  table.row(12)[1]!.n++; // same label as 11
  table.row(5)[0]!.n++; // beyond maxKeys (3 keys cached): counted under "other"
  t.same([...table.entries()].sort(), [['big', 'b', 2], ['k1', 'a', 2], ['other', 'a', 1]], 'entries per label, zero cells left out');
});

t.test('questionType reads the first question\'s type from the bytes', async (t) => {
  t.equal(questionType(q('web.vxnet', 'A')), 1);
  t.equal(questionType(q('_api._tcp.vxnet', 'SRV')), 33);
  t.equal(questionType(q('x', 'AAAA')), 28);
  t.equal(questionType(Buffer.alloc(5)), NO_TYPE, 'too short');
  const noQuestion = Buffer.from(q('a.b', 'A')); noQuestion.writeUInt16BE(0, 4);
  t.equal(questionType(noQuestion), NO_TYPE, 'no question');
  t.equal(questionType(q('web.vxnet', 'A').subarray(0, 20)), NO_TYPE, 'a name running past the end');
});

t.test('countedHandler: type and rcode of sync, async and silent answers; forwarded ones timed', async (t) => {
  const queries = queryTable();
  const seen: number[] = [];
  const answers: Array<ReturnType<Handler['handle']>> = [reply(0), reply(3), undefined, Promise.resolve(reply(2)), reply(5)];
  const inner: Handler = { handle: () => answers.shift(), stats: { queries: 0, refused: 0, malformed: 0, authoritative: 0, forwarded: 0, internalErrors: 0 } };
  const h = countedHandler(inner, { queries, forwarded: (s) => seen.push(s) });
  t.equal(h.stats, inner.stats, 'the inner handler\'s stats');
  h.handle(q('a.vxnet', 'A'), undefined, 'udp');
  h.handle(q('b.vxnet', 'A'), undefined, 'udp');
  h.handle(Buffer.from('junk'), undefined, 'udp');
  const out = await h.handle(q('c.example', 'AAAA'), undefined, 'tcp');
  t.equal(out?.[3], 2, 'the forwarded answer passes through');
  h.handle(q('d', 'TYPE65280' as dnsPacket.RecordType), undefined, 'udp');
  t.same([...queries.entries()].sort(), [['A', 'NOERROR', 1], ['A', 'NXDOMAIN', 1], ['AAAA', 'SERVFAIL', 1], ['invalid', 'none', 1], ['other', 'REFUSED', 1]]);
  t.equal(seen.length, 1, 'one forwarded answer timed');
  t.ok(seen[0]! >= 0 && seen[0]! < 1, 'in seconds');
  t.equal(RCODES.length, 17, '16 rcodes and none');
});

interface FakeTx { reserve(o: Owner): Promise<boolean>; releaseByOwner(network: string): Promise<Allocation[]>; releaseAddress(): Promise<Allocation | undefined>; countByNetwork(): Promise<number> }
const alloc = (network: string, runtime: string, address: string): Allocation => ({ network, runtime, containerId: 'c', ifname: 'eth0', address, family: 4, rangeSet: 0, since: 0 });

function fakeStore(): IpamStore {
  const tx: FakeTx = {
    reserve: async () => true,
    releaseByOwner: async (network) => [alloc(network, 'cni', '10.0.0.2'), alloc(network, 'cni', 'fd00::2')],
    releaseAddress: async () => alloc('d', 'docker', '10.9.0.2'),
    countByNetwork: async () => 42,
  };
  return {
    description: 'fake',
    withLock: (fn) => fn(tx as unknown as IpamTx),
    view: (fn) => fn(tx as unknown as IpamTx),
    check: async () => undefined,
    close: async () => undefined,
  };
}

t.test('observeStore: what committed transactions reserved and released, per network and runtime', async (t) => {
  const events: string[] = [];
  const store = observeStore(fakeStore(), {
    allocated: (n, r, c) => events.push(`+${n}/${r}/${c}`),
    released: (n, r, c) => events.push(`-${n}/${r}/${c}`),
  });
  const owner: Owner = { network: 'n1', containerId: 'c', ifname: 'eth0', runtime: 'cni' };
  await store.withLock(async (tx) => {
    await tx.reserve(owner, { family: 4, value: 1n }, 0);
    await tx.reserve(owner, { family: 6, value: 1n }, 1);
    await tx.releaseByOwner('n2', 'c', undefined, 'del');
    await tx.releaseAddress('d', { family: 4, value: 2n }, 'x');
    t.equal(events.length, 0, 'nothing before the transaction committed');
    t.equal(await tx.countByNetwork('n1'), 42, 'other methods pass through');
  });
  t.same(events, ['+n1/cni/2', '-n2/cni/2', '-d/docker/1']);
  events.length = 0;
  await t.rejects(store.withLock(async (tx) => { await tx.reserve(owner, { family: 4, value: 1n }, 0); throw new Error('rolled back'); }));
  t.same(events, [], 'a transaction that threw (rolled back) counts nothing');
  t.equal(store.description, 'fake');
  t.same([...tally([owner, owner, { ...owner, runtime: 'docker' }]).values()], [{ network: 'n1', runtime: 'cni', count: 2 }, { network: 'n1', runtime: 'docker', count: 1 }]);
});

t.test('poolUsage: size, used and blocks from the pools\' definitions', async (t) => {
  const set = (subnet: string, start: string, end: string, gw: string): unknown => [{ subnet, rangeStart: start, rangeEnd: end, gateway: gw }];
  const pools = [
    { network: 'one', definition: JSON.stringify([set('10.1.0.0/24', '10.1.0.1', '10.1.0.254', '10.1.0.1')]), updated: 0 },
    { network: 'two', definition: JSON.stringify([set('10.2.0.0/29', '10.2.0.2', '10.2.0.6', '10.2.0.1'), set('fd00::/125', 'fd00::2', 'fd00::7', 'fd00::1')]), updated: 0 },
    { network: 'bad', definition: 'not json', updated: 0 },
  ];
  const held: Record<string, Allocation[]> = { one: [alloc('one', 'cni', '10.1.0.5')], two: [alloc('two', 'cni', '10.2.0.2'), { ...alloc('two', 'cni', 'fd00::2'), rangeSet: 1, family: 6 }, { ...alloc('two', 'cni', 'fd00::3'), rangeSet: 1, family: 6 }], bad: [] };
  const tx = {
    listPools: async () => pools,
    countByNetwork: async (n: string) => held[n]!.length,
    list: async (f: { network: string }) => held[f.network]!,
  } as unknown as IpamTx;
  t.same(await poolUsage(tx), [
    { network: 'one', size: 253, used: 1, blocks: [{ block: '10.1.0.0/24', size: 253, used: 1 }] },
    { network: 'two', size: 11, used: 3, blocks: [{ block: '10.2.0.0/29', size: 5, used: 1 }, { block: 'fd00::/125', size: 6, used: 2 }] },
    { network: 'bad', size: undefined, used: 0, blocks: [] },
  ], 'gateways inside a range are not counted; an unreadable definition keeps its used count');
  t.equal(freeOf(5, 7), 0, 'free is never below zero');
});

t.test('cniResultCode and timedMethods', async (t) => {
  t.equal(cniResultCode({ stdout: '{"cniVersion":"1.1.0"}', exitCode: 0 }), 0);
  t.equal(cniResultCode({ stdout: '{"code":7,"msg":"x"}', exitCode: 1 }), 7);
  t.equal(cniResultCode({ stdout: 'garbage', exitCode: 1 }), 999);
  const m = new VxnetdMetrics({ defaultMetrics: false });
  const methods = timedMethods({
    'NetworkDriver.CreateEndpoint': async () => ({}),
    'NetworkDriver.Join': async () => { throw new InvalidNetworkConfig('nope'); },
  }, m);
  await methods['NetworkDriver.CreateEndpoint']!({});
  await t.rejects(methods['NetworkDriver.Join']!({}), { message: 'nope' }, 'the error passes through');
  const f = parsePromText(await m.text());
  t.equal(sampleValue(f, 'vxnet_docker_plugin_call_duration_seconds_count', { method: 'NetworkDriver.CreateEndpoint', code: '0' }), 1);
  t.equal(sampleValue(f, 'vxnet_docker_plugin_call_duration_seconds_count', { method: 'NetworkDriver.Join', code: String(new InvalidNetworkConfig('x').code) }), 1);
});

t.test('VxnetdMetrics: valid text, Prometheus naming, scrape-time figures, one registry each', async (t) => {
  const a = new VxnetdMetrics();
  const b = new VxnetdMetrics();
  ipamEventsOf(a).allocated('n1', 'cni', 2);
  const table = new CellTable<string>(['x', 'y'], (k) => k);
  table.row('p')[1]!.n += 5;
  a.cellCounter('test_cells_total', 'cells', ['first', 'second'], table);
  let peers = 3;
  a.gauge('test_peers', 'peers', ['state'], () => [{ labels: { state: 'up' }, value: peers }]);
  a.gauge('test_broken', 'a read that fails', [], () => { throw new Error('no'); });
  a.counter('test_sent_total', 'sent', ['upstream'], () => [{ labels: { upstream: '127.0.0.1:53' }, value: 9 }]);
  const weird = new CellTable<string>(['v'], (k) => k);
  weird.row('quote " back \\ nl \n')[0]!.n++;
  a.cellCounter('test_escapes_total', 'label values escaped', ['l', 'v'], weird);
  let f = parsePromText(await a.text());
  t.equal(sampleValue(f, 'vxnet_ipam_allocations_total', { network: 'n1', runtime: 'cni' }), 2);
  t.equal(sampleValue(f, 'vxnet_test_cells_total', { first: 'p', second: 'y' }), 5);
  t.equal(sampleValue(f, 'vxnet_test_peers', { state: 'up' }), 3);
  t.equal(sampleValue(f, 'vxnet_test_sent_total', { upstream: '127.0.0.1:53' }), 9);
  t.equal(sampleValue(f, 'vxnet_test_escapes_total', { l: 'quote " back \\ nl \n' }), 1, 'escaped label values read back');
  t.ok(sampleValue(f, 'process_cpu_user_seconds_total') !== undefined, 'process metrics');
  t.equal(sampleValue(f, 'vxnet_build_info'), 1);
  peers = 4;
  f = parsePromText(await a.text());
  t.equal(sampleValue(f, 'vxnet_test_peers', { state: 'up' }), 4, 'gauges read at each scrape');
  t.equal(sampleSum(parsePromText(await b.text()), 'vxnet_ipam_allocations_total'), 0, 'another instance has its own registry');
  for (const fam of f.values()) {
    if (!fam.name.startsWith('vxnet_')) continue;
    if (fam.type === 'counter') t.match(fam.name, /_total$/, `${fam.name}: a counter ends in _total`);
    if (fam.type === 'histogram') t.match(fam.name, /_seconds$/, `${fam.name}: a histogram of seconds`);
    t.not(fam.help, '', `${fam.name} has help`);
  }
});

t.test('the strict reader refuses broken exposition text', async (t) => {
  const ok = '# HELP x_total X\n# TYPE x_total counter\nx_total{a="1"} 3\n';
  t.equal(sampleValue(parsePromText(ok), 'x_total', { a: '1' }), 3);
  const bad: Record<string, string> = {
    'no final newline': ok.trimEnd(),
    'bad value': '# TYPE g gauge\ng 1x\n',
    'bad escape': '# TYPE g gauge\ng{a="\\t"} 1\n',
    'series twice': '# TYPE g gauge\ng{a="1"} 1\ng{a="1"} 2\n',
    'family split': '# TYPE g gauge\ng 1\n# TYPE h gauge\nh 1\ng{a="2"} 1\n',
    'TYPE after samples': 'g 1\n# TYPE g gauge\n',
    'second TYPE': '# TYPE g gauge\n# TYPE g gauge\n',
    'unterminated label': '# TYPE g gauge\ng{a="1} 1\n',
    'negative counter': '# TYPE c_total counter\nc_total -1\n',
    'histogram without +Inf': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    'histogram not cumulative': '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    'histogram +Inf != count': '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n',
    'bad metric name': '# TYPE 9g gauge\n',
  };
  for (const [what, text] of Object.entries(bad)) t.throws(() => parsePromText(text), what);
});

t.test('VIPs by protocol and backends by state at scrape, the table\'s batches timed, etcd round trips', async (t) => {
  const m = new VxnetdMetrics({ defaultMetrics: false });
  const backend = (state: 'up' | 'unhealthy' | 'starting'): VipView['backends'][number] => ({ endpoint: 'e', name: 'n', host: 'h', ip: '10.0.0.2', port: 80, weight: 1, state });
  let vips: VipView[] = [
    { vip: '/web:80/tcp', name: 'web', addresses: ['11.0.0.1'], protocol: 'tcp', port: 80, backends: [backend('up'), backend('up'), backend('unhealthy')] },
    { vip: '10.0.0.9:53/udp', addresses: ['10.0.0.9'], protocol: 'udp', port: 53, backends: [backend('starting')] },
  ];
  scrapeVips(m, { vips: () => vips });
  let calls = 0;
  const kernel: VipKernel = {
    start: async () => undefined, stop: async () => undefined,
    sync: async () => { calls++; return {} as never; },
    apply: async () => { calls++; throw new Error('nft refused'); },
  };
  const timed = timedVipKernel(kernel, m, 'vxt_vip');
  await timed.sync([]);
  await t.rejects(timed.apply!({ put: [], remove: [] } as never), { message: 'nft refused' });
  t.equal(calls, 2, 'the table\'s own methods ran');
  t.equal(timed.forget, undefined, 'no forget when the table has none');
  const obs = etcdObserverOf(m);
  obs.request('txn', 0.003, true);
  obs.request('range', 2.5, false);
  let f = parsePromText(await m.text());
  t.equal(sampleValue(f, 'vxnet_vips', { protocol: 'tcp' }), 1);
  t.equal(sampleValue(f, 'vxnet_vips', { protocol: 'udp' }), 1);
  t.equal(sampleValue(f, 'vxnet_vip_backends', { state: 'up' }), 2);
  t.equal(sampleValue(f, 'vxnet_vip_backends', { state: 'unhealthy' }), 1);
  t.equal(sampleValue(f, 'vxnet_vip_backends', { state: 'starting' }), 1);
  t.equal(sampleValue(f, 'vxnet_nft_batch_duration_seconds_count', { table: 'vxt_vip', result: 'ok' }), 1);
  t.equal(sampleValue(f, 'vxnet_nft_batch_duration_seconds_count', { table: 'vxt_vip', result: 'error' }), 1);
  t.equal(sampleValue(f, 'vxnet_etcd_request_duration_seconds_count', { operation: 'txn', result: 'ok' }), 1);
  t.equal(sampleValue(f, 'vxnet_etcd_request_errors_total', { operation: 'range' }), 1);
  vips = [];
  f = parsePromText(await m.text());
  t.equal(sampleValue(f, 'vxnet_vip_backends', { state: 'up' }), 0, 'read again at the next scrape');
});
