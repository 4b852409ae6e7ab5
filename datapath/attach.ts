// One container's attachment, the part the CNI plugin and the Docker driver share: the veth
// pair (host end up, on its bridge or routed), the container end's configuration inside its
// namespace, and telling what is found under an attachment's names when the pair cannot be
// created (a repeated ADD of a live attachment, or the leftover of an ADD killed half-way).
// The pure parts (what an attachment in place lacks) are separate from the netlink calls.
import { AttachmentDrifted, DatapathFailure } from '../lib/errors';
import { Cidr, Ip, formatCidr, sameIp } from '../ipam/addr';
import type { NetnsHandle } from '../net/netns';
import { CreatedVeth, LinkInfo, Rtnl, macFromBytes, macToBytes } from '../net/rtnl';
import { programHostEnd } from './routed';
import { enableHairpin } from '../net/nat';

/** A container address with the gateway its routes go through. */
export interface AttachedIp {
  readonly cidr: Cidr;
  readonly gateway: Ip;
}

/** A route inside the container: dst (host bits ignored) via gw, on the container's interface. */
export interface ContainerRoute {
  readonly dst: Cidr;
  readonly gw: Ip | undefined;
}

/** The names and settings of one veth pair. */
export interface VethPair {
  /** The host end's name (names.ts hostVethName for a CNI attachment). */
  readonly host: string;
  /** The container end's name, born in `ns` (the CNI ifname; Docker's is renamed by Docker). */
  readonly container: string;
  readonly ns: NetnsHandle;
  /** The container end's MAC, chosen by vxnet so that it is known without a lookup. */
  readonly mac: string;
  readonly mtu: number | undefined;
}

/** A MAC as the kernel prints it (lower case, colons), whatever notation it was given in. Pure. */
export const normalizeMac = (mac: string): string => macFromBytes(macToBytes(mac));

/**
 * Creates the pair, the host end up and, with `master`, on that bridge, in one request. False when
 * a link of either name exists already (nothing was created). `offThread`: see Rtnl.createVeth.
 */
export function createPair(host: Rtnl, pair: VethPair, master: number | undefined, offThread = false): Promise<CreatedVeth | false> {
  const mtu = pair.mtu ? { mtu: pair.mtu } : {};
  const created = host.createVeth(pair.host, { name: pair.container, ns: pair.ns, mac: pair.mac, ...mtu },
    { ...mtu, ...(master === undefined ? {} : { master }), up: true }, { offThread });
  if (master === undefined) return created;
  // A container reaching itself through a VIP needs its port in hairpin mode (net/nat.ts).
  return created.then((c) => { if (c) enableHairpin(pair.host); return c; });
}

/** Both ends of a pair as they are now. */
export interface PairEnds {
  readonly host: LinkInfo;
  readonly containerIndex: number;
  readonly containerMac: string;
}

/**
 * The ends of a pair just created: the host end as the kernel echoed it (Linux 6.3+), else both
 * looked up. Not looking them up also spares the call the kernel's synchronous processing of
 * their pending link-state events (a lookup runs it; otherwise a kernel worker does, later).
 */
export async function endsOf(host: Rtnl, inner: Rtnl, pair: VethPair, created: CreatedVeth): Promise<PairEnds> {
  const echoed = created.host;
  if (echoed?.peerIndex !== undefined) return { host: echoed, containerIndex: echoed.peerIndex, containerMac: pair.mac };
  const [v, c] = await Promise.all([host.link(pair.host), inner.link(pair.container)]);
  if (!v) throw new AttachmentDrifted(`veth ${pair.host} vanished right after it was created`);
  if (!c) throw new AttachmentDrifted(`${pair.container} did not appear in ${pair.ns.path}`);
  return { host: v, containerIndex: c.index, containerMac: pair.mac };
}

/** How the container end is configured, the same for a new pair and for one found in place. */
export interface ContainerConfig {
  readonly ips: readonly AttachedIp[];
  readonly routes: readonly ContainerRoute[];
  /** Routed (overlay): no prefix routes, gateways `onlink` and resolved to the host end without ARP/ND, host routes back. */
  readonly routed: boolean;
}

/** The distinct gateways of the addresses (a routed container's neighbours). Pure. */
function gatewaysOf(ips: readonly AttachedIp[]): Ip[] {
  const seen = new Map<string, Ip>();
  for (const ip of ips) seen.set(`${ip.gateway.family}/${ip.gateway.value}`, ip.gateway);
  return [...seen.values()];
}

/**
 * Configures the container end (up, addresses, routes; routed: neighbours) and, routed, the host
 * end's routes and neighbours. Sent together: the kernel runs each socket's requests in order
 * (link up, addresses and neighbours before the routes that need them). Every request is
 * idempotent (an existing address or route is no error), so it also completes an attachment
 * found in place.
 */
