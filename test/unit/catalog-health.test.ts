// Docker's health check state in the catalog (what VIP backends follow): read from inspect,
// carried by derive, kept through etcd's records, and asked again when Docker reports a change.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import { deriveEndpoint } from '../../catalog/derive';
import { LocalEndpoints, type MetadataSource, type RuntimeFacts } from '../../catalog/local';
import { decodeEndpoint, encodeEndpoint, endpointKey } from '../../catalog/records';
import { factsOfInspect } from '../../catalog/runtime-metadata';
import { isHealthEvent } from '../../cnm/watcher';
import { createLogger } from '../../lib/log';
import { ip, owner, tmpStore } from '../ipam/helpers/embedded';

t.test('factsOfInspect: State.Health.Status and the container id', async (t) => {
  t.match(factsOfInspect({ Id: 'abc', Name: '/web', State: { Health: { Status: 'unhealthy' } } }), { containerId: 'abc', health: 'unhealthy' });
  t.equal(factsOfInspect({ State: { Health: null } }).health, undefined, 'no health check: no state');
  t.equal(factsOfInspect({ State: { Health: { Status: 'none' } } }).health, undefined, 'an unknown status is not passed on');
});

t.test('derive and records carry health; a record with a bad health is refused', async (t) => {
  const { endpoint } = deriveEndpoint({ host: 'h1', runtime: 'docker', containerId: 'c1', network: 'blue', name: 'web', addresses: ['10.0.0.2'], health: 'starting' });
  t.equal(endpoint.health, 'starting');
  const key = endpointKey('/p/', endpoint);
  t.same(decodeEndpoint('/p/', key, encodeEndpoint(endpoint)), { endpoint });
  t.match(decodeEndpoint('/p/', key, JSON.stringify({ ...JSON.parse(encodeEndpoint(endpoint)), health: 'sick' })), { error: /health: not one of starting, healthy, unhealthy/ });
  const none = deriveEndpoint({ host: 'h1', runtime: 'cni', containerId: 'c2', network: 'blue', addresses: [] }).endpoint;
  t.notOk('health' in none, 'no health check: no field');
});

t.test('isHealthEvent: Docker\'s health_status actions', async (t) => {
  t.ok(isHealthEvent({ type: 'container', action: 'health_status: unhealthy' }));
  t.ok(isHealthEvent({ type: 'container', action: 'health_status' }));
  t.notOk(isHealthEvent({ type: 'container', action: 'exec_start: sh -c true' }));
  t.notOk(isHealthEvent({ type: 'network', action: 'health_status: healthy' }));
});

t.test('LocalEndpoints.forget: the next refresh asks the runtime again, by the store\'s id or the runtime\'s own', async (t) => {
  const { store } = await tmpStore(t);
  await store.withLock((tx) => tx.reserve(owner('ep1', { runtime: 'docker' }), ip('10.0.0.2'), 0));
  const catalog = new EndpointCatalog();
  let health: RuntimeFacts['health'] = 'starting';
  let lookups = 0;
  const metadata: MetadataSource = { lookup: async () => { lookups++; return { name: 'web', labels: {}, containerId: 'real1', health }; } };
  const local = new LocalEndpoints({ store, catalog, host: 'h1', metadata, intervalMs: 60_000, log: createLogger('test', 'error') });
  t.teardown(() => local.stop());
  await local.refresh();
  t.equal(catalog.list()[0]?.health, 'starting');
  health = 'unhealthy';
  await local.refresh();
  t.equal(lookups, 1, 'cached: a refresh alone does not ask again');
  t.equal(catalog.list()[0]?.health, 'starting');
  t.ok(local.forget('real1'), 'found by the runtime\'s container id (the store holds the endpoint id)');
  await local.refresh();
  t.equal(lookups, 2);
  t.equal(catalog.list()[0]?.health, 'unhealthy');
  t.notOk(local.forget('other'));
});
