// dns/forwarder.ts against stub upstreams on loopback: racing past a mute upstream, demotion
// and restoration, SERVFAIL handling, TC then TCP, the cache, answers that do not match.
import * as dnsPacket from 'dns-packet';
import t, { Test } from 'tap';
import { parseIp } from '../../ipam/addr';
import { ReplyCache } from '../../dns/cache';
import { Forwarder, ForwarderOptions, hostUpstreams } from '../../dns/forwarder';
import { HostPort, formatHostPort } from '../../dns/upstreams';
import { Query, decodeQuery } from '../../dns/wire';
import { Stub, StubMode, startStub } from './helpers/stub';

const loop = (stub: Stub): HostPort => ({ ip: parseIp('127.0.0.1')!, port: stub.port });

function query(name: string, type: dnsPacket.RecordType = 'A'): Query {
  const d = decodeQuery(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] }));
  if (!d.ok) throw new Error(d.reason);
  return d.query;
}

async function forwarder(t: Test, stubs: Stub[], opts: Partial<ForwarderOptions> = {}): Promise<Forwarder> {
  const f = new Forwarder({ upstreams: stubs.map(loop), timeoutMs: 300, ...opts });
  await f.start();
  t.teardown(() => f.stop());
  return f;
}

async function stubs(t: Test, ...modes: StubMode[]): Promise<Stub[]> {
  return Promise.all(modes.map((m) => startStub(t, m)));
}

/** Polls `cond` every 5 ms for at most `ms`. */
async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

t.test('one of two upstreams mute: every answer comes fast (p99 < 50 ms over 200 queries)', async (t) => {
  const [mute, good] = await stubs(t, 'mute', 'answer');
  const f = await forwarder(t, [mute, good], { timeoutMs: 5000 });
  const latencies: number[] = [];
  for (let i = 0; i < 200; i++) {
    const started = process.hrtime.bigint();
    const r = await f.resolve(query(`host-${i}.example`), 'udp');
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (r.rcode !== 'NOERROR' || r.answers.length !== 1) t.fail(`query ${i}: ${r.rcode}`);
  }
  latencies.sort((a, b) => a - b);
  const p50 = latencies[99], p99 = latencies[197];
  t.ok(p99 < 50, `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${latencies[199].toFixed(2)} ms (a sequential forwarder waits out its 5 s timeout)`);
  t.equal(mute.udpReceived, 200, 'with two upstreams both race every query');
  t.equal(good.udpReceived, 200);
});

t.test('three upstreams: a mute one is demoted out of the race, a success restores it', async (t) => {
  const [mute, a, b] = await stubs(t, 'mute', 'answer', 'answer');
  // Ties in failure count are broken by `random`: a constant keeps the pool's order, so the
  // mute upstream (first) races in the first queries.
  const f = await forwarder(t, [mute, a, b], { timeoutMs: 100, random: () => 0.5 });
  const rcodes = new Set<string>();
  for (let i = 0; i < 5; i++) rcodes.add((await f.resolve(query(`warm-${i}.example`), 'udp')).rcode);
  t.same([...rcodes], ['NOERROR'], 'answered while the mute upstream raced');
  t.ok(mute.udpReceived >= 1, `the mute upstream was asked (${mute.udpReceived})`);
  t.ok(await until(() => f.pool.state()[0].failures === mute.udpReceived), 'each of its attempts timed out and counted');
  const before = mute.udpReceived;
  for (let i = 0; i < 50; i++) rcodes.add((await f.resolve(query(`after-${i}.example`), 'udp')).rcode);
  t.same([...rcodes], ['NOERROR']);
  t.equal(mute.udpReceived, before, 'demoted: not asked again while the others answer');
  t.equal(f.pool.state()[1].failures + f.pool.state()[2].failures, 0);
  mute.mode = 'answer';
  for (let i = 0; i <= before; i++) { f.pool.fail(1); f.pool.fail(2); } // the others now look worse
  for (let i = 0; i < 3; i++) rcodes.add((await f.resolve(query(`back-${i}.example`), 'udp')).rcode);
  t.same([...rcodes], ['NOERROR']);
  t.ok(await until(() => f.pool.state()[0].failures === 0), 'answering again restored it', { state: f.pool.state(), mute: mute.udpReceived });
});

