// dns/batch.ts queryBatch against real loopback servers: answers in the questions' order, at
// most `inFlight` questions outstanding (a server that holds every question 20 ms counts them),
// a server that answers nothing (every question TIMEOUT after its tries, per window, not per
// name), truncated answers fetched over TCP, answers that are not the question's ignored.
import * as dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import t, { type Test } from 'tap';
import { queryBatch } from '../../dns/batch';
import { parseIp, type Ip } from '../../ipam/addr';
import { startStub } from './helpers/stub';

const server = (port: number): { ip: Ip; port: number } => ({ ip: parseIp('127.0.0.1') as Ip, port });

/** A UDP server answering each A question NAME with 10.0.0.N (N from "hN") after delayMs; counts what is outstanding. */
async function slowServer(t: Test, delayMs: number): Promise<{ port: number; received: number; maxOutstanding: number }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const state = { port: sock.address().port, received: 0, maxOutstanding: 0 };
  let outstanding = 0;
  const timers = new Set<NodeJS.Timeout>();
  sock.on('message', (msg, rinfo) => {
    state.received++;
    outstanding++;
    state.maxOutstanding = Math.max(state.maxOutstanding, outstanding);
    const q = dnsPacket.decode(msg);
    const question = q.questions![0];
    const n = Number(/^h(\d+)\./.exec(question.name)?.[1] ?? 0);
    const timer = setTimeout(() => {
      timers.delete(timer);
      outstanding--;
      const answers = [{ name: question.name, type: 'A', class: 'IN', ttl: 5, data: `10.0.0.${n % 250}` } as Answer];
      sock.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: [question], answers }), rinfo.port, rinfo.address);
    }, delayMs);
    timers.add(timer);
  });
  t.teardown(() => new Promise<void>((r) => { for (const x of timers) clearTimeout(x); sock.close(() => r()); }));
  return state;
}

t.test('answers in order, never more than inFlight outstanding', async (t) => {
  const s = await slowServer(t, 20);
  const questions = Array.from({ length: 40 }, (_, i) => ({ name: `h${i}.vxnet`, type: 'A' }));
  const answers = await queryBatch(server(s.port), questions, { inFlight: 5, timeoutMs: 2000 });
  t.equal(answers.length, 40);
  t.same(answers.map((a) => a.data), questions.map((_, i) => [`10.0.0.${i}`]), 'each answer is its own question\'s, in order');
  t.ok(answers.every((a) => a.rcode === 'NOERROR'));
  t.equal(s.received, 40, 'each question asked once');
  t.ok(s.maxOutstanding <= 5, `at most 5 in flight at the server (saw ${s.maxOutstanding})`);
  t.ok(s.maxOutstanding >= 2, `and in parallel (saw ${s.maxOutstanding})`);
});

t.test('a server that answers nothing: every question TIMEOUT after its tries, per window', async (t) => {
  const stub = await startStub(t, 'mute');
  const questions = Array.from({ length: 30 }, (_, i) => ({ name: `m${i}.vxnet`, type: 'A' }));
  const started = Date.now();
  const answers = await queryBatch(server(stub.port), questions, { timeoutMs: 100, tries: 2, inFlight: 64 });
  const took = Date.now() - started;
  t.same(answers.map((a) => a.rcode), questions.map(() => 'TIMEOUT'));
  t.equal(stub.udpReceived, 60, 'two tries each');
  t.ok(took >= 190 && took < 1500, `one window's 2 x 100 ms, not 30 x 200 ms (${took} ms)`);
});

t.test('no server on the port: TIMEOUT (the socket is unconnected), never a throw', async (t) => {
  const stub = await startStub(t, 'mute');
  const port = stub.port;
  await stub.close();
  const answers = await queryBatch(server(port), [{ name: 'a.vxnet', type: 'A' }, { name: 'b.vxnet', type: 'AAAA' }], { timeoutMs: 50, tries: 1 });
  t.same(answers.map((a) => a.rcode), ['TIMEOUT', 'TIMEOUT']);
});

t.test('truncated over UDP: asked again over TCP; wrong questions ignored; rcodes kept', async (t) => {
  const big = await startStub(t, 'truncate', { records: 120 });
  let answers = await queryBatch(server(big.port), [{ name: 'big.vxnet', type: 'A' }], { timeoutMs: 1000 });
  t.equal(answers[0].rcode, 'NOERROR');
  t.equal(answers[0].data.length, 120, 'the whole RRset, over TCP');
  t.equal(big.tcpReceived, 1);
  const wrong = await startStub(t, 'wrong-question');
  answers = await queryBatch(server(wrong.port), [{ name: 'w.vxnet', type: 'A' }], { timeoutMs: 80, tries: 1 });
  t.same(answers, [{ rcode: 'TIMEOUT', data: [] }], 'an answer to another question is not believed');
  const nx = await startStub(t, 'nxdomain');
  answers = await queryBatch(server(nx.port), [{ name: 'n.vxnet', type: 'A' }, { name: 'o.vxnet', type: 'A' }]);
  t.same(answers.map((a) => a.rcode), ['NXDOMAIN', 'NXDOMAIN']);
  t.same(await queryBatch(server(nx.port), []), [], 'no questions: no answers');
});
