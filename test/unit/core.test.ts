// ipam/core.ts: ADD/DEL/CHECK/GC as the plugin, the Docker driver and vxnetctl call them, over a
// real embedded store; and the pool guard (a network keeps its subnets while it has allocations).
import t from 'tap';
import { IpamConf, parseIpamConf, poolDefinition } from '../../ipam/config';
import { GC_BATCH, IpamIp, ipamAdd, ipamCheck, ipamDel, ipamGc, ipamIpFor } from '../../ipam/core';
import { formatCidr, formatIp } from '../../ipam/addr';
import type { Allocation } from '../../ipam/store/types';
import { ErrorShape, caught, rejected } from '../ipam/helpers/errors';
import { ip, owner, tmpStore } from '../ipam/helpers/embedded';

const conf = (ipam: Record<string, unknown>, name = 'net'): IpamConf => parseIpamConf(name, ipam);
const v4 = conf({ ranges: [[{ subnet: '10.1.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] });
// The v6 gateway is not network+1, so 2001:db8::1 is handed out.
const dual = conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '2001:db8::/64', gateway: '2001:db8::fffe' }]] });
const drifted = (message: string): ErrorShape => ({ name: 'AttachmentDrifted', code: 102, message });
const conflict = (message: string): ErrorShape => ({ name: 'NetworkConflict', code: 105, message });
/** Typed addresses as text, to compare with the expected. */
const text = (ips: readonly IpamIp[]) => ips.map((x) => ({ address: formatCidr(x.cidr), gateway: formatIp(x.gateway) }));

t.test('ipamAdd: addresses with their subnet prefix and gateway, the routes, the pool registered', async (t) => {
  const { store } = await tmpStore(t);
  const r = await ipamAdd(store, v4, owner('c1'));
  t.same(text(r.ips), [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }]);
  t.same(r.routes, [{ dst: '0.0.0.0/0' }]);
  t.match(r.allocations, [{ network: 'net', containerId: 'c1', ifname: 'eth0', runtime: 'cni', address: '10.1.0.2', family: 4, rangeSet: 0 }]);
  const pool = await store.view((tx) => tx.getPool('net'));
  t.equal(pool?.definition, poolDefinition(v4));

  const d = await ipamAdd(store, { ...dual, network: 'dual' }, owner('c1', { network: 'dual' }), [ip('2001:db8::10')]);
  t.same(text(d.ips), [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }, { address: '2001:db8::10/64', gateway: '2001:db8::fffe' }], 'RFC 5952 text');

  t.same(await ipamAdd(store, v4, owner('c1')), r, 'a repeated ADD returns the same result');
});

t.test('ipamDel: releases, and succeeds when there is nothing to release', async (t) => {
  const { store } = await tmpStore(t);
  await ipamAdd(store, dual, owner('c1'));
  await ipamAdd(store, dual, owner('c1', { ifname: 'net1' }));
  const released = await ipamDel(store, 'net', { containerId: 'c1', ifname: 'eth0' });
  t.same(released.map((a) => a.address).sort(), ['10.1.0.2', '2001:db8::1']);
  t.same(await ipamDel(store, 'net', { containerId: 'c1', ifname: 'eth0' }), [], 'a second DEL is a no-op');
  t.same(await ipamDel(store, 'net', { containerId: 'never-added', ifname: 'eth0' }), [], 'an unknown container is not an error');
  t.same((await store.view((tx) => tx.listByOwner('net', 'c1'))).map((a) => a.ifname), ['net1', 'net1'], 'the other attachment is untouched');
  const [h] = await store.view((tx) => tx.history('net', ip('10.1.0.2')));
  t.equal(h.reason, 'del', 'history says why');
  await ipamDel(store, 'net', { containerId: 'c1', ifname: 'net1' }, 'vxnetctl release');
  t.equal((await store.view((tx) => tx.history('net', ip('10.1.0.3'))))[0].reason, 'vxnetctl release');
});

t.test('ipamCheck', async (t) => {
  const { store } = await tmpStore(t);
  const added = await ipamAdd(store, dual, owner('c1'));
  const att = { containerId: 'c1', ifname: 'eth0' };
  t.same(await ipamCheck(store, dual, att), added.allocations, 'without expectations: what it holds');
  t.same(await ipamCheck(store, dual, att, ['10.1.0.2/24', '2001:db8::1/64']), added.allocations, 'prevResult addresses, with prefixes');
  t.same(await ipamCheck(store, dual, att, ['2001:DB8:0:0::1/64']), added.allocations, 'an address spelled another way is the same address');
  t.strictSame(await rejected(ipamCheck(store, dual, { containerId: 'c1', ifname: 'eth1' })),
    drifted('no address of network "net" is allocated to container c1 eth1'));
  t.strictSame(await rejected(ipamCheck(store, dual, att, ['10.1.0.9/24'])),
    drifted('address 10.1.0.9 is not allocated to container c1 eth0 (it holds 10.1.0.2, 2001:db8::1)'));
});

