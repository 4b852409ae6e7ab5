// ipam/docker.ts: the Docker driver's ownership and release policy (pending reservation, claim
// by endpoint, sandbox, release by address and by network, names, reconcile's release) over a
// real embedded store.
import t from 'tap';
import { IpamConf, parseIpamConf } from '../../ipam/config';
import { IpamIp, ipamAdd } from '../../ipam/core';
import { formatCidr, formatIp } from '../../ipam/addr';
import {
  DOCKER_IFNAME, DOCKER_RUNTIME, PENDING_PREFIX, claimForEndpoint, endpointAllocations, releaseIfStillPending, nameEndpoints, recordSandbox,
  releaseDockerAddress, releaseDockerNetwork, releaseForgotten, reservePending,
} from '../../ipam/docker';
import type { IpamStore } from '../../ipam/store/types';
import { rejected } from '../ipam/helpers/errors';
import { ip, owner, tmpStore } from '../ipam/helpers/embedded';

const blue: IpamConf = parseIpamConf('blue', { ranges: [[{ subnet: '10.5.0.0/24' }]] });
const EP = 'e'.repeat(64);
const EP2 = 'd'.repeat(64);
const all = (store: IpamStore, network = 'blue') => store.view((tx) => tx.list({ network }));
const cni = (containerId: string) => owner(containerId, { network: 'blue' });
/** A typed answer as text, to compare with the expected. */
const text = (x: IpamIp) => ({ address: formatCidr(x.cidr), gateway: formatIp(x.gateway) });

t.test('reservePending: a fresh pending owner per call, the static address when asked', async (t) => {
  const { store } = await tmpStore(t);
  const a = await reservePending(store, blue);
  const b = await reservePending(store, blue);
  t.same([text(a).address, text(a).gateway, text(b).address], ['10.5.0.2/24', '10.5.0.1', '10.5.0.3/24']);
  t.match(a.allocation, { network: 'blue', runtime: DOCKER_RUNTIME, ifname: DOCKER_IFNAME, containerId: new RegExp(`^${PENDING_PREFIX}[0-9a-f]{16}$`) });
  t.not(a.allocation.containerId, b.allocation.containerId, 'two reservations, two owners');
  t.equal(text(await reservePending(store, blue, { requested: ip('10.5.0.50') })).address, '10.5.0.50/24');
  t.match(await rejected(reservePending(store, blue, { requested: ip('10.5.0.50') })), { name: 'AddressUnavailable', message: /10\.5\.0\.50 is not available.*held by container docker-pending-/ });
  t.match(await rejected(reservePending(store, blue, { requested: ip('10.5.0.1') })), { name: 'AddressUnavailable', message: /gateway/ });
  t.ok(await store.view((tx) => tx.getPool('blue')), 'the pool is registered');
});

t.test('reservePending: one address, however many range sets (an overlay host with two blocks)', async (t) => {
  const { store } = await tmpStore(t);
  const two = parseIpamConf('ov', { ranges: [[{ subnet: '10.6.1.0/30' }], [{ subnet: '10.6.2.0/24' }], [{ subnet: 'fd06::/64' }]] });
  const v4 = { sets: [0, 1] };
  const a = await reservePending(store, two, v4);
  t.same([text(a).address, text(a).gateway], ['10.6.1.2/30', '10.6.1.1']);
  t.equal((await all(store, 'ov')).length, 1, 'one allocation, not one per set');
  const b = await reservePending(store, two, v4);
  t.same([text(b).address, text(b).gateway, b.allocation.rangeSet], ['10.6.2.2/24', '10.6.2.1', 1], 'the first block full: the next one');
  const c = await reservePending(store, two, { ...v4, requested: ip('10.6.2.77') });
  t.same([text(c).address, text(c).gateway], ['10.6.2.77/24', '10.6.2.1'], 'a static address from the set holding it, with that set\'s gateway');
  t.same(await rejected(reservePending(store, two, { ...v4, requested: ip('fd06::5') })),
    { name: 'AddressUnavailable', code: 101, message: 'requested IP fd06::5 is outside every range of network "ov" (10.6.1.1-10.6.1.2; 10.6.2.1-10.6.2.254)' }, 'only from the sets given');
  const full = parseIpamConf('full', { ranges: [[{ subnet: '10.7.1.0/30' }], [{ subnet: '10.7.2.0/30' }]] });
  await reservePending(store, full);
  await reservePending(store, full);
  t.same(await rejected(reservePending(store, full)),
    { name: 'PoolExhausted', code: 100, message: 'no free address in network "full": every range is in use (10.7.1.1-10.7.1.2; 10.7.2.1-10.7.2.2)' });
  t.equal((await all(store, 'full')).length, 2, 'nothing more reserved');
});

