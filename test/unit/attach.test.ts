// The pure parts of an attachment: whether a pair found in place was ever configured and whether
// it is the attachment a repeated ADD wants (datapath/attach.ts), and what an ADD plans and
// reports (cni/attach-plan.ts): typed routes, printed again only in the result.
import t from 'tap';
import { Cidr, Ip, parseCidr, parseIp } from '../../ipam/addr';
import { attachmentMismatch, configured, type FoundPair, type VethPair } from '../../datapath/attach';
import type { LinkInfo } from '../../net/rtnl';
import type { NetnsHandle } from '../../net/netns';
import { addResult, containerRoutes, parseAllocated } from '../../cni/attach-plan';
import { parseVxnetConf } from '../../cni/netconf';
import { formatResult } from '../../cni/result';

const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const ip = (s: string): Ip => parseIp(s) as Ip;
const link = (o: Partial<LinkInfo>): LinkInfo => ({
  index: 1, name: 'x', kind: 'veth', mac: '02:00:00:00:00:01', mtu: 1500, up: true, master: undefined, alias: undefined, peerIndex: undefined, ...o,
});
const ns: NetnsHandle = { path: '/run/netns/vxt-a', fd: -1, close: () => undefined };
const pair: VethPair = { host: 'vx0123456789ab', container: 'eth0', ns, mac: '02:00:00:00:00:02', mtu: undefined };
const bridge = link({ index: 7, name: 'vxtbr', kind: 'bridge' });

function found(o: { master?: number; addresses?: string[]; mac?: string; up?: boolean } = {}): Extract<FoundPair, { kind: 'pair' }> {
  const container = link({ index: 2, name: 'eth0', mac: o.mac ?? '02:00:00:00:00:02', up: o.up ?? true, peerIndex: 9 });
  return {
    kind: 'pair',
    ends: { host: link({ index: 9, name: pair.host, master: o.master, peerIndex: 2 }), containerIndex: 2, containerMac: container.mac },
    container,
    addresses: (o.addresses ?? ['10.1.0.5/24']).map(cidr),
  };
}
const want = { ips: [{ cidr: cidr('10.1.0.5/24'), gateway: ip('10.1.0.1') }], bridge, mac: undefined };

t.test('a pair in place is the wanted attachment only with the same addresses, bridge (or none: routed) and requested MAC', async (t) => {
  t.equal(attachmentMismatch(pair, found({ master: 7 }), want), undefined, 'on the bridge with the allocated address');
  t.match(attachmentMismatch(pair, found({ master: undefined }), want), /host veth vx0123456789ab of eth0 in \/run\/netns\/vxt-a is not on bridge vxtbr/);
  t.match(attachmentMismatch(pair, found({ master: 3 }), want), /is not on bridge vxtbr/, 'on another bridge');
  t.equal(attachmentMismatch(pair, found(), { ...want, bridge: undefined }), undefined, 'routed, on no bridge');
  t.match(attachmentMismatch(pair, found({ master: 7 }), { ...want, bridge: undefined }), /is on a bridge \(#7\); this network's containers are routed/);
  t.match(attachmentMismatch(pair, found({ master: 7, addresses: ['10.1.0.6/24'] }), want), 'eth0 in /run/netns/vxt-a has 10.1.0.6/24, not 10.1.0.5/24 as allocated');
  t.match(attachmentMismatch(pair, found({ master: 7, addresses: ['10.1.0.5/16'] }), want), 'has 10.1.0.5/16, not 10.1.0.5/24', 'another prefix');
  t.match(attachmentMismatch(pair, found({ master: 7, addresses: ['10.1.0.5/24', '10.1.0.9/24'] }), want), 'has 10.1.0.5/24, 10.1.0.9/24', 'an extra address');
  t.match(attachmentMismatch(pair, found({ master: 7, addresses: [] }), want), 'has no address, not 10.1.0.5/24');
  t.equal(attachmentMismatch(pair, found({ master: 7 }), { ...want, mac: '02-00-00-00-00-02' }), undefined, 'the MAC asked for, in any notation');
  t.match(attachmentMismatch(pair, found({ master: 7 }), { ...want, mac: '02:00:00:00:00:99' }), 'has MAC 02:00:00:00:00:02, not 02:00:00:00:00:99 as asked');
});

t.test('a pair never configured (down, no address) is a leftover; up or addressed, it is an attachment', async (t) => {
  t.notOk(configured(found({ up: false, addresses: [] })), 'down and bare');
  t.ok(configured(found({ up: true, addresses: [] })), 'up');
  t.ok(configured(found({ up: false })), 'addressed');
});

t.test('routes are typed from IPAM to the result; the result prints what IPAM gave', async (t) => {
  const conf = parseVxnetConf({
    cniVersion: '1.1.0', name: 'vxt', type: 'vxnet', bridge: 'vxtbr', isGateway: true,
    ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00:1::/64' }]] },
  }, new Map());
  const allocated = parseAllocated({
    ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }, { address: 'fd00:1::5/64' }],
    routes: [{ dst: '192.168.0.0/16', mtu: 1400 }, { dst: 'not a cidr' }, { dst: '0.0.0.0/0' }],
  });
  const routes = containerRoutes(conf, allocated.ips, allocated.routes);
  const result = addResult({
    bridge: { name: 'vxtbr', mac: '02:00:00:00:00:07' }, hostVeth: { name: pair.host, mac: '02:00:00:00:00:09' },
    container: { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: ns.path, mtu: undefined },
  }, allocated, routes, undefined);
  t.same(formatResult(result, '1.1.0'), {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'vxtbr', mac: '02:00:00:00:00:07' }, { name: pair.host, mac: '02:00:00:00:00:09' }, { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: ns.path }],
    ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 2 }, { address: 'fd00:1::5/64', interface: 2 }],
    routes: [
      { dst: '192.168.0.0/16', gw: '10.1.0.1', mtu: 1400 },
      { dst: '0.0.0.0/0', gw: '10.1.0.1' },
      { dst: '::/0', gw: 'fd00:1::1' },
    ],
    dns: {},
  }, 'gateways filled in (IPv6: network + 1), an unparsable route dropped, one default per family, the gateway printed only where IPAM gave it');
});
