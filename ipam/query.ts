// Read-only questions over the IPAM store that vxnetctl (ctl/ipam.ts) and vxnetd's operator
// API (api/) both answer: allocations and their history as JSON, pools with their size, use
// and free count, "who held ADDRESS at T". Pure functions of what one view (a consistent
// snapshot) returns; the callers open the store and print or serve the answer.
import { type Ip, contains, ipKey, parseIp } from './addr';
import { type RangeSet, canonicalRangeSets, setCapacity, setToJson } from './range';
import type { Allocation, HistoryEntry, IpamTx, PoolRecord } from './store/types';

// ---- JSON shapes (stable field names; absent values are null, never missing) ----

export interface AllocationJson {
  network: string;
  address: string;
  family: 4 | 6;
  containerId: string;
  ifname: string;
  name: string | null;
  runtime: string;
  netns: string | null;
  aliases: string[];
  rangeSet: number;
  /** ISO 8601. */
  since: string;
}

export interface HistoryJson extends AllocationJson {
  until: string;
  reason: string;
}

export const iso = (ms: number): string => new Date(ms).toISOString();

export const allocationJson = (a: Allocation): AllocationJson => ({
  network: a.network, address: a.address, family: a.family, containerId: a.containerId, ifname: a.ifname,
  name: a.name ?? null, runtime: a.runtime, netns: a.netns ?? null, aliases: [...(a.aliases ?? [])], rangeSet: a.rangeSet,
  since: iso(a.since),
});

export const historyJson = (h: HistoryEntry): HistoryJson => ({ ...allocationJson(h), until: iso(h.until), reason: h.reason });

// ---- ordering and keys ----

/** By network, then family, then address. */
export const byAddress = (a: Allocation, b: Allocation): number =>
  a.network < b.network ? -1 : a.network > b.network ? 1
    : a.family - b.family || (ipKey(parseIp(a.address) as Ip) < ipKey(parseIp(b.address) as Ip) ? -1 : 1);

/** One attachment: (network, containerId, ifname). */
export const attachmentKey = (a: { network?: string; containerId: string; ifname: string }): string =>
  `${a.network ?? ''}\u0000${a.containerId}\u0000${a.ifname}`;

// ---- pools ----

