// The overlay's pure core: what a host's VXLAN datapath should hold, given the peers it knows,
// and which block of an overlay subnet a host gets. No fs, net or netlink here: overlay/apply.ts
// reads the kernel's actual state, asks diffEntries what to change, and programs it.
//
// Model (flannel's vxlan backend, with DC/OS's per-host blocks):
// - every host leases one block per subnet of an overlay network (a /24 of a /16, a /64 of a
//   /48); containers on that host get addresses from it, so a container start needs no cluster
//   round trip;
// - the host's VTEP is the network's VXLAN device; its IP in each family is the first address of
//   the host's block in that family (10.237.3.0 for 10.237.3.0/24), so no second "VTEP subnet" has
//   to be allocated, and its MAC is derived from (host id, VNI), so a recreated device keeps it;
// - for each peer: a neighbour entry VTEP IP -> VTEP MAC on the VXLAN device (no ARP/ND across
//   the tunnel), an FDB entry VTEP MAC -> underlay IP (which host to send the frame to), and a
//   route "peer block via VTEP IP onlink" on the VXLAN device. One path for IPv4 and IPv6: the
//   family only changes the width of the addresses.
import { InvalidNetworkConfig, PoolExhausted, TryAgainLater, VxnetError } from '../lib/errors';
import {
  Cidr, Family, Ip, contains, defaultGatewayOf, familyBits, formatCidr, formatIp, networkOf, parseCidr, subnetSize,
} from '../ipam/addr';
import { isObject } from '../lib/guards';

export const VXLAN_PORT = 4789;
/** Outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8; an IPv6 underlay adds 20 more. */
export const vxlanOverhead = (underlay: Family): number => (underlay === 4 ? 50 : 70);
export const MAX_VNI = 0xffffff;

// --- the network --------------------------------------------------------------------------

export interface OverlayNetwork {
  readonly name: string;
  readonly vni: number;
  /** Canonical subnets, at most one per family (dual stack: one IPv4 and one IPv6). */
  readonly subnets: readonly Cidr[];
  /** Prefix length of each host's block, per family of the subnets. */
  readonly blockPrefix: { readonly 4?: number; readonly 6?: number };
  /** The overlay MTU; undefined: the underlay's MTU minus the VXLAN overhead. */
  readonly mtu: number | undefined;
  /** UDP destination port (4789, IANA's). */
  readonly port: number;
}


/**
 * Canonicalizes an overlay network definition once:
 * `{name, vni, subnets: ["10.237.0.0/16", "fd37::/48"], blockPrefix?: 24, blockPrefix6?: 64, mtu?, port?}`.
 * Throws InvalidNetworkConfig naming the field.
 */
export function parseOverlayNetwork(input: unknown): OverlayNetwork {
  if (!isObject(input)) throw new InvalidNetworkConfig('overlay network: must be an object');
  const name = input.name;
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    throw new InvalidNetworkConfig(`name: ${JSON.stringify(name)} is not a network name (1-63 of A-Z a-z 0-9 _ . -)`);
  }
  const vni = input.vni;
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 1 || vni > MAX_VNI) {
    throw new InvalidNetworkConfig(`vni: ${JSON.stringify(vni)} must be an integer between 1 and ${MAX_VNI}`);
  }
  const rawSubnets = typeof input.subnet === 'string' && input.subnets === undefined ? [input.subnet] : input.subnets;
  if (!Array.isArray(rawSubnets) || rawSubnets.length === 0) {
    throw new InvalidNetworkConfig('subnets: at least one subnet is required (e.g. ["10.237.0.0/16"])');
  }
  const subnets: Cidr[] = [];
  const blockPrefix: { 4?: number; 6?: number } = {};
  rawSubnets.forEach((raw, i) => {
    const field = `subnets[${i}]`;
    const parsed = typeof raw === 'string' ? parseCidr(raw) : undefined;
    if (!parsed) throw new InvalidNetworkConfig(`${field}: ${JSON.stringify(raw)} is not a valid CIDR`);
    const subnet = networkOf(parsed);
    if (subnet.ip.value !== parsed.ip.value) {
      throw new InvalidNetworkConfig(`${field}: ${raw} has host bits set; network is ${formatCidr(subnet)}`);
    }
    const family = subnet.ip.family;
    if (subnets.some((s) => s.ip.family === family)) {
      throw new InvalidNetworkConfig(`${field}: a second IPv${family} subnet; an overlay network has at most one per family`);
    }
    const key = family === 4 ? 'blockPrefix' : 'blockPrefix6';
    const given = input[key];
    const max = familyBits(family) - 2;
    const fallback = family === 4 ? Math.max(24, subnet.prefix + 1) : Math.max(64, subnet.prefix + 1);
    const prefix = given === undefined ? fallback : given;
    if (typeof prefix !== 'number' || !Number.isInteger(prefix) || prefix <= subnet.prefix || prefix > max) {
      throw new InvalidNetworkConfig(
        `${key}: ${JSON.stringify(prefix)} must be an integer longer than the subnet's /${subnet.prefix} and at most /${max}`);
    }
    subnets.push(subnet);
    blockPrefix[family] = prefix;
  });
  const mtu = input.mtu;
  if (mtu !== undefined && (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535)) {
    throw new InvalidNetworkConfig(`mtu: ${JSON.stringify(mtu)} must be an integer between 576 and 65535`);
  }
  const port = input.port ?? VXLAN_PORT;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidNetworkConfig(`port: ${JSON.stringify(port)} must be a UDP port number`);
  }
  return { name, vni, subnets, blockPrefix, mtu: mtu as number | undefined, port };
}