t.test('SERVFAIL from one upstream: the other answer wins, the failing one is demoted', async (t) => {
  const [bad, good] = await stubs(t, 'servfail', 'answer');
  const f = await forwarder(t, [bad, good]);
  const r = await f.resolve(query('x.example'), 'udp');
  t.equal(r.rcode, 'NOERROR');
  t.equal(r.answers.length, 1);
  t.ok(await until(() => f.pool.state()[0].failures === 1), 'SERVFAIL counted as a failure');
  t.equal(f.pool.state()[1].failures, 0);
});

t.test('every upstream failing: SERVFAIL after the attempt timeout, not cached', async (t) => {
  const [m1, m2] = await stubs(t, 'mute', 'servfail');
  const f = await forwarder(t, [m1, m2], { timeoutMs: 100 });
  const started = Date.now();
  const r = await f.resolve(query('x.example'), 'udp');
  t.equal(r.rcode, 'SERVFAIL');
  t.ok(Date.now() - started < 1000, `${Date.now() - started} ms`);
  t.equal(f.cache.size, 0);
  const none = new Forwarder({ upstreams: [] });
  t.equal((await none.resolve(query('x.example'), 'udp')).rcode, 'SERVFAIL', 'no upstreams: SERVFAIL');
});

t.test('an answer with TC is fetched again over TCP; a TCP query goes over TCP', async (t) => {
  const [stub] = await Promise.all([startStub(t, 'truncate', { records: 100 })]);
  const f = await forwarder(t, [stub]);
  const r = await f.resolve(query('big.example'), 'udp');
  t.equal(r.rcode, 'NOERROR');
  t.equal(r.answers.length, 100, 'the whole answer, from TCP');
  t.equal(stub.udpReceived, 1);
  t.equal(stub.tcpReceived, 1);
  const r2 = await f.resolve(query('big2.example'), 'tcp');
  t.equal(r2.answers.length, 100);
  t.equal(stub.udpReceived, 1, 'no UDP for a query that came over TCP');
  t.equal(stub.tcpReceived, 2);
});

t.test('the cache answers repeats for the TTL, negative answers too', async (t) => {
  let now = 0;
  const [stub] = [await startStub(t, 'answer', { ttl: 30 })];
  const f = await forwarder(t, [stub], { cache: new ReplyCache({ now: () => now }) });
  t.match((await f.resolve(query('c.example'), 'udp')).answers, [{ ttl: 30 }]);
  now += 10_000;
  const hit = await f.resolve(query('C.EXAMPLE'), 'udp');
  t.match(hit.answers, [{ ttl: 20 }], 'from the cache, aged (names compared without case)');
  t.equal(stub.udpReceived, 1, 'the upstream was asked once');
  now += 20_000;
  await f.resolve(query('c.example'), 'udp');
  t.equal(stub.udpReceived, 2, 'expired: asked again');
  stub.mode = 'nxdomain';
  t.equal((await f.resolve(query('nx.example'), 'udp')).rcode, 'NXDOMAIN');
  t.equal((await f.resolve(query('nx.example'), 'udp')).rcode, 'NXDOMAIN');
  t.equal(stub.udpReceived, 3, 'NXDOMAIN cached');
  now += 10_000;
  await f.resolve(query('nx.example'), 'udp');
  t.equal(stub.udpReceived, 4, 'for the SOA minimum (10 s)');
});

t.test('an answer to another question is ignored', async (t) => {
  const [liar] = await stubs(t, 'wrong-question');
  const f = await forwarder(t, [liar], { timeoutMs: 100 });
  t.equal((await f.resolve(query('q.example'), 'udp')).rcode, 'SERVFAIL');
  t.equal(liar.udpReceived, 1, 'it did answer, with the wrong question');
});

t.test('stop ends queries in flight with SERVFAIL', async (t) => {
  const [mute] = await stubs(t, 'mute');
  const f = new Forwarder({ upstreams: [loop(mute)], timeoutMs: 10_000 });
  await f.start();
  const pending = f.resolve(query('s.example'), 'udp');
  await until(() => mute.udpReceived === 1);
  await f.stop();
  t.equal((await pending).rcode, 'SERVFAIL');
});

t.test('hostUpstreams: resolv.conf read once, minus the listening addresses; none when missing', async (t) => {
  const dir = t.testdir({ 'resolv.conf': 'nameserver 198.51.100.1\nnameserver 10.255.255.53\n' });
  const listening = [{ ip: parseIp('198.51.100.1')!, port: 53 }];
  t.same(hostUpstreams(listening, `${dir}/resolv.conf`).map(formatHostPort), ['10.255.255.53:53']);
  t.same(hostUpstreams(listening, `${dir}/missing`), []);
});
