// A small typed layer over node-netlink's rtnetlink socket: the link, address and route
// operations vxnet needs, one path for IPv4 and IPv6, errors turned into DatapathFailure
// with the operation named. Pure encoding helpers at the top; socket calls below.
// Deep imports: the package index also loads nl80211, WireGuard and generic netlink, which
// cost an exec'd plugin milliseconds it never uses.
import { RtNetlinkSocket, createRtNetlink } from 'netlink/dist/rt/rt';
import * as ifla from 'netlink/dist/rt/ifla';
import type * as rt from 'netlink/dist/rt/gen_structs';
import { AttrStream } from 'netlink/dist/structs';
import { parseMessage } from 'netlink/dist/rt/structs';
import { closeSync } from 'node:fs';
import { DatapathFailure } from '../lib/errors';
import { Cidr, Ip, familyBits, formatCidr, formatIp } from '../ipam/addr';
import { spawn } from 'node:child_process';
import { findTool } from './nat';
import { NetnsHandle, inNetnsSync } from './netns';
import { NlChannel } from './nl-channel';
import { LinkFields, RT_TABLE_MAIN, newAddressBody, newNeighbourBody, newProxyNeighbourBody, newRouteBody, newVethBody, parseLinkBody, setLinkBody } from './rtnl-wire';

const RTM_NEWLINK = 16;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const RTM_NEWNEIGH = 28;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
/** The kernel answers a link creation with the new link (honoured since Linux 6.3; ignored before). */
const NLM_F_ECHO = 0x8;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_BRIDGE = 7;
/** IFLA_EXT_MASK RTEXT_FILTER_SKIP_STATS: a link lookup without its counters (less for the kernel to gather and for us to parse). */
const SKIP_STATS = Buffer.from([8, 0, 0, 0]);

export const afOf = (family: 4 | 6): number => (family === 4 ? AF_INET : AF_INET6);

export function ipBytes(ip: Ip): Buffer {
  const hex = ip.value.toString(16).padStart(familyBits(ip.family) / 4, '0');
  return Buffer.from(hex, 'hex');
}

export function ipFromBytes(buf: Buffer): Ip {
  return { family: buf.length === 4 ? 4 : 6, value: BigInt('0x' + buf.toString('hex')) };
}

export const macToBytes = (mac: string): Buffer => Buffer.from(mac.replace(/[:-]/g, ''), 'hex');
export const macFromBytes = (buf: Buffer | undefined): string =>
  buf ? [...buf].map((b) => b.toString(16).padStart(2, '0')).join(':') : '';

function streamBytes(fill: (s: AttrStream) => void): Buffer {
  const s = new AttrStream();
  fill(s);
  return Buffer.concat(s.bufs);
}

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  readonly kind: string | undefined;
  readonly mac: string;
  readonly mtu: number;
  readonly up: boolean;
  readonly master: number | undefined;
  readonly alias: string | undefined;
  /** IFLA_LINK: for a veth, its peer's ifindex (in the peer's namespace). */
  readonly peerIndex: number | undefined;
}

/** A veth pair just created: its host end as the kernel echoed it, when it did (Linux 6.3+). */
export interface CreatedVeth {
  readonly host: LinkInfo | undefined;
}

export interface AddrInfo {
  readonly index: number;
  readonly cidr: Cidr;
}

export interface RouteInfo {
  readonly dst: Cidr;
  readonly gw: Ip | undefined;
  readonly oif: number | undefined;
}

export interface VxlanSpec {
  readonly name: string;
  readonly vni: number;
  /** The underlay address the tunnel's packets leave from (IPv4 or IPv6). */
  readonly local: Ip;
  /** UDP destination port (4789). */
  readonly port: number;
  readonly learning: boolean;
  /** The underlay link (IFLA_VXLAN_LINK), if pinned. */
  readonly underlayIndex?: number;
  readonly mtu?: number;
  readonly mac?: string;
}

/** What the kernel reports of a VXLAN link's configuration. */
export interface VxlanInfo {
  readonly vni: number | undefined;
  readonly local: Ip | undefined;
  readonly port: number | undefined;
  readonly learning: boolean | undefined;
  readonly underlayIndex: number | undefined;
}

