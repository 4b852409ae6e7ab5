// lib/service.ts: the runner starts services in order, stops them in reverse (once), undoes
// a failed start, logs a failed stop without throwing, and reacts to the first signal only.
import t from 'tap';
import { EventEmitter } from 'node:events';
import { createLogger } from '../../lib/log';
import { type Service, onFirstSignal, startServices } from '../../lib/service';

interface Line { level: string; msg: string; service?: string; ms?: number; error?: string }

function recorder(): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  return { lines, log: createLogger('test', 'debug', (l) => { lines.push(JSON.parse(l) as Line); }) };
}

/** A service that records its calls in `calls`; `fail` makes start or stop reject. */
function svc(name: string, calls: string[], fail: { start?: boolean; stop?: boolean } = {}): Service {
  return {
    name,
    start: async () => { calls.push(`start ${name}`); if (fail.start) throw new Error(`${name} cannot start`); },
    stop: async () => { calls.push(`stop ${name}`); if (fail.stop) throw new Error(`${name} cannot stop`); },
  };
}

t.test('starts in order, stops in reverse, once', async (t) => {
  const calls: string[] = [];
  const { log, lines } = recorder();
  const running = await startServices([svc('a', calls), svc('b', calls), svc('c', calls)], log);
  t.same(calls, ['start a', 'start b', 'start c']);
  t.same(running.names, ['a', 'b', 'c']);
  await Promise.all([running.stop(), running.stop()]);
  await running.stop();
  t.same(calls, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a'], 'each stopped once, in reverse');
  t.same(lines.map((l) => `${l.msg} ${l.service}`), ['started a', 'started b', 'started c', 'stopped c', 'stopped b', 'stopped a']);
  t.ok(lines.every((l) => typeof l.ms === 'number' && l.ms >= 0), 'every start and stop logged with its time');
});

t.test('a start waits for the one before it', async (t) => {
  const calls: string[] = [];
  let release: () => void = () => undefined;
  const slow: Service = { name: 'slow', start: () => new Promise<void>((r) => { release = () => { calls.push('slow ready'); r(); }; }), stop: async () => undefined };
  const pending = startServices([slow, svc('next', calls)], recorder().log);
  await new Promise((r) => setImmediate(r));
  t.same(calls, [], 'next not started while slow is starting');
  release();
  await (await pending).stop();
  t.same(calls, ['slow ready', 'start next', 'stop next']);
});

t.test('a failed start stops the started ones in reverse and throws its error; later ones never start', async (t) => {
  const calls: string[] = [];
  const { log, lines } = recorder();
  await t.rejects(startServices([svc('a', calls), svc('b', calls), svc('c', calls, { start: true }), svc('d', calls)], log), { message: 'c cannot start' });
  t.same(calls, ['start a', 'start b', 'start c', 'stop b', 'stop a'], 'c is not stopped (it never started), d never starts');
  t.match(lines.find((l) => l.msg === 'start failed'), { level: 'error', service: 'c', error: 'c cannot start' });
});

t.test('a failed stop is logged, not thrown, and the others still stop', async (t) => {
  const calls: string[] = [];
  const { log, lines } = recorder();
  const running = await startServices([svc('a', calls), svc('b', calls, { stop: true }), svc('c', calls)], log);
  await running.stop();
  t.same(calls.slice(3), ['stop c', 'stop b', 'stop a']);
  t.match(lines.find((l) => l.msg === 'stop failed'), { level: 'error', service: 'b', error: 'b cannot stop' });

  const undo: string[] = [];
  await t.rejects(startServices([svc('x', undo, { stop: true }), svc('y', undo, { start: true })], log), { message: 'y cannot start' },
    'a stop failing while a failed start is undone: the start error is what is thrown');
  t.same(undo, ['start x', 'start y', 'stop x']);
});

t.test('the first signal calls back once and stops listening to the others', async (t) => {
  const source = new EventEmitter();
  const got: string[] = [];
  onFirstSignal((s) => got.push(s), ['SIGTERM', 'SIGINT'], source);
  t.equal(source.listenerCount('SIGTERM') + source.listenerCount('SIGINT'), 2);
  source.emit('SIGINT', 'SIGINT');
  source.emit('SIGTERM', 'SIGTERM');
  t.same(got, ['SIGINT']);
  t.equal(source.listenerCount('SIGTERM') + source.listenerCount('SIGINT'), 0, 'a second signal gets its default action');
  const off = onFirstSignal((s) => got.push(s), ['SIGTERM'], source);
  off();
  source.emit('SIGTERM', 'SIGTERM');
  t.same(got, ['SIGINT'], 'off() stops listening');
});