export const overlayNetworkToJson = (n: OverlayNetwork): Record<string, unknown> => ({
  name: n.name, vni: n.vni, subnets: n.subnets.map(formatCidr),
  ...(n.blockPrefix[4] !== undefined ? { blockPrefix: n.blockPrefix[4] } : {}),
  ...(n.blockPrefix[6] !== undefined ? { blockPrefix6: n.blockPrefix[6] } : {}),
  ...(n.mtu !== undefined ? { mtu: n.mtu } : {}),
  port: n.port,
});

/** The VXLAN device's name: "vxlan.<vni>" (at most 14 characters, under IFNAMSIZ). */
export const vxlanDeviceName = (vni: number): string => `vxlan.${vni}`;

/** The overlay MTU: the network's if set, else the underlay's minus the VXLAN overhead. */
export const overlayMtu = (network: Pick<OverlayNetwork, 'mtu'>, underlayMtu: number, underlay: Family = 4): number =>
  network.mtu ?? underlayMtu - vxlanOverhead(underlay);

/** The host's VTEP address in a block: the block's first address. */
export const vtepIpOf = (block: Cidr): Ip => networkOf(block).ip;

/** The containers' gateway in a block (on the host's VXLAN device): the block's second address. */
export const gatewayOf = (block: Cidr): Ip => defaultGatewayOf(block);

/**
 * A stable VTEP MAC for (host, VNI): locally administered, unicast (02:...), the rest a 40-bit
 * FNV-1a hash. Stable across restarts and device re-creations, so peers need no update.
 */
export function vtepMacFor(hostId: string, vni: number): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(`${hostId}\u0000${vni}`, 'utf8')) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  const hex = (h & 0xffffffffffn).toString(16).padStart(10, '0');
  return ['02', ...hex.match(/../g)!].join(':');
}

// --- peers and their entries --------------------------------------------------------------

/** Another host on the network, as the store describes it. */
export interface Peer {
  readonly id: string;
  readonly underlay: Ip;
  readonly mac: string;
  /** The host's blocks on this network (one per family). */
  readonly blocks: readonly Cidr[];
}

export interface NeighEntry { readonly ip: Ip; readonly mac: string }
export interface FdbEntry { readonly mac: string; readonly dst: Ip }
export interface RouteEntry { readonly dst: Cidr; readonly via: Ip }

/** Entries on one VXLAN device (desired or actual). */
export interface Entries {
  readonly neigh: readonly NeighEntry[];
  readonly fdb: readonly FdbEntry[];
  readonly routes: readonly RouteEntry[];
}

export const EMPTY: Entries = { neigh: [], fdb: [], routes: [] };

/** What a peer needs on this host: neighbour VTEP IP -> MAC, FDB MAC -> underlay, route block via VTEP IP. */
export function entriesFor(peer: Peer): Entries {
  const mac = peer.mac.toLowerCase();
  return {
    neigh: peer.blocks.map((b) => ({ ip: vtepIpOf(b), mac })),
    fdb: [{ mac, dst: peer.underlay }],
    routes: peer.blocks.map((b) => ({ dst: networkOf(b), via: vtepIpOf(b) })),
  };
}