export interface NeighInfo {
  readonly ip: Ip;
  readonly mac: string;
  readonly permanent: boolean;
}

export interface FdbInfo {
  readonly mac: string;
  /** The remote (VXLAN FDB entries); undefined for a bridge's own entries. */
  readonly dst: Ip | undefined;
  readonly permanent: boolean;
}

/** A change the kernel announced: what kind of object, and the link it concerns. */
export interface RtnlChange {
  /** 'overflow': notifications were lost (receive buffer full); assume anything changed. */
  readonly kind: 'link' | 'address' | 'neighbor' | 'route' | 'overflow' | string;
  readonly ifindex: number | undefined;
  /** Created or changed ('new'), or deleted ('del'); undefined when not told. */
  readonly op?: 'new' | 'del';
  /** An address added to or removed from the link. */
  readonly address?: Cidr;
  /** A main-table unicast route: its destination and gateway (other routes carry none). */
  readonly route?: { readonly dst: Cidr; readonly gw: Ip | undefined };
  /** An IPv4/IPv6 neighbour entry (ARP, NDP). */
  readonly neigh?: { readonly ip: Ip; readonly mac: string; readonly permanent: boolean };
  /** A forwarding database entry (bridge family): a VXLAN device's MAC -> remote. */
  readonly fdb?: { readonly mac: string; readonly dst: Ip | undefined };
}

const RTM_DELROUTE = 25;
const RTM_DELNEIGH = 29;
const RTM_DELLINK = 17;
const RTM_DELADDR = 21;

/** An address attribute, undefined when it is not one (empty, or of an odd length). */
const addrOf = (b: Buffer | undefined): Ip | undefined => (b && (b.length === 4 || b.length === 16) ? ipFromBytes(b) : undefined);

/** One notification in RtnlChange's terms (what an agent needs to tell its own changes' echo from someone else's). */
export function toChange(type: number, m: ReturnType<typeof parseMessage>): RtnlChange {
  const op = type === RTM_DELROUTE || type === RTM_DELNEIGH || type === RTM_DELLINK || type === RTM_DELADDR ? 'del' : 'new';
  switch (m.kind) {
    case 'link': return { kind: m.kind, ifindex: m.data.index, op };
    case 'address': {
      const ip = addrOf(m.attrs.local ?? m.attrs.address);
      return { kind: m.kind, ifindex: m.data.index, op, ...(ip ? { address: { ip, prefix: m.data.prefixlen ?? 0 } } : {}) };
    }
    case 'neighbor': {
      const base = { kind: m.kind, ifindex: m.data.ifindex, op } as const;
      if (m.data.family === AF_BRIDGE) {
        return m.attrs.lladdr ? { ...base, fdb: { mac: macFromBytes(m.attrs.lladdr), dst: addrOf(m.attrs.dst) } } : base;
      }
      const ip = addrOf(m.attrs.dst);
      if (!ip) return base;
      return { ...base, neigh: { ip, mac: macFromBytes(m.attrs.lladdr), permanent: Boolean(m.data.state?.permanent) } };
    }
    case 'route': {
      const base = { kind: m.kind, ifindex: m.attrs.oif, op } as const;
      if ((m.data.table ?? RT_TABLE_MAIN) !== RT_TABLE_MAIN || m.data.type !== 'UNICAST') return base;
      const family = m.data.family === AF_INET6 ? 6 : 4;
      const dst: Cidr = { ip: addrOf(m.attrs.dst) ?? { family, value: 0n }, prefix: m.data.dstLen ?? 0 };
      return { ...base, route: { dst, gw: addrOf(m.attrs.gateway) } };
    }
    default: return { kind: m.kind, ifindex: undefined, op };
  }
}

/** node-netlink reports a kernel error as Error("Request rejected: ENODEV"): the errno name. */
const errno = (err: unknown): string | undefined => {
  const m = /Request rejected: (E[A-Z0-9]+)/.exec((err as Error)?.message ?? '');
  return m ? m[1] : (err as NodeJS.ErrnoException)?.code;
};

