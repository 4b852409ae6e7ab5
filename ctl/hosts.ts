// vxnetctl hosts: the overlay's hosts as the cluster store (etcd) holds them (or, with --api,
// as a vxnetd's operator API reports them from its store), through
// overlay/registry.ts (listHosts, hostsRows), through ./cluster.ts (bounded: an etcd that does
// not answer is one "cannot reach etcd" line after a few seconds). Hosts that joined a network
// but found its subnet full (registered, no member record, no block) are listed as waiting,
// with the subnet, who holds its blocks and when the first may be reclaimed.
import { DEFAULT_BLOCK_GRACE_SECONDS, DEFAULT_OVERLAY_PREFIX } from '../overlay/records';
import { BlockShortage, blockShortage, describeShortage, shortageToJson } from '../overlay/plan';
import { type BlockRow, HOSTS_COLUMNS, type HostRow, OverlayRegistry, hostsRows, listHosts } from '../overlay/registry';
import type { BlockJson, HostJson } from '../api/model';
import { type ApiAuth, apiAuth, apiCall, remoteApi } from './api-client';
import { UsageError, type Values } from './args';
import { clusterStore, withRegistry } from './cluster';
import { type Ctx, writeJson } from './context';
import { renderTable } from './table';

/** The store URL and grace from the options and the environment; throws UsageError. */
export function hostsOptions(values: Values, env: Readonly<Record<string, string | undefined>>): { store: string; endpoints: string[]; graceMs: number } {
  const { store, endpoints } = clusterStore(values, env, 'hosts');
  return { store, endpoints, graceMs: graceMsOf(values) };
}

/** --block-grace in ms (default vxnetd's). */
function graceMsOf(values: Values): number {
  const graceText = values['block-grace'] ?? String(DEFAULT_BLOCK_GRACE_SECONDS);
  if (!/^\d+$/.test(graceText)) throw new UsageError(`--block-grace ${JSON.stringify(graceText)}: must be a whole number of seconds`);
  return Number(graceText) * 1000;
}

/** A live host that joined a network and has no block of it: the subnet is full. */
export interface WaitingHost {
  readonly hostId: string;
  readonly network: string;
  readonly shortage: BlockShortage;
}

/**
 * The waiting hosts: registered with the network in their host record, without a member
 * record in it, and a subnet of it without a block they could get (graceMs: what vxnetd runs
 * with, for the reclaim times).
 */
export async function waitingHosts(reg: OverlayRegistry, now: number, graceMs: number): Promise<WaitingHost[]> {
  const hosts = (await reg.hosts()).items;
  const alive = new Set(hosts.map((h) => h.id));
  const out: WaitingHost[] = [];
  for (const network of await reg.networks()) {
    const joined = hosts.filter((h) => h.networks.includes(network.name));
    if (joined.length === 0) continue;
    const members = new Set((await reg.members(network.name)).items.map((m) => m.id));
    const leases = await reg.blocks(network.name);
    for (const h of joined.filter((j) => !members.has(j.id))) {
      for (const subnet of network.subnets) {
        const blockPrefix = network.blockPrefix[subnet.ip.family];
        if (blockPrefix === undefined) continue;
        const shortage = blockShortage({ subnet, blockPrefix, leases, hostId: h.id, alive, now, graceMs });
        if (shortage) { out.push({ hostId: h.id, network: network.name, shortage }); break; }
      }
    }
  }
  return out.sort((a, b) => a.hostId.localeCompare(b.hostId) || a.network.localeCompare(b.network));
}

/**
 * The table's rows with the waiting hosts' networks in them: the host's row without a network
 * takes it, else a row is added after the host's last one. Pure.
 */
export function withWaitingRows(rows: readonly string[][], waiting: readonly WaitingHost[]): string[][] {
  const out = rows.map((r) => [...r]);
  for (const w of waiting) {
    const mine = out.map((r, i) => (r[0] === w.hostId ? i : -1)).filter((i) => i >= 0);
    if (mine.length === 0) continue;
    const bare = mine.find((i) => out[i][2] === '-');
    const base = out[mine[mine.length - 1]];
    const row = [w.hostId, base[1], w.network, '-', '-', 'none (subnet full)', base[6]];
    if (bare !== undefined) out[bare] = row;
    else out.splice(mine[mine.length - 1] + 1, 0, row);
  }
  return out;
}

/** The hosts listing from a vxnetd's API (/api/v1/hosts, /api/v1/blocks), in listHosts' terms. Waiting hosts are not known there. */
async function remoteListing(base: string, auth: ApiAuth, now: number, graceMs: number): Promise<{ hosts: HostRow[]; blocks: BlockRow[] }> {
  const h = await apiCall<{ hosts: HostJson[] }>(base, auth, 'GET', '/api/v1/hosts');
  const b = await apiCall<{ blocks: BlockJson[] }>(base, auth, 'GET', '/api/v1/blocks');
  const registered = h.hosts.filter((x) => x.since !== null);
  return {
    hosts: registered.map((x) => ({
      id: x.id, underlay: x.address ?? '-', since: Date.parse(x.since as string), ttlSeconds: x.leaseTtl ?? undefined,
      lease: x.leaseTtl === null ? 'expired' : `alive (ttl ${x.leaseTtl}s)`, networks: x.networks,
    })),
    blocks: b.blocks.map((x) => {
      const orphanedAt = x.orphanedAt === null ? undefined : Date.parse(x.orphanedAt);
      const state: BlockRow['state'] = x.state === 'held' ? 'held' : orphanedAt !== undefined && orphanedAt + graceMs <= now ? 'reclaimable' : 'orphaned';
      return { network: x.network, block: x.cidr, hostId: x.host, since: Date.parse(x.since), state, orphanedAt };
    }),
  };
}

export async function runHosts(values: Values, ctx: Ctx, prefix = DEFAULT_OVERLAY_PREFIX): Promise<void> {
  if (values.api !== undefined && values.store !== undefined) throw new UsageError('give --store or --api, not both (see vxnetctl hosts --help)');
  // An explicit --store wins over $VXNET_API.
  const api = values.store !== undefined ? undefined : remoteApi(values, ctx.env);
  const { store, endpoints, graceMs } = api !== undefined
    ? { store: api, endpoints: [], graceMs: graceMsOf(values) }
    : hostsOptions(values, ctx.env);
  const now = ctx.now();
  const { listing, waiting } = api !== undefined
    ? { listing: await remoteListing(api, apiAuth(values, ctx.env), now, graceMs), waiting: [] as WaitingHost[] }
    : await withRegistry(endpoints, prefix, async (reg) => ({
      listing: await listHosts(reg, now, graceMs), waiting: await waitingHosts(reg, now, graceMs),
    }));
  if (ctx.json) {
    writeJson(ctx, {
      store,
      hosts: listing.hosts.map((h) => ({ ...h, ttlSeconds: h.ttlSeconds ?? null })),
      blocks: listing.blocks.map((b) => ({ ...b, orphanedAt: b.orphanedAt ?? null })),
      waiting: waiting.map((w) => ({ hostId: w.hostId, network: w.network, ...shortageToJson(w.shortage) })),
    });
    return;
  }
  ctx.stdout(renderTable(HOSTS_COLUMNS, withWaitingRows(hostsRows(listing, now, graceMs), waiting)));
  for (const w of waiting) ctx.stdout(`${w.hostId} waits for a block of ${w.network}: ${describeShortage(w.shortage, now)}\n`);
  if (listing.hosts.length === 0 && listing.blocks.length === 0) ctx.stdout(`(no overlay host registered in ${store})\n`);
}
