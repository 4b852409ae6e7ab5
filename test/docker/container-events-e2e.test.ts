// cnm/watcher.ts's onContainerEvent against a real dockerd: the start event of `docker run -d`
// reaches the callback within 100 ms of the command returning (the budget for a new name to
// resolve), a container inspect from the callback answers (the callback runs outside any
// driver call), and rm -f gives die and destroy.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { runtimeMetadata } from '../../catalog/runtime-metadata';
import type { RuntimeFacts } from '../../catalog/sources';
import { dockerApi, type DockerEvent } from '../../cnm/docker';
import { DockerWatcher } from '../../cnm/watcher';
import { createLogger } from '../../lib/log';
import { DOCKER_SOCKET, cannotRunDocker, docker, ensureDockerImage, mustDocker } from '../helpers/docker';
import { pollUntil } from '../helpers/sh';

// A cold dockerd start and image import alone may take a minute.
t.setTimeout(300_000);
const log = createLogger('test', 'error', () => undefined);
const REPORT = { checked: 0, released: [], named: 0, networksRemoved: [], orphansRemoved: [] };

t.test('docker run -d: start reaches onContainerEvent within 100 ms, inspect from there answers; rm gives die and destroy', { skip: cannotRunDocker() ?? false }, async (t) => {
  const image = await ensureDockerImage();
  const seen: Array<{ e: DockerEvent; at: number }> = [];
  const meta = runtimeMetadata({ docker: DOCKER_SOCKET, log });
  const looked: RuntimeFacts[] = [];
  const watcher = new DockerWatcher({
    docker: dockerApi(DOCKER_SOCKET), plugin: 'vxt-none', log, intervalMs: 0,
    driver: { learnName: async () => undefined, refreshNames: async () => undefined, reconcile: async () => REPORT },
    onContainerEvent: (e) => {
      seen.push({ e, at: Date.now() });
      if (e.type === 'container' && e.action === 'start') {
        void meta.lookup('docker', e.id).then((f) => { if (f) looked.push(f); });
      }
    },
  });
  t.teardown(() => watcher.stop());
  await watcher.start();
  // The stream is open once a first event arrives: a container created and removed before the measured run.
  const probe = `vxt-ev-${randomBytes(4).toString('hex')}`;
  await mustDocker(['create', '--name', probe, '--network', 'none', image]);
  await mustDocker(['rm', probe]);
  // create is not one of the six; destroy is.
  await pollUntil(() => seen.some((s) => s.e.action === 'destroy' && s.e.attributes.name === probe), { timeoutMs: 10_000, what: 'the event stream open' });

  const name = `vxt-ev-${randomBytes(4).toString('hex')}`;
  t.teardown(async () => { await docker(['rm', '-f', name]); });
  const id = await mustDocker(['run', '-d', '--name', name, '--network', 'none', '--label', 'vxnet.service=ev', image, '/bin/busybox', 'sleep', '3600']);
  const returned = Date.now();
  const start = await pollUntil(() => seen.find((s) => s.e.type === 'container' && s.e.action === 'start' && s.e.id === id), { timeoutMs: 5000, intervalMs: 2, what: 'the start event' });
  const lag = start.at - returned;
  t.comment(`start event ${lag} ms after docker run returned (negative: before)`);
  t.ok(lag < 100, `within 100 ms of docker run returning (${lag} ms)`);
  const facts = await pollUntil(() => looked.find((f) => f.name === name), { timeoutMs: 5000, what: 'the inspect from the callback' });
  t.same(facts.labels, { 'vxnet.service': 'ev' }, 'inspect from the callback answers with the labels');

  await mustDocker(['rm', '-f', name]);
  await pollUntil(() => seen.some((s) => s.e.action === 'destroy' && s.e.id === id), { timeoutMs: 10_000, what: 'destroy' });
  const actions = seen.filter((s) => s.e.id === id).map((s) => s.e.action);
  t.ok(actions.includes('die'), `die seen (${actions.join(', ')})`);
  t.notOk(actions.includes('create'), 'create is not reported');
});
