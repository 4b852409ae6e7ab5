// How full each pool of an IPAM store is, per network and per range set ("block": an overlay
// network's block of this host is its pool's one range set), read in one consistent view.
// For vxnetd's pool gauges (lib/metrics.ts), computed at scrape time.
import { canonicalRangeSets, setCapacity, setToJson } from './range';
import type { IpamTx, PoolRecord } from './store/types';

export interface BlockUsage {
  /** The range set's subnets, comma-separated ("10.1.0.0/24"). */
  readonly block: string;
  readonly size: number;
  readonly used: number;
}

export interface PoolUsage {
  readonly network: string;
  /** Undefined when the stored definition cannot be read (then blocks is empty). */
  readonly size: number | undefined;
  readonly used: number;
  readonly blocks: readonly BlockUsage[];
}

/** Free addresses: size - used, never below zero. Pure. */
export const freeOf = (size: number, used: number): number => Math.max(0, size - used);

/** Usage of every pool the store knows. */
export async function poolUsage(tx: IpamTx): Promise<PoolUsage[]> {
  const out: PoolUsage[] = [];
  for (const record of await tx.listPools()) out.push(await usageOf(tx, record));
  return out;
}

async function usageOf(tx: IpamTx, record: PoolRecord): Promise<PoolUsage> {
  const used = await tx.countByNetwork(record.network);
  let sets;
  try {
    sets = canonicalRangeSets(JSON.parse(record.definition) as unknown, `pool "${record.network}"`);
  } catch {
    return { network: record.network, size: undefined, used, blocks: [] };
  }
  const perSet = sets.map(() => 0);
  if (sets.length === 1) perSet[0] = used;
  else for (const a of await tx.list({ network: record.network })) if (a.rangeSet < perSet.length) perSet[a.rangeSet]! += 1;
  // Number: a gauge is a float; an IPv6 range's size above 2^53 is approximate, as Prometheus would keep it anyway.
  const blocks = sets.map((set, i) => ({ block: [...new Set(setToJson(set).map((r) => r.subnet))].join(','), size: Number(setCapacity(set)), used: perSet[i]! }));
  return { network: record.network, size: blocks.reduce((n, b) => n + b.size, 0), used, blocks };
}