export interface Conflict { readonly what: string; readonly kept: string; readonly dropped: string }

/**
 * The entries for every peer but `selfId`. Peers are taken in id order; a peer whose MAC or
 * block overlaps an earlier one's (a misconfiguration, or a block mid-reclaim) is left out
 * whole and reported, so the result never holds two answers for one key.
 */
export function desiredEntries(peers: Iterable<Peer>, selfId: string): { entries: Entries; conflicts: Conflict[] } {
  const neigh: NeighEntry[] = [];
  const fdb: FdbEntry[] = [];
  const routes: RouteEntry[] = [];
  const macOwner = new Map<string, string>();
  // Blocks of one network have one size per family, so overlapping blocks are equal blocks:
  // a map lookup, not a pairwise check (1000 peers stay linear).
  const blockOwner = new Map<string, string>();
  const conflicts: Conflict[] = [];
  const sorted = [...peers].filter((p) => p.id !== selfId).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const peer of sorted) {
    const e = entriesFor(peer);
    const macClash = e.fdb.map((f) => ({ what: `mac ${f.mac}`, kept: macOwner.get(f.mac) })).find((c) => c.kept !== undefined);
    const blockClash = e.routes.map((r) => ({ what: `block ${formatCidr(r.dst)}`, kept: blockOwner.get(formatCidr(r.dst)) }))
      .find((c) => c.kept !== undefined);
    const clash = macClash ?? blockClash;
    if (clash) {
      conflicts.push({ what: clash.what, kept: clash.kept!, dropped: peer.id });
      continue;
    }
    for (const f of e.fdb) macOwner.set(f.mac, peer.id);
    for (const r of e.routes) blockOwner.set(formatCidr(r.dst), peer.id);
    neigh.push(...e.neigh);
    fdb.push(...e.fdb);
    routes.push(...e.routes);
  }
  return { entries: { neigh, fdb, routes }, conflicts };
}

export const overlaps = (a: Cidr, b: Cidr): boolean =>
  a.ip.family === b.ip.family && (contains(a, b.ip) || contains(b, a.ip));

const neighKey = (n: NeighEntry): string => formatIp(n.ip);
const fdbKey = (f: FdbEntry): string => f.mac.toLowerCase();
const routeKey = (r: RouteEntry): string => formatCidr(r.dst);
const sameNeigh = (a: NeighEntry, b: NeighEntry): boolean => a.mac.toLowerCase() === b.mac.toLowerCase();
const sameFdb = (a: FdbEntry, b: FdbEntry): boolean => a.dst.family === b.dst.family && a.dst.value === b.dst.value;
const sameRoute = (a: RouteEntry, b: RouteEntry): boolean => a.via.family === b.via.family && a.via.value === b.via.value;

/** What to change on the device: `set` creates or replaces, `del` removes. */
export interface EntryDiff {
  readonly set: Entries;
  readonly del: Entries;
}

function diffKind<T>(desired: readonly T[], actual: readonly T[], key: (x: T) => string, same: (a: T, b: T) => boolean): { set: T[]; del: T[] } {
  const want = new Map(desired.map((x) => [key(x), x]));
  const have = new Map<string, T[]>();
  for (const x of actual) have.set(key(x), [...(have.get(key(x)) ?? []), x]);
  const set: T[] = [];
  const del: T[] = [];
  for (const [k, w] of want) {
    const h = have.get(k);
    // None: create. One, wrong: replace in place (no gap in the path). Several (an FDB MAC
    // may carry several destinations): delete the wrong ones, create the right one if absent.
    if (!h || h.length === 0) set.push(w);
    else if (h.length === 1) { if (!same(h[0], w)) set.push(w); }
    else { del.push(...h.filter((x) => !same(x, w))); if (!h.some((x) => same(x, w))) set.push(w); }
  }
  for (const [k, h] of have) if (!want.has(k)) del.push(...h);
  return { set, del };
}

/**
 * Desired versus actual: converges from any state. Entries the device holds that no peer wants
 * (a host that left or expired, an operator's experiment) are deleted; missing or wrong ones
 * (deleted by hand, a peer's new underlay address) are set.
 */
export function diffEntries(desired: Entries, actual: Entries): EntryDiff {
  const n = diffKind(desired.neigh, actual.neigh, neighKey, sameNeigh);
  const f = diffKind(desired.fdb, actual.fdb, fdbKey, sameFdb);
  const r = diffKind(desired.routes, actual.routes, routeKey, sameRoute);
  return { set: { neigh: n.set, fdb: f.set, routes: r.set }, del: { neigh: n.del, fdb: f.del, routes: r.del } };
}