t.test('claimForEndpoint: pending passes to the endpoint, free is reserved, a repeat is a no-op, others are refused', async (t) => {
  const { store } = await tmpStore(t);
  const p = await reservePending(store, blue);
  t.equal(await claimForEndpoint(store, blue, EP, ip('10.5.0.2')), 'claimed');
  t.match(await all(store), [{ address: '10.5.0.2', containerId: EP, ifname: DOCKER_IFNAME, runtime: DOCKER_RUNTIME, since: p.allocation.since }], 'the address keeps its since');
  t.equal(await claimForEndpoint(store, blue, EP, ip('10.5.0.2')), 'held', 'a repeated CreateEndpoint');
  t.equal(await claimForEndpoint(store, blue, EP2, ip('10.5.0.9')), 'reserved', 'a free address (the reservation went meanwhile)');
  t.match(await rejected(claimForEndpoint(store, blue, EP2, ip('10.5.0.2'))),
    { name: 'AddressUnavailable', code: 101, message: `10.5.0.2 in network "blue" is held by docker container ${EP.slice(0, 12)}` });
  await ipamAdd(store, blue, cni('cni-1'), [ip('10.5.0.20')]);
  t.same(await rejected(claimForEndpoint(store, blue, EP2, ip('10.5.0.20'))),
    { name: 'AddressUnavailable', code: 101, message: '10.5.0.20 in network "blue" is held by cni container cni-1' }, 'a CNI container\'s address is never taken');
});

t.test('claimForEndpoint: the range set holding the address (an overlay pool has one per block)', async (t) => {
  const { store } = await tmpStore(t);
  const two = parseIpamConf('ov', { ranges: [[{ subnet: '10.6.1.0/24' }], [{ subnet: '10.6.2.0/24' }]] });
  t.equal(await claimForEndpoint(store, two, EP, ip('10.6.2.7')), 'reserved');
  t.match(await all(store, 'ov'), [{ address: '10.6.2.7', rangeSet: 1 }]);
});

t.test('endpointAllocations and recordSandbox', async (t) => {
  const { store } = await tmpStore(t);
  t.same(await rejected(endpointAllocations(store, 'blue', EP)),
    { name: 'AttachmentDrifted', code: 102, message: `endpoint ${EP.slice(0, 12)} holds no address in network "blue" (was it released?)` });
  t.equal(await recordSandbox(store, 'blue', EP, '/var/run/docker/netns/x'), false, 'nothing held, nothing recorded');
  await claimForEndpoint(store, blue, EP, ip('10.5.0.4'));
  t.same((await endpointAllocations(store, 'blue', EP)).map((a) => a.address), ['10.5.0.4']);
  t.equal(await recordSandbox(store, 'blue', EP, '/var/run/docker/netns/x'), true);
  t.match(await all(store), [{ containerId: EP, netns: '/var/run/docker/netns/x' }]);
});

t.test('releaseDockerAddress: Docker\'s own only, in the network given or wherever Docker holds it', async (t) => {
  const { store } = await tmpStore(t);
  const red = { ...blue, network: 'red' };
  await claimForEndpoint(store, blue, EP, ip('10.5.0.2'));
  await claimForEndpoint(store, red, EP2, ip('10.5.0.2'));
  await ipamAdd(store, blue, cni('cni-1'), [ip('10.5.0.30')]);
  t.same(await releaseDockerAddress(store, ip('10.5.0.30'), 'blue'), [], 'the gateway Docker releases may be a CNI container\'s address');
  t.equal((await all(store)).length, 2);
  t.match(await releaseDockerAddress(store, ip('10.5.0.2'), 'blue'), [{ network: 'blue', containerId: EP }]);
  t.same(await releaseDockerAddress(store, ip('10.5.0.2'), 'blue'), [], 'a repeat releases nothing');
  t.match(await releaseDockerAddress(store, ip('10.5.0.2'), undefined), [{ network: 'red', containerId: EP2 }], 'network unknown: found among Docker\'s allocations');
  t.equal((await store.view((tx) => tx.history('blue', ip('10.5.0.2'))))[0].reason, 'docker release');
});

t.test('releaseDockerNetwork: Docker\'s allocations go; the pool goes only when nothing is left', async (t) => {
  const { store } = await tmpStore(t);
  await reservePending(store, blue);
  await claimForEndpoint(store, blue, EP, ip('10.5.0.9'));
  await ipamAdd(store, blue, cni('cni-1'));
  const r = await releaseDockerNetwork(store, 'blue', 'docker network removed');
  t.same(r.released.map((a) => a.address).sort(), ['10.5.0.2', '10.5.0.9']);
  t.equal(r.remaining, 1);
  t.ok(await store.view((tx) => tx.getPool('blue')), 'pool kept for the CNI container');
  await store.withLock((tx) => tx.releaseByOwner('blue', 'cni-1', 'eth0', 'del'));
  t.same(await releaseDockerNetwork(store, 'blue', 'again'), { released: [], remaining: 0 });
  t.equal(await store.view((tx) => tx.getPool('blue')), undefined, 'pool forgotten');
});