/**
 * Route netlink in one namespace (the host's when opened without one). Link, address, route and
 * neighbour settings go over vxnet's own socket (./nl-channel.ts: those of one tick in one
 * exchange); lookups, dumps and the rarer requests over node-netlink's, opened on first use.
 */
export class Rtnl {
  private nl: RtNetlinkSocket | undefined;
  /** The last error node-netlink's socket reported (see sock). */
  lastSocketError: Error | undefined;

  private constructor(private readonly channel: NlChannel, private readonly inHost: boolean, readonly where: string) {}

  static open(ns?: NetnsHandle): Rtnl {
    try {
      return ns ? inNetnsSync(ns, () => new Rtnl(NlChannel.open(), false, ns.path)) : new Rtnl(NlChannel.open(), true, 'host');
    } catch (err) {
      if (err instanceof Error && err.name === 'InvalidNetns') throw err;
      throw new DatapathFailure(`cannot open a netlink socket in ${ns ? ns.path : 'the host namespace'}: ${(err as Error).message}`);
    }
  }

  /** node-netlink's socket, opened in the channel's namespace (the namespace's handle may be closed by now). */
  private get sock(): RtNetlinkSocket {
    if (this.nl) return this.nl;
    try {
      if (this.inHost) {
        this.nl = createRtNetlink();
      } else {
        const fd = this.channel.namespaceFd();
        try {
          this.nl = inNetnsSync({ path: this.where, fd, close: () => undefined }, () => createRtNetlink());
        } finally {
          closeSync(fd);
        }
      }
    } catch (err) {
      throw new DatapathFailure(`cannot open a netlink socket in ${this.inHost ? 'the host namespace' : this.where}: ${(err as Error).message}`);
    }
    // An 'error' event nobody listens to is thrown, and from the native callback that aborts
    // the process (seen under a burst of thousands of entries). Recorded instead: the request
    // it concerned fails or times out on its own.
    this.nl.socket.on('error', (err: Error) => { this.lastSocketError = err; });
    return this.nl;
  }

  /**
   * Subscribes to the kernel's link, address, neighbour (and FDB) and route notifications in a
   * namespace (the host's without one), on a socket of its own: how a controller learns that
   * someone changed what it programmed, without polling. onChange gets each batch the kernel
   * sends. close() unsubscribes.
   */
  static monitor(ns: NetnsHandle | undefined, onChange: (changes: RtnlChange[]) => void): { close(): void } {
    let sock: RtNetlinkSocket;
    try {
      sock = ns ? inNetnsSync(ns, () => createRtNetlink()) : createRtNetlink();
      for (const g of ['LINK', 'NEIGH', 'IPV4_IFADDR', 'IPV6_IFADDR', 'IPV4_ROUTE', 'IPV6_ROUTE'] as const) sock.addMembership(g);
    } catch (err) {
      if (err instanceof Error && err.name === 'InvalidNetns') throw err;
      throw new DatapathFailure(`cannot monitor netlink in ${ns ? ns.path : 'the host namespace'}: ${(err as Error).message}`);
    }
    // The raw messages, for their type (new or deleted), which node-netlink's parsed ones lack.
    // Nothing runs inside node-netlink's native callback but queueing: the messages are parsed
    // and handed over on the next turn of the event loop, in one batch per turn (a listener
    // that programs the kernel from inside the callback was seen to abort the process under a
    // burst of thousands of notifications).
    let queued: Array<{ type: number; data: Buffer }> = [];
    let closed = false;
    const deliver = (): void => {
      const msgs = queued;
      queued = [];
      if (closed) return;
      const changes: RtnlChange[] = [];
      for (const x of msgs) {
        if (x.type === 0) { changes.push({ kind: 'overflow', ifindex: undefined }); continue; }
        try { changes.push(toChange(x.type, parseMessage(x.type, x.data))); } catch { /* a message node-netlink cannot parse: not one of ours */ }
      }
      if (changes.length === 0) return;
      try { onChange(changes); } catch { try { onChange([{ kind: 'overflow', ifindex: undefined }]); } catch { /* nothing more to do */ } }
    };
    const enqueue = (msgs: ReadonlyArray<{ type: number; data: Buffer }>): void => {
      if (queued.length === 0) setImmediate(deliver);
      for (const x of msgs) queued.push(x);
    };
    sock.socket.on('message', enqueue);
    sock.on('invalid', () => { /* reported above */ });
    // A burst (thousands of entries changed at once) can overflow the socket's receive buffer:
    // recv fails with ENOBUFS and notifications are lost. Unhandled, that error would abort the
    // process from the native callback; reported as an 'overflow' change, it makes the listener
    // re-read everything.
    try { sock.socket.socket.setRecvBufferSize(4 << 20); } catch { /* keep the default */ }
    // Type 0 in the queue: notifications were lost.
    sock.socket.on('error', () => enqueue([{ type: 0, data: Buffer.alloc(0) }]));
    return { close: () => { closed = true; try { sock.socket.socket.close(); } catch { /* already closed */ } } };
  }

