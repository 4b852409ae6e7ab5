// cnm/watcher.ts: vxnetd's Docker watcher against a scripted Docker API and driver (the
// driver and Docker themselves are tested in test/docker/). Reconciles at connect, gathers a
// burst of events into one reconcile, binds its own new networks only, and stop() leaves
// nothing running: no stream opened after it, no reconcile still using the store.
import t from 'tap';
import { createLogger } from '../../lib/log';
import type { DockerApi, DockerEvent } from '../../cnm/docker';
import { DockerWatcher, type Reconciler } from '../../cnm/watcher';
import { pollUntil } from '../helpers/sh';

const log = createLogger('test', 'error', () => undefined);
const REPORT = { checked: 0, released: [], named: 0, networksRemoved: [], orphansRemoved: [] };

interface Script {
  docker: DockerApi;
  driver: Reconciler;
  calls: string[];
  emit(e: DockerEvent): void;
  /** Streams opened and whether each was closed. */
  streams: Array<{ closed: boolean }>;
  /** Resolves the pending events() call (when `hold` was set). */
  connect(): void;
  /** Finishes the reconcile in progress (when `holdReconcile` was set). */
  finishReconcile(): void;
}

function script(o: { hold?: boolean; holdReconcile?: boolean } = {}): Script {
  const calls: string[] = [];
  const streams: Array<{ closed: boolean }> = [];
  let onEvent: (e: DockerEvent) => void = () => undefined;
  let connect: () => void = () => undefined;
  let finishReconcile: () => void = () => undefined;
  const docker: DockerApi = {
    network: async () => undefined,
    networks: async () => [],
    events: (fn) => {
      onEvent = fn;
      const stream = { closed: false };
      streams.push(stream);
      const handle = { close: () => { stream.closed = true; } };
      if (!o.hold) return Promise.resolve(handle);
      return new Promise((r) => { connect = () => r(handle); });
    },
  };
  const driver: Reconciler = {
    learnName: async (id, name) => { calls.push(`learn ${id} ${name}`); },
    refreshNames: async (id) => { calls.push(`refresh ${id}`); },
    reconcile: async () => {
      calls.push('reconcile');
      if (o.holdReconcile) await new Promise<void>((r) => { finishReconcile = () => { calls.push('reconcile done'); r(); }; });
      return REPORT;
    },
  };
  return { docker, driver, calls, streams, emit: (e) => onEvent(e), connect: () => connect(), finishReconcile: () => finishReconcile() };
}

const event = (type: string, action: string, id: string, attributes: Record<string, string> = {}): DockerEvent => ({ type, action, id, attributes });

t.test('reconciles at connect; a burst of events is one reconcile; binds only its own networks', async (t) => {
  const s = script();
  const w = new DockerWatcher({ docker: s.docker, driver: s.driver, plugin: 'vxt1', log, intervalMs: 0, coalesceMs: 20 });
  t.teardown(() => w.stop());
  await w.start();
  await pollUntil(() => s.calls.includes('reconcile'), { timeoutMs: 2000, what: 'the first reconcile' });
  s.calls.length = 0;
  for (let i = 0; i < 5; i++) s.emit(event('container', 'destroy', `c${i}`));
  s.emit(event('network', 'disconnect', 'n1', { type: 'vxt1' }));
  await pollUntil(() => s.calls.includes('reconcile'), { timeoutMs: 2000, what: 'the reconcile after the burst' });
  await new Promise((r) => setTimeout(r, 60));
  t.same(s.calls, ['reconcile'], 'six events, one reconcile');
  s.calls.length = 0;
  s.emit(event('network', 'create', 'n2', { type: 'vxt1', name: 'blue' }));
  s.emit(event('network', 'create', 'n3', { type: 'bridge', name: 'other' }));
  s.emit(event('network', 'connect', 'n2', { type: 'vxt1' }));
  await pollUntil(() => s.calls.length === 2, { timeoutMs: 2000, what: 'the network bound and its names refreshed' });
  t.same(s.calls, ['learn n2 blue', 'refresh n2'], 'another driver\'s network is not ours');
});

t.test('reconciles on the timer', async (t) => {
  const s = script();
  const w = new DockerWatcher({ docker: s.docker, driver: s.driver, plugin: 'vxt1', log, intervalMs: 10 });
  t.teardown(() => w.stop());
  await w.start();
  await pollUntil(() => s.calls.filter((c) => c === 'reconcile').length >= 3, { timeoutMs: 2000, what: 'three reconciles' });
  t.pass('reconciled at connect and every interval');
});