t.test('nameEndpoints: names from Docker\'s listing, counted once, never on another runtime', async (t) => {
  const { store } = await tmpStore(t);
  await claimForEndpoint(store, blue, EP, ip('10.5.0.2'));
  await claimForEndpoint(store, blue, EP2, ip('10.5.0.3'));
  await ipamAdd(store, blue, cni(EP2.replace(/d/g, 'c')));
  const names = new Map([[EP, 'web1'], [EP2.replace(/d/g, 'c'), 'not-docker']]);
  t.equal(await nameEndpoints(store, names), 1);
  t.equal(await nameEndpoints(store, names), 0, 'already named');
  t.equal(await nameEndpoints(store, new Map([[EP2, 'web2']]), 'red'), 0, 'another network\'s listing');
  t.equal(await nameEndpoints(store, new Map([[EP2, 'web2']]), 'blue'), 1);
  t.same((await all(store)).map((a) => `${a.runtime}:${a.name ?? '-'}`).sort(), ['cni:-', 'docker:web1', 'docker:web2']);
});

t.test('releaseForgotten: endpoints Docker does not list after the grace, pending after theirs', async (t) => {
  const { store } = await tmpStore(t);
  await claimForEndpoint(store, blue, EP, ip('10.5.0.2'));
  await claimForEndpoint(store, blue, EP2, ip('10.5.0.3'));
  await reservePending(store, blue);
  await ipamAdd(store, blue, cni('cni-1'));
  const since = Math.max(...(await all(store)).map((a) => a.since));
  const live = (id: string): boolean => id === EP;
  const policy = { endpointGraceMs: 1000, pendingGraceMs: 2000 };
  t.same(await releaseForgotten(store, live, { ...policy, now: since + 500 }), { checked: 3, released: [] }, 'inside the grace');
  const r = await releaseForgotten(store, live, { ...policy, now: since + 1500 });
  t.same(r.released.map((a) => a.containerId), [EP2], 'the forgotten endpoint');
  t.equal((await store.view((tx) => tx.history('blue', ip('10.5.0.3'))))[0].reason, 'docker reconcile: endpoint gone');
  const p = await releaseForgotten(store, live, { ...policy, now: since + 2500 });
  t.match(p, { checked: 2, released: [{ containerId: new RegExp(`^${PENDING_PREFIX}`) }] }, 'the unclaimed reservation after its own grace');
  t.same((await all(store)).map((a) => a.containerId).sort(), ['cni-1', EP], 'the live endpoint and the CNI container stay');
});

t.test('dual stack: one pending reservation per family, both claimed by the endpoint; an unclaimed one released only while still pending', async (t) => {
  const { store } = await tmpStore(t);
  const dual = parseIpamConf('dual', { ranges: [[{ subnet: '10.7.0.0/24' }], [{ subnet: 'fd07::/64' }]] });
  const v4 = await reservePending(store, dual, { sets: [0] });
  const v6 = await reservePending(store, dual, { sets: [1], requested: ip('fd07::77') });
  t.same([formatCidr(v4.cidr), formatCidr(v6.cidr)], ['10.7.0.2/24', 'fd07::77/64']);
  t.not(v4.allocation.containerId, v6.allocation.containerId, 'two pending owners');
  t.equal(await claimForEndpoint(store, dual, EP, v4.cidr.ip), 'claimed');
  t.equal(await claimForEndpoint(store, dual, EP, v6.cidr.ip), 'claimed');
  t.same((await endpointAllocations(store, 'dual', EP)).map((a) => `${a.address} ${a.rangeSet}`).sort(), ['10.7.0.2 0', 'fd07::77 1'], 'the endpoint holds both, each in its family\'s set');
  t.equal(await releaseIfStillPending(store, 'dual', v4.cidr.ip, v4.allocation.containerId, 'test'), undefined, 'claimed meanwhile: kept');
  const orphan = await reservePending(store, dual, { sets: [0] });
  t.match(await releaseIfStillPending(store, 'dual', orphan.cidr.ip, orphan.allocation.containerId, 'test'), { address: '10.7.0.3' }, 'still pending: released');
  t.equal((await all(store, 'dual')).length, 2, 'only the endpoint\'s two addresses left');
});