export const isEmptyDiff = (d: EntryDiff): boolean =>
  [d.set.neigh, d.set.fdb, d.set.routes, d.del.neigh, d.del.fdb, d.del.routes].every((l) => l.length === 0);

export const describeEntries = (e: Entries): string[] => [
  ...e.neigh.map((n) => `neigh ${formatIp(n.ip)} lladdr ${n.mac}`),
  ...e.fdb.map((f) => `fdb ${f.mac} dst ${formatIp(f.dst)}`),
  ...e.routes.map((r) => `route ${formatCidr(r.dst)} via ${formatIp(r.via)} onlink`),
];

// --- peer events --------------------------------------------------------------------------

export type PeerEvent =
  | { readonly type: 'join'; readonly peer: Peer }
  | { readonly type: 'leave'; readonly peer: Peer }
  | { readonly type: 'change'; readonly peer: Peer; readonly before: Peer };

const samePeer = (a: Peer, b: Peer): boolean =>
  a.underlay.family === b.underlay.family && a.underlay.value === b.underlay.value && a.mac.toLowerCase() === b.mac.toLowerCase()
  && a.blocks.length === b.blocks.length && a.blocks.every((x, i) => formatCidr(x) === formatCidr(b.blocks[i]));

/** What changed between the peers a host knew and a new snapshot (for logs and metrics; programming uses diffEntries). */
export function diffPeers(known: Iterable<Peer>, snapshot: Iterable<Peer>): PeerEvent[] {
  const before = new Map([...known].map((p) => [p.id, p]));
  const after = new Map([...snapshot].map((p) => [p.id, p]));
  const events: PeerEvent[] = [];
  for (const [id, p] of after) {
    const b = before.get(id);
    if (!b) events.push({ type: 'join', peer: p });
    else if (!samePeer(b, p)) events.push({ type: 'change', peer: p, before: b });
  }
  for (const [id, p] of before) if (!after.has(id)) events.push({ type: 'leave', peer: p });
  return events;
}

// --- blocks -------------------------------------------------------------------------------

/** A block as the store records it: who holds it and, once its host's lease has expired, since when. */
export interface BlockLease {
  readonly block: Cidr;
  readonly hostId: string;
  /** Epoch ms at which the holder was first seen without a lease; undefined while it is alive. */
  readonly orphanedAt?: number;
}

export type BlockChoice =
  | { readonly kind: 'own'; readonly block: Cidr; readonly lease: BlockLease }
  | { readonly kind: 'free'; readonly block: Cidr }
  | { readonly kind: 'reclaim'; readonly block: Cidr; readonly lease: BlockLease };

export interface BlockRequest {
  readonly subnet: Cidr;
  readonly blockPrefix: number;
  readonly leases: readonly BlockLease[];
  readonly hostId: string;
  /** Hosts that hold a live lease now. */
  readonly alive: ReadonlySet<string>;
  readonly now: number;
  /** How long an expired host's blocks stay reserved for its return. */
  readonly graceMs: number;
}

const blockOf = (subnet: Cidr, prefix: number, index: bigint): Cidr =>
  ({ ip: { family: subnet.ip.family, value: subnet.ip.value + (index << BigInt(familyBits(subnet.ip.family) - prefix)) }, prefix });

/** Number of blocks of /blockPrefix in the subnet. */
export const blockCount = (subnet: Cidr, blockPrefix: number): bigint => subnetSize(subnet) >> BigInt(familyBits(subnet.ip.family) - blockPrefix);

/** True when an orphaned lease's grace period is over. */
export const reclaimable = (lease: BlockLease, alive: ReadonlySet<string>, now: number, graceMs: number): boolean =>
  !alive.has(lease.hostId) && lease.orphanedAt !== undefined && now - lease.orphanedAt >= graceMs;

/**
 * Which block a host gets in a subnet:
 * 1. the block it holds already (re-registration with the same identity, also while orphaned);
 * 2. else the lowest block nobody holds;
 * 3. else the lowest block whose holder's lease expired more than graceMs ago.
 * undefined: the subnet is full. Leases outside the subnet or of another size are ignored.
 * Linear in the number of leases, whatever the subnet's size (IPv6).
 */
