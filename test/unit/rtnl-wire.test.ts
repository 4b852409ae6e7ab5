// The ADD path's netlink messages are encoded by net/rtnl-wire.ts, not node-netlink: each is
// checked here against node-netlink's encoding of the same request (parsed back by node-netlink,
// so attribute order does not matter), and the reply reader against a link message node-netlink
// formats. Plus the channel's framing (net/nl-channel.ts). Pure: no socket, no root.
import t from 'tap';
import { AttrStream } from 'netlink/dist/structs';
import * as ifla from 'netlink/dist/rt/ifla';
import { formatLink } from 'netlink/dist/rt/gen_structs';
import {
  formatAddressMessage, formatLinkMessage, formatNeighborMessage, formatRouteMessage,
  parseAddressMessage, parseLinkMessage, parseNeighborMessage, parseRouteMessage,
} from 'netlink/dist/rt/structs';
import { newAddressBody, newNeighbourBody, newProxyNeighbourBody, newRouteBody, newVethBody, parseLinkBody, setLinkBody } from '../../net/rtnl-wire';
import { formatRequest, splitReplies } from '../../net/nl-channel';

const bytes = (fill: (s: AttrStream) => void): Buffer => { const s = new AttrStream(); fill(s); return Buffer.concat(s.bufs); };
const mac = Buffer.from('4ec0c5df1f93', 'hex');

/** node-netlink's parse of a link message, with the veth peer's nested message parsed too. */
function linkView(body: Buffer): unknown {
  const m = parseLinkMessage(body);
  const attrs: Record<string, unknown> = { ...m.attrs };
  if (m.attrs.linkinfo) {
    const info = ifla.parseInfo(m.attrs.linkinfo);
    // IFLA_INFO_DATA holds VETH_INFO_PEER, whose payload is the peer's own link message.
    const peer = info.data ? parseLinkMessage(info.data.subarray(4, info.data.readUInt16LE(0))) : undefined;
    t.equal(info.data?.readUInt16LE(2), 1, 'VETH_INFO_PEER');
    attrs.linkinfo = { kind: info.kind, peer };
  }
  return { data: m.data, attrs };
}

t.test('a veth pair request reads as node-netlink\'s', async (t) => {
  const cases = [
    { host: { name: 'vxe01cdf1d0145', master: 7, up: true }, peer: { name: 'eth0', nsFd: 25, address: mac } },
    { host: { name: 'vxeaaaaaaaaaaaa', mtu: 1450 }, peer: { name: 'net1', nsFd: 3, mtu: 1450 } },
  ];
  for (const c of cases) {
    const peerBytes = bytes((s) => {
      s.emit(formatLink({}));
      s.emit(ifla.formatLinkAttrs({
        ifname: c.peer.name, netNsFd: c.peer.nsFd, numTxQueues: 1, numRxQueues: 1,
        ...('mtu' in c.peer ? { mtu: c.peer.mtu } : {}), ...('address' in c.peer ? { address: c.peer.address } : {}),
      }));
    });
    const linkinfo = bytes((s) => s.emit(ifla.formatInfo({ kind: 'veth', data: bytes((d) => d.push(1, peerBytes)) })));
    const theirs = bytes((s) => formatLinkMessage({ kind: 'link', data: 'up' in c.host ? { flags: { up: true }, change: { up: true } } : {}, attrs: {
      ifname: c.host.name, linkinfo, numTxQueues: 1, numRxQueues: 1,
      ...('mtu' in c.host ? { mtu: c.host.mtu } : {}), ...('master' in c.host ? { master: c.host.master } : {}),
    } }, s));
    const ours = newVethBody(c.host, c.peer);
    t.equal(ours.length % 4, 0, 'aligned');
    t.same(linkView(ours), linkView(theirs), `${c.host.name}/${c.peer.name}`);
  }
});

t.test('link settings read as node-netlink\'s', async (t) => {
  const cases: Array<[Parameters<typeof setLinkBody>[1], Parameters<typeof formatLinkMessage>[0]['data'], Parameters<typeof formatLinkMessage>[0]['attrs']]> = [
    [{ up: true }, { change: { up: true }, flags: { up: true } }, {}],
    [{ up: false, master: 0 }, { change: { up: true }, flags: {} }, { master: 0 }],
    [{ ifname: 'vxz0123456789ab' }, {}, { ifname: 'vxz0123456789ab' }],
    [{ ifalias: 'vxnet:blue:1234', mtu: 9000, address: mac }, {}, { ifalias: 'vxnet:blue:1234', mtu: 9000, address: mac }],
  ];
  for (const [change, data, attrs] of cases) {
    const theirs = bytes((s) => formatLinkMessage({ kind: 'link', data: { index: 42, ...data }, attrs }, s));
    t.same(parseLinkMessage(setLinkBody(42, change)), parseLinkMessage(theirs), JSON.stringify(change));
  }
});