t.test('stopped while Docker is still answering the events call: the stream that arrives late is closed', async (t) => {
  const s = script({ hold: true });
  const w = new DockerWatcher({ docker: s.docker, driver: s.driver, plugin: 'vxt1', log, intervalMs: 0 });
  await w.start();
  await w.stop();
  s.connect();
  await pollUntil(() => s.streams[0]?.closed, { timeoutMs: 2000, what: 'the late stream closed' });
  t.same(s.calls, [], 'and no reconcile after stop');
});

t.test('stop() waits for a reconcile in progress (the store closes after it)', async (t) => {
  const s = script({ holdReconcile: true });
  const w = new DockerWatcher({ docker: s.docker, driver: s.driver, plugin: 'vxt1', log, intervalMs: 0 });
  await w.start();
  await pollUntil(() => s.calls.includes('reconcile'), { timeoutMs: 2000, what: 'a reconcile running' });
  let stopped = false;
  const stopping = w.stop().then(() => { stopped = true; });
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(stopped, 'not stopped while the reconcile runs');
  s.finishReconcile();
  await stopping;
  t.same(s.calls, ['reconcile', 'reconcile done']);
  t.ok(s.streams[0].closed, 'the event stream closed');
});

t.test('onContainerEvent: called at once for start, die, destroy, rename, connect, disconnect and health changes of any driver, before the reconcile', async (t) => {
  const s = script();
  const seen: string[] = [];
  const w = new DockerWatcher({
    docker: s.docker, driver: s.driver, plugin: 'vxt1', log, intervalMs: 0, coalesceMs: 20,
    onContainerEvent: (e) => { seen.push(`${e.type} ${e.action} ${e.id}`); s.calls.push(`event ${e.action}`); },
  });
  t.teardown(() => w.stop());
  await w.start();
  await pollUntil(() => s.calls.includes('reconcile'), { timeoutMs: 2000, what: 'the first reconcile' });
  s.calls.length = 0;
  s.emit(event('container', 'create', 'c1'));
  s.emit(event('container', 'start', 'c1', { name: 'web' }));
  s.emit(event('container', 'exec_start: sh', 'c1'));
  s.emit(event('network', 'connect', 'n1', { type: 'bridge', container: 'c1' }));
  s.emit(event('network', 'create', 'n2', { type: 'vxt1', name: 'blue' }));
  s.emit(event('container', 'rename', 'c1', { oldName: '/web', name: 'web2' }));
  s.emit(event('container', 'health_status: unhealthy', 'c1'));
  s.emit(event('container', 'exec_die', 'c1'));
  s.emit(event('container', 'die', 'c1'));
  s.emit(event('network', 'disconnect', 'n1', { type: 'vxt1', container: 'c1' }));
  s.emit(event('container', 'destroy', 'c1'));
  t.same(seen, ['container start c1', 'network connect n1', 'container rename c1', 'container health_status: unhealthy c1', 'container die c1', 'network disconnect n1', 'container destroy c1'],
    'synchronously, in order, only those that change attachments, names or health');
  await pollUntil(() => s.calls.includes('reconcile'), { timeoutMs: 2000, what: 'the coalesced reconcile' });
  const first = s.calls.indexOf('reconcile');
  t.ok(s.calls.slice(first).every((c) => !c.startsWith('event ')), 'every callback came before the reconcile');
});

t.test('onContainerEvent that throws is logged; the watcher goes on', async (t) => {
  const s = script();
  const lines: string[] = [];
  let calls = 0;
  const w = new DockerWatcher({
    docker: s.docker, driver: s.driver, plugin: 'vxt1', log: createLogger('test', 'warn', (l) => lines.push(l)), intervalMs: 0, coalesceMs: 20,
    onContainerEvent: () => { calls++; throw new Error('catalog refresh exploded'); },
  });
  t.teardown(() => w.stop());
  await w.start();
  await pollUntil(() => s.calls.includes('reconcile'), { timeoutMs: 2000, what: 'the first reconcile' });
  s.calls.length = 0;
  s.emit(event('container', 'destroy', 'c1'));
  s.emit(event('container', 'start', 'c2'));
  t.equal(calls, 2, 'called for both events');
  t.match(lines.join(''), /container event callback failed.*catalog refresh exploded/, 'the failure is logged');
  await pollUntil(() => s.calls.includes('reconcile'), { timeoutMs: 2000, what: 'the reconcile after destroy' });
});
