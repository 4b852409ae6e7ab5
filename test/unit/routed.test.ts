// The pure parts of the routed overlay attachment (datapath/routed.ts) and its FORWARD rules
// (net/nat.ts): what is derived from the agent's state, when the host-wide setup is applied
// again, and the rules' exact shape. No root.
import t from 'tap';
import { Cidr, parseCidr, parseIp, type Ip } from '../../ipam/addr';
import { forwardRules, routedForwardRules } from '../../net/nat';
import { hostRouteOf, routedFingerprint } from '../../datapath/routed';
import { routedSpecOf } from '../../overlay/local';
import type { LocalOverlayState } from '../../overlay/local';

const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const ip = (s: string): Ip => parseIp(s) as Ip;

const state: LocalOverlayState = {
  network: 'ov1', hostId: 'h1', vni: 4242, device: 'vxlan.4242', mtu: 1450,
  blocks: [cidr('10.237.3.0/24'), cidr('fd37:0:0:3::/64')], subnets: [cidr('10.237.0.0/16'), cidr('fd37::/48')], updated: 1,
};

t.test('routedSpecOf: the device and the whole subnets from the state, masquerading from the config', async (t) => {
  const spec = routedSpecOf(state, { ipMasq: true, natTable: 'vxnet' });
  t.equal(spec.network, 'ov1');
  t.equal(spec.device, 'vxlan.4242');
  t.same(spec.subnets, [cidr('10.237.0.0/16'), cidr('fd37::/48')], 'the subnets, not the blocks');
  const old: LocalOverlayState = { ...state, subnets: undefined };
  t.same(routedSpecOf(old, { ipMasq: false, natTable: 'vxnet' }).subnets, state.blocks, 'a state without subnets: its blocks');
});

t.test('routedFingerprint: stable, and different for every change the setup depends on', async (t) => {
  const base = routedSpecOf(state, { ipMasq: true, natTable: 'vxnet' });
  t.equal(routedFingerprint(base), routedFingerprint({ ...base }), 'stable');
  t.match(routedFingerprint(base), /^vxnet network=ov1 setup=[0-9a-f]{16}$/);
  const variants = [
    { ...base, ipMasq: false },
    { ...base, natTable: 'other' },
    { ...base, subnets: [cidr('10.237.0.0/16')] },
    { ...base, network: 'ov2' },
  ];
  for (const v of variants) t.not(routedFingerprint(v), routedFingerprint(base), JSON.stringify({ ipMasq: v.ipMasq, natTable: v.natTable, n: v.subnets.length, network: v.network }));
});

t.test('hostRouteOf: the address alone', async (t) => {
  t.same(hostRouteOf(ip('10.237.3.7')), { ip: ip('10.237.3.7'), prefix: 32 });
  t.same(hostRouteOf(ip('fd37:0:0:3::7')), { ip: ip('fd37:0:0:3::7'), prefix: 128 });
});

t.test('routedForwardRules: per family, from the subnets and replies to them, commented with the device', async (t) => {
  const subnets = [cidr('10.237.0.0/16'), cidr('fd37::/48')];
  const c = ['-m', 'comment', '--comment', 'vxnet:vxlan.4242'];
  t.same(routedForwardRules('vxlan.4242', 4, subnets), [
    ['-s', '10.237.0.0/16', ...c, '-j', 'ACCEPT'],
    ['-d', '10.237.0.0/16', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', ...c, '-j', 'ACCEPT'],
  ]);
  t.same(routedForwardRules('vxlan.4242', 6, subnets).map((r) => r[1]), ['fd37::/48', 'fd37::/48'], 'IPv6: the IPv6 subnet only');
  t.same(routedForwardRules('vxlan.4242', 6, [cidr('10.237.0.0/16')]), [], 'no subnet of the family: no rule');
});

t.test('forwardRules (bridge): out of the bridge, replies into it', async (t) => {
  t.same(forwardRules('vxblue'), [
    ['-i', 'vxblue', '-m', 'comment', '--comment', 'vxnet:vxblue', '-j', 'ACCEPT'],
    ['-o', 'vxblue', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-m', 'comment', '--comment', 'vxnet:vxblue', '-j', 'ACCEPT'],
  ]);
});