/** The pool's range sets, or the reason its stored definition cannot be read. */
export function poolSets(record: PoolRecord): RangeSet[] | Error {
  try {
    return canonicalRangeSets(JSON.parse(record.definition) as unknown, `pool "${record.network}"`);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

export const subnetsOfSet = (set: RangeSet): string[] => [...new Set(setToJson(set).map((r) => r.subnet))];

export interface SetStat { subnets: string[]; ranges: ReturnType<typeof setToJson>; size: bigint; used: number }
export interface PoolStat { network: string; updated: number; used: number; sets?: SetStat[]; error?: string }

/** A pool's range sets with their capacity and how many of their addresses are held. */
export async function poolStat(tx: IpamTx, record: PoolRecord): Promise<PoolStat> {
  const sets = poolSets(record);
  const used = await tx.countByNetwork(record.network);
  if (sets instanceof Error) return { network: record.network, updated: record.updated, used, error: sets.message };
  const perSet = sets.map(() => 0);
  if (sets.length === 1) perSet[0] = used;
  else for (const a of await tx.list({ network: record.network })) if (a.rangeSet < perSet.length) perSet[a.rangeSet] += 1;
  return {
    network: record.network, updated: record.updated, used,
    sets: sets.map((set, i) => ({ subnets: subnetsOfSet(set), ranges: setToJson(set), size: setCapacity(set), used: perSet[i] })),
  };
}

/** Every pool (or one network's) with its stats, in one view. */
export async function poolStats(tx: IpamTx, network?: string): Promise<PoolStat[]> {
  const records = network !== undefined
    ? [await tx.getPool(network)].filter((p): p is PoolRecord => p !== undefined)
    : await tx.listPools();
  const out: PoolStat[] = [];
  for (const r of records) out.push(await poolStat(tx, r));
  return out;
}

export const freeOf = (size: bigint, used: number): bigint => (size > BigInt(used) ? size - BigInt(used) : 0n);

/** A pool as `vxnetctl ipam pools --json` and GET /api/v1/pools show it (sizes as decimal strings). */
export interface PoolJson {
  network: string;
  subnets: string[];
  size: string | null;
  used: number;
  free: string | null;
  updated: string;
  rangeSets: Array<{ subnets: string[]; ranges: Array<{ subnet: string; rangeStart: string; rangeEnd: string; gateway: string }>; size: string; used: number; free: string }>;
  /** Only when the pool's stored definition cannot be read. */
  error?: string;
}

export function poolJson(p: PoolStat): PoolJson {
  const size = p.sets?.reduce((n, s) => n + s.size, 0n);
  return {
    network: p.network,
    subnets: p.sets ? p.sets.flatMap((s) => s.subnets) : [],
    size: size === undefined ? null : size.toString(),
    used: p.used,
    free: size === undefined ? null : freeOf(size, p.used).toString(),
    updated: iso(p.updated),
    rangeSets: (p.sets ?? []).map((s) => ({
      subnets: s.subnets, ranges: s.ranges, size: s.size.toString(), used: s.used, free: freeOf(s.size, s.used).toString(),
    })),
    ...(p.error !== undefined ? { error: p.error } : {}),
  };
}

/** The subnets of a pool's sets that contain ip (none when its definition is unreadable). */
export function poolSubnetsHolding(record: PoolRecord | undefined, ip: Ip): string[] {
  const sets = record ? poolSets(record) : [];
  return sets instanceof Error ? [] : [...new Set(sets.flat().filter((r) => contains(r.subnet, ip)).flatMap((r) => subnetsOfSet([r])))];
}

// ---- allocations ----

export interface AllocationQuery {
  readonly network?: string;
  /** A container id or a prefix of one. */
  readonly container?: string;
  /** The container's name, exactly. */
  readonly name?: string;
  /** An address, exactly (canonical text). */
  readonly address?: string;
  /** A substring of the address, the name or the container id (case-insensitive). */
  readonly q?: string;
}

/** Whether an allocation answers the query. Pure. */
export function matchesAllocation(a: Pick<Allocation, 'network' | 'containerId' | 'name' | 'address'>, query: AllocationQuery): boolean {
  if (query.network !== undefined && a.network !== query.network) return false;
  if (query.container !== undefined && !a.containerId.startsWith(query.container)) return false;
  if (query.name !== undefined && a.name !== query.name) return false;
  if (query.address !== undefined) {
    const ip = parseIp(query.address);
    const want = ip ? ipKey(ip) : query.address;
    const have = parseIp(a.address);
    if (!have || ipKey(have) !== want) return false;
  }
  if (query.q !== undefined && query.q !== '') {
    const q = query.q.toLowerCase();
    if (![a.address, a.name ?? '', a.containerId].some((s) => s.toLowerCase().includes(q))) return false;
  }
  return true;
}

/** The allocations the query selects, sorted by network and address. */
export async function findAllocations(tx: IpamTx, query: AllocationQuery = {}): Promise<Allocation[]> {
  const all = await tx.list(query.network !== undefined ? { network: query.network } : {});
  return all.filter((a) => matchesAllocation(a, query)).sort(byAddress);
}

// ---- history: "who had ADDRESS at T?" ----

export interface AddressEvent {
  network: string;
  address: string;
  action: 'allocate' | 'release';
  containerId: string;
  ifname: string;
  name: string | null;
  runtime: string;
  /** ISO 8601. */
  at: string;
  /** A release's reason ("del", "gc", "vxnetctl release", ...); null for an allocation. */
  reason: string | null;
}

export interface Holding {
  network: string;
  address: string;
  containerId: string;
  ifname: string;
  name: string | null;
  runtime: string;
  since: string;
  /** null: holds it still. */
  until: string | null;
}

/**
 * An address's (or a network's) allocations and releases, newest first, from the current
 * holders and the history; with `at`, who held the address then (per network). Pure.
 */
export function addressTimeline(current: readonly Allocation[], past: readonly HistoryEntry[], at?: number): { events: AddressEvent[]; holders: Holding[] } {
  const base = (a: Allocation) => ({ network: a.network, address: a.address, containerId: a.containerId, ifname: a.ifname, name: a.name ?? null, runtime: a.runtime });
  const events: Array<AddressEvent & { ms: number }> = [];
  for (const a of current) events.push({ ...base(a), action: 'allocate', at: iso(a.since), ms: a.since, reason: null });
  for (const h of past) {
    events.push({ ...base(h), action: 'allocate', at: iso(h.since), ms: h.since, reason: null });
    events.push({ ...base(h), action: 'release', at: iso(h.until), ms: h.until, reason: h.reason });
  }
  events.sort((x, y) => y.ms - x.ms || (x.action === 'release' ? -1 : 1));
  const holders: Holding[] = [];
  if (at !== undefined) {
    for (const a of current) if (a.since <= at) holders.push({ ...base(a), since: iso(a.since), until: null });
    for (const h of past) if (h.since <= at && at < h.until) holders.push({ ...base(h), since: iso(h.since), until: iso(h.until) });
  }
  return { events: events.map(({ ms: _ms, ...e }) => e), holders };
}