export async function configureContainer(host: Rtnl, inner: Rtnl, ends: PairEnds, cfg: ContainerConfig): Promise<void> {
  const c = ends.containerIndex;
  await Promise.all([
    inner.setLink(c, { up: true }),
    ...cfg.ips.map((ip) => inner.addAddress(c, ip.cidr, { noPrefixRoute: cfg.routed })),
    ...(cfg.routed ? gatewaysOf(cfg.ips).map((gw) => inner.setNeighbour(c, gw, ends.host.mac)) : []),
    ...cfg.routes.map((r) => inner.addRoute({ dst: r.dst, ...(r.gw ? { gw: r.gw } : {}), oif: c, onlink: cfg.routed })),
    ...(cfg.routed ? [programHostEnd(host, ends.host.index, cfg.ips.map((ip) => ip.cidr.ip), ends.containerMac)] : []),
  ]);
}

/** What is under a pair's names when it could not be created. */
export type FoundPair =
  /** The pair exists: the host end's peer is the container's interface of that name. */
  | { readonly kind: 'pair'; readonly ends: PairEnds; readonly container: LinkInfo; readonly addresses: readonly Cidr[] }
  /** A host end whose peer is elsewhere (another namespace, another name): the leftover of an earlier ADD. */
  | { readonly kind: 'leftover' }
  /** No host end: the container's interface of that name is something else. */
  | { readonly kind: 'taken' };

/** Looks at what holds the pair's names: two lookups, and the container end's addresses when it is the pair. */
export async function findPair(host: Rtnl, inner: Rtnl, pair: VethPair): Promise<FoundPair> {
  const [h, c] = await Promise.all([host.link(pair.host), inner.link(pair.container)]);
  if (!h) return { kind: 'taken' };
  // Each end names its peer's index (in the peer's namespace): both pointing at each other is the pair.
  if (!c || c.kind !== 'veth' || c.peerIndex !== h.index || h.peerIndex !== c.index) return { kind: 'leftover' };
  const addresses = (await inner.addresses(c.index)).map((a) => a.cidr).filter((a) => !isLinkLocal(a.ip));
  return { kind: 'pair', ends: { host: h, containerIndex: c.index, containerMac: c.mac }, container: c, addresses };
}

const isLinkLocal = (ip: Ip): boolean => (ip.family === 6 ? ip.value >> 118n === 0x3fan : ip.value >> 16n === 0xa9fen);

/**
 * Whether a pair found in place was ever configured: an ADD killed between creating the pair and
 * configuring it leaves the container end down with no address (it cannot come up at creation,
 * and its addresses and "up" go in one request). Pure.
 */
export const configured = (found: { readonly container: LinkInfo; readonly addresses: readonly Cidr[] }): boolean =>
  found.container.up || found.addresses.length > 0;

/** What the attachment must be for a repeated ADD to leave it as it is. */
export interface WantedAttachment {
  readonly ips: readonly AttachedIp[];
  /** The bridge the host end must be on; undefined: routed (on no bridge). */
  readonly bridge: LinkInfo | undefined;
  /** A MAC the runtime asked for, if it did. */
  readonly mac: string | undefined;
}

/** Why a configured pair in place is not the attachment wanted; undefined when it is. Pure. */
export function attachmentMismatch(pair: VethPair, found: Extract<FoundPair, { kind: 'pair' }>, want: WantedAttachment): string | undefined {
  const where = `${pair.container} in ${pair.ns.path}`;
  const host = found.ends.host;
  if (want.bridge && host.master !== want.bridge.index) {
    return `host veth ${host.name} of ${where} is not on bridge ${want.bridge.name}`;
  }
  if (!want.bridge && host.master !== undefined) return `host veth ${host.name} of ${where} is on a bridge (#${host.master}); this network's containers are routed`;
  const same = (a: Cidr, b: Cidr): boolean => a.prefix === b.prefix && sameIp(a.ip, b.ip);
  const missing = want.ips.filter((ip) => !found.addresses.some((a) => same(a, ip.cidr)));
  const extra = found.addresses.filter((a) => !want.ips.some((ip) => same(a, ip.cidr)));
  if (missing.length || extra.length) {
    const list = (xs: readonly Cidr[]): string => (xs.length ? xs.map(formatCidr).join(', ') : 'no address');
    return `${where} has ${list(found.addresses)}, not ${list(want.ips.map((ip) => ip.cidr))} as allocated`;
  }
  if (want.mac && normalizeMac(want.mac) !== found.container.mac) return `${where} has MAC ${found.container.mac}, not ${normalizeMac(want.mac)} as asked`;
  return undefined;
}

/** The error of a repeated ADD that found a different attachment in place (left as it is). */
export function driftedAttachment(why: string, who: string): AttachmentDrifted {
  return new AttachmentDrifted(`${who} is attached already, differently: ${why}; it was left as it is (DEL it before adding it again)`);
}

/** Creates the pair in the host namespace, for a runtime that moves the container end itself (Docker); replaces leftovers of those names. */
export async function createHostPair(host: Rtnl, pair: VethPair, bridge: string | undefined): Promise<void> {
  await host.deleteLink(pair.host);
  await host.deleteLink(pair.container);
  const master = bridge === undefined ? undefined : await host.link(bridge);
  if (bridge !== undefined && !master) throw new DatapathFailure(`bridge ${bridge} vanished before the endpoint could be attached`);
  if (!(await createPair(host, pair, master?.index))) {
    throw new DatapathFailure(`cannot create veth ${pair.host} with peer ${pair.container}: an interface of one of those names exists already`);
  }
}