t.test('ipamGc: releases what is not in the valid list', async (t) => {
  const { store } = await tmpStore(t);
  for (const id of ['a', 'b', 'c']) await ipamAdd(store, dual, owner(id));
  await ipamAdd(store, dual, owner('a', { ifname: 'net1' }));
  await ipamAdd(store, { ...v4, network: 'other' }, owner('z', { network: 'other' }));
  const released = await ipamGc(store, 'net', [{ containerId: 'a', ifname: 'eth0' }, { containerId: 'c', ifname: 'eth0' }]);
  t.same(released.map((a) => `${a.containerId}/${a.ifname}/${a.family}`).sort(), ['a/net1/4', 'a/net1/6', 'b/eth0/4', 'b/eth0/6'], 'each released once');
  t.same((await store.view((tx) => tx.list({ network: 'net' }))).map((a) => a.containerId).sort(), ['a', 'a', 'c', 'c']);
  t.equal(await store.view((tx) => tx.countByNetwork('other')), 1, 'other networks are not touched');
  t.equal((await store.view((tx) => tx.history('net', ip('10.1.0.3'))))[0].reason, 'gc');
  t.same(await ipamGc(store, 'net', [{ containerId: 'a', ifname: 'eth0' }, { containerId: 'c', ifname: 'eth0' }]), [], 'a second GC has nothing to do');
  t.equal((await ipamGc(store, 'net', [])).length, 4, 'an empty valid list releases everything');
});

t.test('ipamGc: more stale attachments than one batch are all released, each once', async (t) => {
  const { store } = await tmpStore(t);
  const n = GC_BATCH * 2 + 3;
  for (let i = 0; i < n; i++) await ipamAdd(store, dual, owner(`c${i}`));
  const released = await ipamGc(store, 'net', [{ containerId: 'c0', ifname: 'eth0' }]);
  t.equal(released.length, 2 * (n - 1), `${n - 1} attachments x 2 addresses`);
  t.equal(new Set(released.map((a) => a.address)).size, released.length, 'no address released twice');
  t.same((await store.view((tx) => tx.list({ network: 'net' }))).map((a) => a.containerId), ['c0', 'c0']);
});

t.test('pool guard: a network keeps its subnets while it has live allocations', async (t) => {
  const { store } = await tmpStore(t);
  const moved = conf({ ranges: [[{ subnet: '10.2.0.0/24' }]] });
  const narrowed = conf({ ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.100' }]] });
  await ipamAdd(store, v4, owner('c1'));
  t.strictSame(await rejected(ipamAdd(store, moved, owner('c2'))),
    conflict('network "net" is defined with subnet 10.1.0.0/24 and has 1 live allocation(s); this config says 10.2.0.0/24'));
  t.same((await store.view((tx) => tx.list({ network: 'net' }))).map((a) => a.containerId), ['c1'], 'the conflicting ADD wrote nothing');
  t.equal((await store.view((tx) => tx.getPool('net')))?.definition, poolDefinition(v4), 'the pool is unchanged');

  const n = await ipamAdd(store, narrowed, owner('c2'));
  t.same(text(n.ips), [{ address: '10.1.0.100/24', gateway: '10.1.0.1' }], 'other ranges of the same subnets are allowed');
  t.equal((await store.view((tx) => tx.getPool('net')))?.definition, poolDefinition(narrowed), 'and update the pool');

  await ipamDel(store, 'net', { containerId: 'c1', ifname: 'eth0' });
  await ipamDel(store, 'net', { containerId: 'c2', ifname: 'eth0' });
  const m = await ipamAdd(store, moved, owner('c3'));
  t.same(text(m.ips), [{ address: '10.2.0.2/24', gateway: '10.2.0.1' }], 'with nothing live, the network may move');
  t.equal((await store.view((tx) => tx.getPool('net')))?.definition, poolDefinition(moved));

  await ipamAdd(store, { ...moved, network: 'second' }, owner('x', { network: 'second' }));
  t.pass('the same subnets in another network are that network\'s business');
});

t.test('ipamIpFor: an allocation outside the configured ranges has drifted', async (t) => {
  const a: Allocation = { network: 'net', containerId: 'c1', ifname: 'eth0', runtime: 'cni', address: '10.9.0.5', family: 4, rangeSet: 0, since: 0 };
  t.strictSame(caught(() => ipamIpFor(v4, a)), drifted('allocation 10.9.0.5 of c1 is outside the configured ranges of "net"'));
  t.same(text([ipamIpFor(dual, { ...a, address: '2001:db8::7', family: 6, rangeSet: 0 })]), [{ address: '2001:db8::7/64', gateway: '2001:db8::fffe' }],
    'found in another set when its recorded set moved');
});