  close(): void {
    this.channel.close();
    try { this.nl?.socket.socket.close(); } catch { /* already closed */ }
  }

  private fail(what: string, err: unknown): DatapathFailure {
    return new DatapathFailure(`${what} in ${this.where === 'host' ? 'the host namespace' : this.where}: ${(err as Error).message}`);
  }

  private static fromFields(f: LinkFields): LinkInfo {
    return {
      index: f.index, name: f.ifname ?? '', kind: f.kind, mac: macFromBytes(f.address), mtu: f.mtu ?? 0, up: f.up,
      master: f.master || undefined, alias: f.ifalias, peerIndex: f.link || undefined,
    };
  }

  private static toLink(m: { data: rt.Link; attrs: ifla.LinkAttrs }): LinkInfo {
    const info = m.attrs.linkinfo ? ifla.parseInfo(m.attrs.linkinfo) : undefined;
    return {
      index: m.data.index ?? 0,
      name: m.attrs.ifname ?? '',
      kind: info?.kind,
      mac: macFromBytes(m.attrs.address),
      mtu: m.attrs.mtu ?? 0,
      up: Boolean(m.data.flags?.up),
      master: m.attrs.master || undefined,
      alias: m.attrs.ifalias,
      peerIndex: m.attrs.link && m.attrs.link.length >= 4 ? m.attrs.link.readUInt32LE(0) || undefined : undefined,
    };
  }

  async link(name: string): Promise<LinkInfo | undefined> {
    try {
      const [m] = await this.sock.getLink({}, { ifname: name, extMask: SKIP_STATS });
      return m ? Rtnl.toLink(m) : undefined;
    } catch (err) {
      if (errno(err) === 'ENODEV') return undefined;
      throw this.fail(`cannot look up link ${name}`, err);
    }
  }

  async links(): Promise<LinkInfo[]> {
    try {
      return (await this.sock.getLinks()).map(Rtnl.toLink);
    } catch (err) {
      throw this.fail('cannot list links', err);
    }
  }

  /** Creates a bridge; false when a link of that name exists already. */
  async createBridge(name: string, mtu: number | undefined, mac?: string): Promise<boolean> {
    const linkinfo = streamBytes((s) => s.emit(ifla.formatInfo({ kind: 'bridge' })));
    try {
      await this.sock.newLink({}, { ifname: name, linkinfo, ...(mtu ? { mtu } : {}), ...(mac ? { address: macToBytes(mac) } : {}) }, { flags: NLM_F_CREATE | NLM_F_EXCL });
      return true;
    } catch (err) {
      if (errno(err) === 'EEXIST') return false;
      throw this.fail(`cannot create bridge ${name}`, err);
    }
  }

