// The route netlink messages of an ADD's path, encoded and decoded directly. Pure.
//
// node-netlink's generic formatter (one object per attribute, streams of small buffers) costs
// 10-35 us per message once optimised and 130-170 us in a vxnetd that runs it once per ADD (V8
// has not optimised it yet); parsing the kernel's 1.5 KB echo of a new link costs as much. Here
// a message is a few writes into one buffer, and a reply is read for the fields vxnet uses.
// node-netlink keeps every other message; unit tests check both encode the same.

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_NET_NS_FD = 28;
const IFLA_NUM_TX_QUEUES = 31;
const IFLA_NUM_RX_QUEUES = 32;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFF_UP = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;
const IFA_F_NOPREFIXROUTE = 0x200;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;
const NTF_PROXY = 0x08;
const NTF_SELF = 0x02;
const AF_BRIDGE = 7;
export const RT_TABLE_MAIN = 254;
/** RTNH_F_ONLINK in rtm_flags: the gateway is on the link even though no address says so. */
export const RTNH_F_ONLINK = 4;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;

/** Appends netlink structures and attributes (host byte order, 4-byte aligned) to one buffer. */
class Writer {
  private buf = Buffer.alloc(256);
  private len = 0;

  private room(n: number): number {
    if (this.len + n > this.buf.length) {
      const grown = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  u8(v: number): this { this.buf.writeUInt8(v, this.room(1)); return this; }
  u16(v: number): this { this.buf.writeUInt16LE(v, this.room(2)); return this; }
  u32(v: number): this { this.buf.writeUInt32LE(v >>> 0, this.room(4)); return this; }
  s32(v: number): this { this.buf.writeInt32LE(v, this.room(4)); return this; }

  private pad(): void { this.room((4 - (this.len % 4)) % 4); }

  attr(type: number, payload: Buffer): this {
    const at = this.room(4);
    this.buf.writeUInt16LE(4 + payload.length, at);
    this.buf.writeUInt16LE(type, at + 2);
    payload.copy(this.buf, this.room(payload.length));
    this.pad();
    return this;
  }

  attrU32(type: number, v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return this.attr(type, b); }
  attrString(type: number, s: string): this { return this.attr(type, Buffer.from(`${s}\0`)); }

  /** A nested attribute whose content `fill` writes. */
  nest(type: number, fill: (w: this) => void): this {
    const at = this.room(4);
    fill(this);
    this.buf.writeUInt16LE(this.len - at, at);
    this.buf.writeUInt16LE(type, at + 2);
    return this;
  }

  done(): Buffer { return this.buf.subarray(0, this.len); }
}

/** struct ifinfomsg: family, type, index, flags, change. */
const ifinfomsg = (w: Writer, index: number, up: boolean | undefined): Writer =>
  w.u8(0).u8(0).u16(0).s32(index).u32(up ? IFF_UP : 0).u32(up === undefined ? 0 : IFF_UP);

export interface LinkChange {
  readonly up?: boolean;
  readonly master?: number;
  readonly mtu?: number;
  readonly address?: Buffer;
  readonly ifname?: string;
  readonly ifalias?: string;
}

/** RTM_SETLINK's body. */
export function setLinkBody(index: number, change: LinkChange): Buffer {
  const w = ifinfomsg(new Writer(), index, change.up);
  if (change.address) w.attr(IFLA_ADDRESS, change.address);
  if (change.ifname !== undefined) w.attrString(IFLA_IFNAME, change.ifname);
  if (change.mtu !== undefined) w.attrU32(IFLA_MTU, change.mtu);
  if (change.master !== undefined) w.attrU32(IFLA_MASTER, change.master);
  if (change.ifalias !== undefined) w.attrString(IFLA_IFALIAS, change.ifalias);
  return w.done();
}

export interface VethEnd { readonly name: string; readonly mtu?: number; readonly address?: Buffer }

/**
 * RTM_NEWLINK's body for a veth pair, the peer born in the namespace behind `peer.nsFd`. One
 * queue each way: a veth gets one per CPU unless told otherwise, and the kernel then cuts it
 * back to one, waiting for an RCU grace period (synchronize_net) inside the creation.
 */
export function newVethBody(host: VethEnd & { master?: number; up?: boolean }, peer: VethEnd & { nsFd: number }): Buffer {
  const w = ifinfomsg(new Writer(), 0, host.up ? true : undefined);
  w.attrString(IFLA_IFNAME, host.name);
  if (host.mtu) w.attrU32(IFLA_MTU, host.mtu);
  if (host.master) w.attrU32(IFLA_MASTER, host.master);
  w.attrU32(IFLA_NUM_TX_QUEUES, 1).attrU32(IFLA_NUM_RX_QUEUES, 1);
  w.nest(IFLA_LINKINFO, (li) => {
    li.attrString(IFLA_INFO_KIND, 'veth');
    li.nest(IFLA_INFO_DATA, (d) => d.nest(VETH_INFO_PEER, (p) => {
      ifinfomsg(p, 0, undefined);
      if (peer.address) p.attr(IFLA_ADDRESS, peer.address);
      p.attrString(IFLA_IFNAME, peer.name);
      if (peer.mtu) p.attrU32(IFLA_MTU, peer.mtu);
      p.attrU32(IFLA_NET_NS_FD, peer.nsFd);
      p.attrU32(IFLA_NUM_TX_QUEUES, 1).attrU32(IFLA_NUM_RX_QUEUES, 1);
    }));
  });
  return w.done();
}

/** RTM_NEWADDR's body; IPv6 addresses skip duplicate address detection. */
export function newAddressBody(index: number, family: number, prefix: number, address: Buffer, options: { noPrefixRoute?: boolean } = {}): Buffer {
  const nodad = address.length === 16;
  const w = new Writer().u8(family).u8(prefix).u8(nodad ? IFA_F_NODAD : 0).u8(0).u32(index);
  w.attr(IFA_ADDRESS, address).attr(IFA_LOCAL, address);
  const flags = (nodad ? IFA_F_NODAD : 0) | (options.noPrefixRoute ? IFA_F_NOPREFIXROUTE : 0);
  if (flags) w.attrU32(IFA_FLAGS, flags);
  return w.done();
}

/** RTM_NEWROUTE's body: a unicast route of the main table (protocol boot), `onlink` as RTNH_F_ONLINK. */
export function newRouteBody(route: { family: number; dstLen: number; dst?: Buffer; gateway?: Buffer; oif?: number; onlink?: boolean }): Buffer {
  const w = new Writer().u8(route.family).u8(route.dstLen).u8(0).u8(0).u8(RT_TABLE_MAIN).u8(RTPROT_BOOT)
    .u8(route.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK).u8(RTN_UNICAST).u32(route.onlink && route.gateway ? RTNH_F_ONLINK : 0);
  if (route.dst) w.attr(RTA_DST, route.dst);
  if (route.oif) w.attrU32(RTA_OIF, route.oif);
  if (route.gateway) w.attr(RTA_GATEWAY, route.gateway);
  return w.done();
}

/** RTM_NEWNEIGH's body: a permanent entry. */
export function newNeighbourBody(family: number, index: number, dst: Buffer, lladdr: Buffer): Buffer {
  return new Writer().u8(family).u8(0).u16(0).s32(index).u16(NUD_PERMANENT).u8(0).u8(0)
    .attr(NDA_DST, dst).attr(NDA_LLADDR, lladdr).done();
}

/** A proxy neighbour entry (`ip neigh add proxy DST dev LINK`): the link answers ARP/NDP for dst. */
export function newProxyNeighbourBody(family: number, index: number, dst: Buffer): Buffer {
  return new Writer().u8(family).u8(0).u16(0).s32(index).u16(NUD_PERMANENT).u8(NTF_PROXY).u8(0)
    .attr(NDA_DST, dst).done();
}

/**
 * RTM_NEWNEIGH's body for a VXLAN device's forwarding entry: family AF_BRIDGE, permanent,
 * NTF_SELF (the device's own table), MAC -> remote (`bridge fdb replace MAC dev DEV dst IP self permanent`).
 */
export function newFdbBody(index: number, lladdr: Buffer, dst: Buffer): Buffer {
  return new Writer().u8(AF_BRIDGE).u8(0).u16(0).s32(index).u16(NUD_PERMANENT).u8(NTF_SELF).u8(0)
    .attr(NDA_LLADDR, lladdr).attr(NDA_DST, dst).done();
}

/** What vxnet reads of a link message (RTM_NEWLINK). */
export interface LinkFields {
  readonly index: number;
  readonly up: boolean;
  readonly ifname: string | undefined;
  readonly address: Buffer | undefined;
  readonly mtu: number | undefined;
  readonly master: number | undefined;
  readonly link: number | undefined;
  readonly ifalias: string | undefined;
  readonly kind: string | undefined;
}

/** Calls fn for each attribute in buf[from, to). */
function eachAttr(buf: Buffer, from: number, to: number, fn: (type: number, start: number, end: number) => void): void {
  let at = from;
  while (at + 4 <= to) {
    const len = buf.readUInt16LE(at);
    if (len < 4 || at + len > to) break;
    fn(buf.readUInt16LE(at + 2) & 0x3fff, at + 4, at + len);
    at += (len + 3) & ~3;
  }
}

const cString = (buf: Buffer, start: number, end: number): string => {
  const nul = buf.indexOf(0, start);
  return buf.toString('utf8', start, nul >= 0 && nul < end ? nul : end);
};

/** Reads a link message's body (struct ifinfomsg and attributes). */
export function parseLinkBody(buf: Buffer): LinkFields {
  const f: { -readonly [K in keyof LinkFields]: LinkFields[K] } = {
    index: buf.readInt32LE(4), up: (buf.readUInt32LE(8) & IFF_UP) !== 0,
    ifname: undefined, address: undefined, mtu: undefined, master: undefined, link: undefined, ifalias: undefined, kind: undefined,
  };
  eachAttr(buf, 16, buf.length, (type, start, end) => {
    switch (type) {
      case IFLA_IFNAME: f.ifname = cString(buf, start, end); break;
      case IFLA_ADDRESS: f.address = Buffer.from(buf.subarray(start, end)); break;
      case IFLA_MTU: f.mtu = buf.readUInt32LE(start); break;
      case IFLA_MASTER: f.master = buf.readUInt32LE(start); break;
      case IFLA_LINK: f.link = buf.readUInt32LE(start); break;
      case IFLA_IFALIAS: f.ifalias = cString(buf, start, end); break;
      case IFLA_LINKINFO: eachAttr(buf, start, end, (t, s, e) => { if (t === IFLA_INFO_KIND) f.kind = cString(buf, s, e); }); break;
      default: break;
    }
  });
  return f;
}