export function chooseBlock(req: BlockRequest): BlockChoice | undefined {
  const { subnet, blockPrefix } = req;
  const mine = req.leases.find((l) => l.hostId === req.hostId && l.block.prefix === blockPrefix && contains(subnet, l.block.ip));
  if (mine) return { kind: 'own', block: networkOf(mine.block), lease: mine };
  const shift = BigInt(familyBits(subnet.ip.family) - blockPrefix);
  const taken = req.leases
    .filter((l) => l.block.prefix === blockPrefix && contains(subnet, l.block.ip))
    .map((l) => (l.block.ip.value - subnet.ip.value) >> shift)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let next = 0n;
  for (const i of taken) {
    if (i > next) break;
    if (i === next) next += 1n;
  }
  if (next < blockCount(subnet, blockPrefix)) return { kind: 'free', block: blockOf(subnet, blockPrefix, next) };
  const candidates = req.leases
    .filter((l) => l.block.prefix === blockPrefix && contains(subnet, l.block.ip) && reclaimable(l, req.alive, req.now, req.graceMs))
    .sort((a, b) => (a.block.ip.value < b.block.ip.value ? -1 : 1));
  return candidates[0] ? { kind: 'reclaim', block: networkOf(candidates[0].block), lease: candidates[0] } : undefined;
}

/** Leases whose holder has no live lease and that carry no orphanedAt yet: mark them now (starts their grace period). */
export const leasesToOrphan = (leases: readonly BlockLease[], alive: ReadonlySet<string>): BlockLease[] =>
  leases.filter((l) => !alive.has(l.hostId) && l.orphanedAt === undefined);

/** Leases marked orphaned whose holder is alive again: clear the mark (it came back in its grace period). */
export const leasesToRevive = (leases: readonly BlockLease[], alive: ReadonlySet<string>): BlockLease[] =>
  leases.filter((l) => alive.has(l.hostId) && l.orphanedAt !== undefined);

// --- no free block ------------------------------------------------------------------------

/** One leased block of a full subnet, as a host waiting for a block sees it. */
export interface ShortageHolder {
  readonly hostId: string;
  readonly block: Cidr;
  /** held: its host's lease is alive; orphaned: expired, grace period running or not started yet; reclaimable: grace over. */
  readonly state: 'held' | 'orphaned' | 'reclaimable';
  /** When its grace period ends (orphanedAt + grace); undefined while held or not marked yet. */
  readonly reclaimableAt: number | undefined;
}

/** Why a host has no block in a subnet: every block is leased. */
export interface BlockShortage {
  readonly subnet: Cidr;
  readonly blockPrefix: number;
  /** How many blocks the subnet has (every one of them leased). */
  readonly blocks: number;
  /** The leases, lowest block first. */
  readonly holders: readonly ShortageHolder[];
  /** When the first orphaned block's grace period ends; undefined when no block is orphaned. */
  readonly nextReclaimableAt: number | undefined;
}

/**
 * What a host asking for a block in the subnet is told when chooseBlock has none for it;
 * undefined when chooseBlock has one. Pure.
 */
export function blockShortage(req: BlockRequest): BlockShortage | undefined {
  if (chooseBlock(req)) return undefined;
  const { subnet, blockPrefix } = req;
  const holders: ShortageHolder[] = req.leases
    .filter((l) => l.block.prefix === blockPrefix && contains(subnet, l.block.ip))
    .sort((a, b) => (a.block.ip.value < b.block.ip.value ? -1 : a.block.ip.value > b.block.ip.value ? 1 : 0))
    .map((l) => {
      const alive = req.alive.has(l.hostId);
      const reclaimableAt = !alive && l.orphanedAt !== undefined ? l.orphanedAt + req.graceMs : undefined;
      const state = alive ? 'held' : reclaimable(l, req.alive, req.now, req.graceMs) ? 'reclaimable' : 'orphaned';
      return { hostId: l.hostId, block: networkOf(l.block), state, reclaimableAt };
    });
  const times = holders.flatMap((h) => (h.reclaimableAt === undefined ? [] : [h.reclaimableAt]));
  return {
    subnet, blockPrefix, blocks: Number(blockCount(subnet, blockPrefix)), holders,
    nextReclaimableAt: times.length > 0 ? Math.min(...times) : undefined,
  };
}

/** More holders than this are summed up as "and N more" in messages. */
const HOLDERS_SHOWN = 8;