  /**
   * Creates a veth pair whose peer is born inside `peer.ns` with its final name, so no rename and
   * no second move is needed; the host end stays here. `host.master` and `host.up` are applied
   * by the kernel as part of the creation (no further requests); the peer cannot come up in it
   * (its other end does not exist yet: ENOTCONN). Returns the host end as the kernel echoes it
   * (with the peer's ifindex), so no lookup follows; `host` is undefined on kernels before 6.3,
   * which do not echo, and with VXNET_LINK_ECHO=0 (the echo not asked for: how tests run the
   * older kernels' path). False when a link of either name exists already (nothing was created).
   * `offThread`: the kernel's work for it (the longest of an ADD's requests) runs on libuv's
   * threadpool while the caller goes on (see nl-channel.ts).
   */
  async createVeth(
    hostName: string,
    peer: { name: string; ns: NetnsHandle; mtu?: number; mac?: string },
    host: { mtu?: number; master?: number; up?: boolean } = {},
    options: { offThread?: boolean } = {},
  ): Promise<CreatedVeth | false> {
    const body = newVethBody(
      { name: hostName, ...(host.mtu ? { mtu: host.mtu } : {}), ...(host.master ? { master: host.master } : {}), ...(host.up ? { up: true } : {}) },
      { name: peer.name, nsFd: peer.ns.fd, ...(peer.mtu ? { mtu: peer.mtu } : {}), ...(peer.mac ? { address: macToBytes(peer.mac) } : {}) });
    try {
      const echo = process.env.VXNET_LINK_ECHO === '0' ? 0 : NLM_F_ECHO;
      const replies = await this.channel.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | echo, body, { offThread: options.offThread === true });
      const own = replies.filter((m) => m.type === RTM_NEWLINK).map((m) => parseLinkBody(m.data)).find((f) => f.ifname === hostName);
      return { host: own ? Rtnl.fromFields(own) : undefined };
    } catch (err) {
      if (errno(err) === 'EEXIST') return false;
      throw this.fail(`cannot create veth ${hostName}/${peer.name}`, err);
    }
  }

  async setLink(index: number, change: { up?: boolean; master?: number; mtu?: number; mac?: string; name?: string; alias?: string }): Promise<void> {
    const body = setLinkBody(index, {
      ...(change.up !== undefined ? { up: change.up } : {}), ...(change.master !== undefined ? { master: change.master } : {}),
      ...(change.mtu !== undefined ? { mtu: change.mtu } : {}), ...(change.mac !== undefined ? { address: macToBytes(change.mac) } : {}),
      ...(change.name !== undefined ? { ifname: change.name } : {}), ...(change.alias !== undefined ? { ifalias: change.alias } : {}),
    });
    try {
      await this.channel.request(RTM_SETLINK, 0, body);
    } catch (err) {
      throw this.fail(`cannot configure link #${index} (${JSON.stringify(change)})`, err);
    }
  }

  /** Deletes a link by name; false when it did not exist. */
  async deleteLink(name: string): Promise<boolean> {
    try {
      await this.sock.delLink({}, { ifname: name });
      return true;
    } catch (err) {
      if (errno(err) === 'ENODEV') return false;
      throw this.fail(`cannot delete link ${name}`, err);
    }
  }

  /**
   * Takes a link out of service at once (down, off its bridge, renamed to `newName`) and
   * deletes it in a detached `ip link del`: the kernel's unregister waits for RCU grace
   * periods (about 25 ms here), which the caller then does not wait for. The rename frees
   * the old name for the next attachment; GC removes retired links whose deleter died.
   */
  async retireLink(link: LinkInfo, newName: string): Promise<void> {
    const ip = findTool('ip');
    if (!ip) {
      await this.deleteLink(link.name);
      return;
    }
    await this.setLink(link.index, { up: false, master: 0 });
    await this.setLink(link.index, { name: newName });
    const child = spawn(ip, ['link', 'del', newName], { detached: true, stdio: 'ignore' });
    child.on('error', () => { /* GC removes it */ });
    child.unref();
  }

  /**
   * Adds an address; an IPv6 address skips duplicate address detection (otherwise it is unusable
   * for seconds). `noPrefixRoute`: no route to the address's prefix (a routed attachment sends
   * everything through its gateway).
   */
  async addAddress(index: number, cidr: Cidr, options: { replace?: boolean; noPrefixRoute?: boolean } = {}): Promise<void> {
    try {
      await this.channel.request(RTM_NEWADDR, NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL),
        newAddressBody(index, afOf(cidr.ip.family), cidr.prefix, ipBytes(cidr.ip), { noPrefixRoute: options.noPrefixRoute === true }));
    } catch (err) {
      if (errno(err) === 'EEXIST') return;
      throw this.fail(`cannot add address ${formatCidr(cidr)} to link #${index}`, err);
    }
  }

  async addresses(index?: number): Promise<AddrInfo[]> {
    try {
      const all = await this.sock.getAddresses();
      return all
        .filter((m) => index === undefined || m.data.index === index)
        .filter((m) => m.attrs.address !== undefined)
        .map((m) => ({ index: m.data.index ?? 0, cidr: { ip: ipFromBytes((m.attrs.local ?? m.attrs.address) as Buffer), prefix: m.data.prefixlen ?? 0 } }));
    } catch (err) {
      throw this.fail('cannot list addresses', err);
    }
  }

  /** The route the kernel would take to `dst` (a FIB lookup, not a dump); undefined when there is none. */
  async routeTo(dst: Ip): Promise<{ oif: number | undefined; gw: Ip | undefined } | undefined> {
    try {
      const msgs = await this.sock.getRoute({ family: afOf(dst.family), dstLen: dst.family === 4 ? 32 : 128 }, { dst: ipBytes(dst) });
      const m = msgs[0];
      return m ? { oif: m.attrs.oif, gw: addrOf(m.attrs.gateway) } : undefined;
    } catch (err) {
      const e = errno(err);
      if (e === 'ENETUNREACH' || e === 'EHOSTUNREACH' || e === 'ESRCH' || e === 'ENOENT') return undefined;
      throw this.fail(`cannot look up the route to ${formatIp(dst)}`, err);
    }
  }

  /** Adds a route; `onlink`: the gateway is taken as reachable on oif whatever the link's addresses. */
  async addRoute(route: { dst: Cidr; gw?: Ip; oif?: number; onlink?: boolean }): Promise<void> {
    try {
      await this.channel.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, newRouteBody({
        family: afOf(route.dst.ip.family), dstLen: route.dst.prefix, ...(route.dst.prefix > 0 ? { dst: ipBytes(route.dst.ip) } : {}),
        ...(route.gw ? { gateway: ipBytes(route.gw) } : {}), ...(route.oif ? { oif: route.oif } : {}), onlink: route.onlink === true,
      }));
    } catch (err) {
      if (errno(err) === 'EEXIST') return;
      throw this.fail(`cannot add route ${formatCidr(route.dst)}${route.gw ? ` via ${formatIp(route.gw)}` : ''}${route.onlink ? ' onlink' : ''}`, err);
    }
  }

  async routes(family: 4 | 6): Promise<RouteInfo[]> {
    try {
      const all = await this.sock.getRoutes({ family: afOf(family) });
      return all
        .filter((m) => (m.data.table ?? RT_TABLE_MAIN) === RT_TABLE_MAIN && m.data.type === 'UNICAST')
        .map((m) => ({
          dst: { ip: m.attrs.dst ? ipFromBytes(m.attrs.dst) : { family, value: 0n }, prefix: m.data.dstLen ?? 0 },
          gw: m.attrs.gateway ? ipFromBytes(m.attrs.gateway) : undefined,
          oif: m.attrs.oif,
        }));
    } catch (err) {
      throw this.fail('cannot list routes', err);
    }
  }

  // --- VXLAN devices, neighbours, FDB (the overlay) ---------------------------------------

  /** Creates a VXLAN link (down); false when a link of that name exists already. */
  async createVxlan(spec: VxlanSpec): Promise<boolean> {
    const port = Buffer.alloc(2);
    port.writeUInt16BE(spec.port);
    const data = streamBytes((s) => s.emit(ifla.formatVxlan({
      id: spec.vni, port, learning: spec.learning ? 1 : 0,
      ...(spec.local.family === 4 ? { local: ipBytes(spec.local) } : { local6: ipBytes(spec.local) }),
      ...(spec.underlayIndex ? { link: spec.underlayIndex } : {}),
    })));
    const linkinfo = streamBytes((s) => s.emit(ifla.formatInfo({ kind: 'vxlan', data })));
    try {
      await this.sock.newLink({}, {
        ifname: spec.name, linkinfo, ...(spec.mtu ? { mtu: spec.mtu } : {}), ...(spec.mac ? { address: macToBytes(spec.mac) } : {}),
      }, { flags: NLM_F_CREATE | NLM_F_EXCL });
      return true;
    } catch (err) {
      if (errno(err) === 'EEXIST') return false;
      throw this.fail(`cannot create vxlan ${spec.name} (vni ${spec.vni}, local ${formatIp(spec.local)}, port ${spec.port})`, err);
    }
  }

  /** A link and, when it is a VXLAN link, its VXLAN configuration. */
  async vxlan(name: string): Promise<{ link: LinkInfo; vxlan: VxlanInfo | undefined } | undefined> {
    let msgs;
    try {
      msgs = await this.sock.getLink({}, { ifname: name });
    } catch (err) {
      if (errno(err) === 'ENODEV') return undefined;
      throw this.fail(`cannot look up link ${name}`, err);
    }
    const m = msgs[0];
    if (!m) return undefined;
    const link = Rtnl.toLink(m);
    const info = m.attrs.linkinfo ? ifla.parseInfo(m.attrs.linkinfo) : undefined;
    if (info?.kind !== 'vxlan' || !info.data) return { link, vxlan: undefined };
    const v = ifla.parseVxlan(info.data);
    const local = v.local ? ipFromBytes(v.local) : v.local6 ? ipFromBytes(v.local6) : undefined;
    return {
      link,
      vxlan: {
        vni: v.id, local, port: v.port ? v.port.readUInt16BE(0) : undefined,
        learning: v.learning === undefined ? undefined : v.learning !== 0, underlayIndex: v.link || undefined,
      },
    };
  }

  async deleteAddress(index: number, cidr: Cidr): Promise<boolean> {
    const bytes = ipBytes(cidr.ip);
    try {
      await this.sock.delAddress({ family: afOf(cidr.ip.family), prefixlen: cidr.prefix, index }, { address: bytes, local: bytes });
      return true;
    } catch (err) {
      if (errno(err) === 'EADDRNOTAVAIL' || errno(err) === 'ENODEV') return false;
      throw this.fail(`cannot delete address ${formatCidr(cidr)} from link #${index}`, err);
    }
  }

  /** Neighbour entries (ARP and NDP) of a link, both families. */
  async neighbours(index: number): Promise<NeighInfo[]> {
    try {
      const out: NeighInfo[] = [];
      for (const family of [AF_INET, AF_INET6]) {
        for (const m of await this.sock.getNeighbors({ family })) {
          if (m.data.ifindex !== index || !m.attrs.dst) continue;
          out.push({ ip: ipFromBytes(m.attrs.dst), mac: macFromBytes(m.attrs.lladdr), permanent: Boolean(m.data.state?.permanent) });
        }
      }
      return out;
    } catch (err) {
      throw this.fail(`cannot list neighbours of link #${index}`, err);
    }
  }

  /** Creates or replaces a permanent neighbour entry ip -> mac on a link (`ip neigh replace ... nud permanent`). */
  async setNeighbour(index: number, ip: Ip, mac: string): Promise<void> {
    try {
      await this.channel.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, newNeighbourBody(afOf(ip.family), index, ipBytes(ip), macToBytes(mac)));
    } catch (err) {
      throw this.fail(`cannot set neighbour ${formatIp(ip)} lladdr ${mac} on link #${index}`, err);
    }
  }

  /**
   * Adds a proxy neighbour entry: the link answers neighbour solicitations for ip (IPv6 needs
   * the link's proxy_ndp on). The kernel drops it with the link.
   */
  async addProxyNeighbour(index: number, ip: Ip): Promise<void> {
    try {
      await this.channel.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, newProxyNeighbourBody(afOf(ip.family), index, ipBytes(ip)));
    } catch (err) {
      throw this.fail(`cannot add proxy neighbour ${formatIp(ip)} on link #${index}`, err);
    }
  }

  /** Deletes a neighbour entry; false when there was none. */
  async deleteNeighbour(index: number, ip: Ip): Promise<boolean> {
    try {
      await this.sock.delNeighbor({ family: afOf(ip.family), ifindex: index }, { dst: ipBytes(ip) });
      return true;
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENODEV') return false;
      throw this.fail(`cannot delete neighbour ${formatIp(ip)} on link #${index}`, err);
    }
  }

  /** The forwarding database entries of a link (a VXLAN device's: MAC -> remote). */
  async fdb(index: number): Promise<FdbInfo[]> {
    try {
      return (await this.sock.getNeighbors({ family: AF_BRIDGE }))
        .filter((m) => m.data.ifindex === index && m.attrs.lladdr)
        .map((m) => ({
          mac: macFromBytes(m.attrs.lladdr), dst: m.attrs.dst ? ipFromBytes(m.attrs.dst) : undefined, permanent: Boolean(m.data.state?.permanent),
        }));
    } catch (err) {
      throw this.fail(`cannot list the forwarding database of link #${index}`, err);
    }
  }

  /**
   * Creates or replaces a permanent FDB entry mac -> dst on a VXLAN device
   * (`bridge fdb replace MAC dev DEV dst IP self permanent`).
   */
  async setFdb(index: number, mac: string, dst: Ip): Promise<void> {
    try {
      await this.sock.newNeighbor({ family: AF_BRIDGE, ifindex: index, state: { permanent: true }, flags: { self: true } },
        { lladdr: macToBytes(mac), dst: ipBytes(dst) }, { flags: NLM_F_CREATE | NLM_F_REPLACE });
    } catch (err) {
      throw this.fail(`cannot set fdb ${mac} dst ${formatIp(dst)} on link #${index}`, err);
    }
  }

  /** Deletes an FDB entry (only the remote dst when given); false when there was none. */
  async deleteFdb(index: number, mac: string, dst?: Ip): Promise<boolean> {
    try {
      await this.sock.delNeighbor({ family: AF_BRIDGE, ifindex: index, flags: { self: true } },
        { lladdr: macToBytes(mac), ...(dst ? { dst: ipBytes(dst) } : {}) });
      return true;
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENODEV') return false;
      throw this.fail(`cannot delete fdb ${mac}${dst ? ` dst ${formatIp(dst)}` : ''} on link #${index}`, err);
    }
  }

  /** Creates or replaces a route dst via gw on link oif, optionally onlink (`ip route replace ... onlink`). */
  async replaceRoute(route: { dst: Cidr; gw: Ip; oif: number; onlink?: boolean }): Promise<void> {
    const family = route.dst.ip.family;
    try {
      await this.channel.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, newRouteBody({
        family: afOf(family), dstLen: route.dst.prefix, ...(route.dst.prefix > 0 ? { dst: ipBytes(route.dst.ip) } : {}),
        gateway: ipBytes(route.gw), oif: route.oif, onlink: route.onlink === true,
      }));
    } catch (err) {
      throw this.fail(`cannot set route ${formatCidr(route.dst)} via ${formatIp(route.gw)} dev #${route.oif}${route.onlink ? ' onlink' : ''}`, err);
    }
  }

  /** Deletes a route of the main table; false when there was none. */
  async deleteRoute(route: { dst: Cidr; gw?: Ip; oif?: number }): Promise<boolean> {
    const family = route.dst.ip.family;
    try {
      await this.sock.delRoute(
        { family: afOf(family), dstLen: route.dst.prefix, table: RT_TABLE_MAIN },
        { ...(route.dst.prefix > 0 ? { dst: ipBytes(route.dst.ip) } : {}), ...(route.gw ? { gateway: ipBytes(route.gw) } : {}), ...(route.oif ? { oif: route.oif } : {}) });
      return true;
    } catch (err) {
      if (errno(err) === 'ESRCH' || errno(err) === 'ENOENT' || errno(err) === 'ENODEV') return false;
      throw this.fail(`cannot delete route ${formatCidr(route.dst)}`, err);
    }
  }
}
