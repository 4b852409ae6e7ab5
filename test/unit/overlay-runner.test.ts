// overlay/runner.ts: the overlay agent as one of vxnetd's services. start() returns at once;
// a failed agent start is retried with backoff; stop() stops what started (lease revoked),
// also a start that completes after stop() gave up waiting for it.
import t from 'tap';
import { createLogger } from '../../lib/log';
import { OverlayRunner, type StartAgent } from '../../overlay/runner';
import type { OverlayService, OverlayServiceConfig } from '../../overlay/service';
import { pollUntil } from '../helpers/sh';

const log = createLogger('test', 'error', () => undefined);
const CONFIG: OverlayServiceConfig = { endpoints: ['127.0.0.1:1'], networks: [] };

/** A stand-in for a started agent that records how it was stopped. */
function fakeAgent(): { svc: OverlayService; stopped: () => unknown } {
  let stopped: unknown;
  const svc = { hostId: 'h', agent: { networks: [] }, stop: async (o?: { revoke?: boolean }) => { stopped = o; } } as unknown as OverlayService;
  return { svc, stopped: () => stopped };
}

t.test('retries a failed start, then stops the agent with its lease revoked', async (t) => {
  let attempts = 0;
  const fake = fakeAgent();
  const start: StartAgent = async (c) => {
    t.equal(c, CONFIG, 'the agent gets the typed config as given');
    attempts++;
    if (attempts < 3) throw new Error('etcd unavailable');
    return fake.svc;
  };
  const runner = new OverlayRunner(CONFIG, log, { initialBackoffMs: 5, startAgent: start });
  await runner.start();
  t.equal(await runner.ready(), fake.svc, 'running after two failed starts');
  t.equal(attempts, 3);
  await runner.stop();
  t.same(fake.stopped(), { revoke: true }, 'stopped with its lease revoked');
  t.equal(runner.current, undefined);
});

t.test('start() does not wait for the agent', async (t) => {
  let release: (s: OverlayService) => void = () => undefined;
  const runner = new OverlayRunner(CONFIG, log, { startAgent: () => new Promise((r) => { release = r; }) });
  await runner.start();
  t.equal(runner.current, undefined, 'start resolved while the agent is still starting');
  const fake = fakeAgent();
  release(fake.svc);
  t.equal(await runner.ready(), fake.svc);
  await runner.stop();
});

t.test('no retry after stop', async (t) => {
  let calls = 0;
  const never = new OverlayRunner(CONFIG, log, { initialBackoffMs: 5, startAgent: async () => { calls++; throw new Error('down'); } });
  await never.start();
  await never.stop();
  const after = calls;
  await new Promise((r) => setTimeout(r, 30));
  t.equal(calls, after, 'no attempt after stop (30 ms: several backoff delays)');
});

t.test('a start that completes after stop gave up waiting is undone', async (t) => {
  let release: (s: OverlayService) => void = () => undefined;
  const late = fakeAgent();
  const slow = new OverlayRunner(CONFIG, log, { initialBackoffMs: 5, stopWaitMs: 10, startAgent: () => new Promise((r) => { release = r; }) });
  await slow.start();
  await slow.stop();
  t.equal(slow.current, undefined, 'stop gives up waiting for a slow start');
  release(late.svc);
  await pollUntil(() => late.stopped() !== undefined, { timeoutMs: 2000, what: 'the late start undone' });
  t.same(late.stopped(), { revoke: true }, 'a start that completes after stop is stopped, its lease revoked');
});