const clock = (ms: number): string => `${new Date(ms).toISOString().slice(11, 19)}Z`;

function describeHolder(h: ShortageHolder, now: number): string {
  if (h.state === 'held') return `${h.hostId} (${formatCidr(h.block)}, alive)`;
  if (h.reclaimableAt === undefined) return `${h.hostId} (${formatCidr(h.block)}, expired, grace period not started)`;
  if (h.state === 'reclaimable') return `${h.hostId} (${formatCidr(h.block)}, expired, reclaimable)`;
  return `${h.hostId} (${formatCidr(h.block)}, expired, reclaimable in ${Math.max(0, Math.ceil((h.reclaimableAt - now) / 1000))} s at ${clock(h.reclaimableAt)})`;
}

/**
 * One line for an operator: "no free /24 block in 10.235.0.0/23 [for host H]: both blocks are
 * held (a (10.235.0.0/24, alive), b (10.235.1.0/24, expired, reclaimable in 4 s at 16:01:02Z))",
 * and what happens next. Pure.
 */
export function describeShortage(s: BlockShortage, now: number, hostId?: string): string {
  const all = s.blocks === 1 ? 'its only block is held' : s.blocks === 2 ? 'both blocks are held' : `all ${s.blocks} blocks are held`;
  const shown = s.holders.slice(0, HOLDERS_SHOWN).map((h) => describeHolder(h, now));
  if (s.holders.length > HOLDERS_SHOWN) shown.push(`and ${s.holders.length - HOLDERS_SHOWN} more`);
  const next = s.nextReclaimableAt === undefined
    ? 'none becomes free before its host\'s lease expires and the grace period after it passes'
    : 'vxnetd claims one as soon as its grace period is over';
  return `no free /${s.blockPrefix} block in ${formatCidr(s.subnet)}${hostId !== undefined ? ` for host ${hostId}` : ''}: ${all} (${shown.join(', ')}); ${next}`;
}

/**
 * The error of a request for an address on a host waiting for a block of `network`, the same
 * words whichever front end asks (a CNI ADD, Docker's RequestAddress): PoolExhausted while no
 * block is on its way back, TryAgainLater when one becomes reclaimable. `where` names the state
 * file the reason was read from.
 */
export function shortageError(network: string, s: BlockShortage, now: number, hostId?: string, where?: string): VxnetError {
  const text = `network ${network}: ${describeShortage(s, now, hostId)}${where !== undefined ? ` (${where})` : ''}`;
  return s.nextReclaimableAt === undefined ? new PoolExhausted(text) : new TryAgainLater(text);
}

/** The JSON form (state files, vxnetctl hosts --json); times are epoch ms, null when unknown. */
export function shortageToJson(s: BlockShortage): Record<string, unknown> {
  return {
    subnet: formatCidr(s.subnet), blockPrefix: s.blockPrefix, blocks: s.blocks,
    holders: s.holders.map((h) => ({ hostId: h.hostId, block: formatCidr(h.block), state: h.state, reclaimableAt: h.reclaimableAt ?? null })),
    nextReclaimableAt: s.nextReclaimableAt ?? null,
  };
}

/** shortageToJson's inverse; undefined when the value is not one. */
export function shortageFromJson(v: unknown): BlockShortage | undefined {
  const time = (x: unknown): number | undefined | false => (x === null || x === undefined ? undefined : typeof x === 'number' ? x : false);
  if (!isObject(v) || typeof v.subnet !== 'string' || typeof v.blockPrefix !== 'number' || typeof v.blocks !== 'number' || !Array.isArray(v.holders)) return undefined;
  const subnet = parseCidr(v.subnet);
  const next = time(v.nextReclaimableAt);
  if (!subnet || next === false) return undefined;
  const holders: ShortageHolder[] = [];
  for (const h of v.holders as unknown[]) {
    if (!isObject(h) || typeof h.hostId !== 'string' || typeof h.block !== 'string') return undefined;
    const block = parseCidr(h.block);
    const at = time(h.reclaimableAt);
    if (!block || at === false || (h.state !== 'held' && h.state !== 'orphaned' && h.state !== 'reclaimable')) return undefined;
    holders.push({ hostId: h.hostId, block, state: h.state, reclaimableAt: at });
  }
  return { subnet, blockPrefix: v.blockPrefix, blocks: v.blocks, holders, nextReclaimableAt: next };
}