t.test('address, route and neighbour requests read as node-netlink\'s', async (t) => {
  const v4 = Buffer.from([10, 231, 0, 2]);
  const v6 = Buffer.from('fd000000000000000000000000000002', 'hex');
  t.same(parseAddressMessage(newAddressBody(5, 2, 24, v4)),
    parseAddressMessage(bytes((s) => formatAddressMessage({ kind: 'address', data: { family: 2, prefixlen: 24, index: 5 }, attrs: { address: v4, local: v4 } }, s))), 'IPv4');
  t.same(parseAddressMessage(newAddressBody(5, 10, 64, v6, { noPrefixRoute: true })),
    parseAddressMessage(bytes((s) => formatAddressMessage({ kind: 'address', data: { family: 10, prefixlen: 64, index: 5, flags: { nodad: true } },
      attrs: { address: v6, local: v6, flags: { nodad: true, noprefixroute: true } } }, s))), 'IPv6, no DAD, no prefix route');

  const gw = Buffer.from([10, 231, 0, 1]);
  const dst = Buffer.from([10, 232, 0, 0]);
  const route = (data: object, attrs: object): unknown => parseRouteMessage(bytes((s) => formatRouteMessage({ kind: 'route',
    data: { family: 2, table: 254, protocol: 'BOOT', type: 'UNICAST', ...data }, attrs }, s)));
  t.same(parseRouteMessage(newRouteBody({ family: 2, dstLen: 0, gateway: gw, oif: 2 })), route({ dstLen: 0, scope: 'UNIVERSE' }, { gateway: gw, oif: 2 }), 'default via gateway');
  t.same(parseRouteMessage(newRouteBody({ family: 2, dstLen: 16, dst, oif: 2 })), route({ dstLen: 16, scope: 'LINK' }, { dst, oif: 2 }), 'on-link prefix');
  t.same(parseRouteMessage(newRouteBody({ family: 2, dstLen: 0, gateway: gw, oif: 2, onlink: true })),
    route({ dstLen: 0, scope: 'UNIVERSE', flags: { __unknown: 4 } }, { gateway: gw, oif: 2 }), 'onlink gateway');

  t.same(parseNeighborMessage(newNeighbourBody(2, 9, gw, mac)),
    parseNeighborMessage(bytes((s) => formatNeighborMessage({ kind: 'neighbor', data: { family: 2, ifindex: 9, state: { permanent: true } }, attrs: { dst: gw, lladdr: mac } }, s))), 'permanent neighbour');
  const gw6 = Buffer.from('fd260000000000010000000000000001', 'hex');
  t.same(parseNeighborMessage(newProxyNeighbourBody(10, 9, gw6)),
    parseNeighborMessage(bytes((s) => formatNeighborMessage({ kind: 'neighbor', data: { family: 10, ifindex: 9, state: { permanent: true }, flags: { proxy: true } }, attrs: { dst: gw6 } }, s))), 'proxy neighbour (ip neigh add proxy)');
});

t.test('a link reply is read for the fields vxnet uses', async (t) => {
  const linkinfo = bytes((s) => s.emit(ifla.formatInfo({ kind: 'veth' })));
  const link = Buffer.alloc(4); link.writeUInt32LE(2);
  const body = bytes((s) => formatLinkMessage({ kind: 'link', data: { index: 51028, flags: { up: true, broadcast: true, multicast: true } }, attrs: {
    ifname: 'vxe01cdf1d0145', address: mac, mtu: 1500, master: 7, link, ifalias: 'x', linkinfo, txqlen: 1000,
  } }, s));
  t.same(parseLinkBody(body), { index: 51028, up: true, ifname: 'vxe01cdf1d0145', address: mac, mtu: 1500, master: 7, link: 2, ifalias: 'x', kind: 'veth' });
  const bare = bytes((s) => formatLinkMessage({ kind: 'link', data: { index: 3 }, attrs: {} }, s));
  t.same(parseLinkBody(bare), { index: 3, up: false, ifname: undefined, address: undefined, mtu: undefined, master: undefined, link: undefined, ifalias: undefined, kind: undefined });
});

t.test('the channel frames requests and splits replies by sequence number', async (t) => {
  const body = Buffer.from([1, 2, 3, 4, 5]);
  const m = formatRequest(19, 0x400, 77, body);
  t.equal(m.length, 24, 'header + body, padded to 4 bytes');
  t.equal(m.readUInt32LE(0), 21, 'nlmsg_len counts the unpadded body');
  t.equal(m.readUInt16LE(4), 19);
  t.equal(m.readUInt16LE(6), 0x400 | 0x1 | 0x4, 'NLM_F_REQUEST and NLM_F_ACK added');
  t.equal(m.readUInt32LE(8), 77);

  const reply = (type: number, seq: number, payload: Buffer): Buffer => {
    const b = Buffer.alloc(16 + ((payload.length + 3) & ~3));
    b.writeUInt32LE(16 + payload.length, 0); b.writeUInt16LE(type, 4); b.writeUInt32LE(seq, 8); payload.copy(b, 16);
    return b;
  };
  const ack = (seq: number, errno: number): Buffer => { const p = Buffer.alloc(20); p.writeInt32LE(errno, 0); return reply(2, seq, p); };
  const echo = Buffer.from([9, 9, 9]);
  const got = splitReplies(Buffer.concat([reply(16, 5, echo), ack(5, 0), ack(6, -17), reply(16, 99, echo)]), [5, 6, 7]);
  t.same(got.get(5)?.replies.map((r) => [r.type, [...r.data]]), [[16, [9, 9, 9]]], 'the echo goes with its request');
  t.equal(got.get(5)?.errno, 0, 'acknowledged');
  t.equal(got.get(6)?.errno, -17, 'EEXIST');
  t.equal(got.get(7)?.errno, undefined, 'no acknowledgement seen');
  t.notOk(got.has(99), 'replies to no request of the batch are dropped');
});
