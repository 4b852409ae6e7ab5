// vxnetctl hosts: the overlay's hosts as the cluster store (etcd) holds them, through
// overlay/registry.ts (listHosts, hostsRows), through ./cluster.ts (bounded: an etcd that does
// not answer is one "cannot reach etcd" line after a few seconds).
import { DEFAULT_OVERLAY_PREFIX } from '../overlay/records';
import { HOSTS_COLUMNS, hostsRows, listHosts } from '../overlay/registry';
import { UsageError, type Values } from './args';
import { clusterStore, withRegistry } from './cluster';
import { type Ctx, writeJson } from './context';
import { renderTable } from './table';

const DEFAULT_GRACE_SECONDS = 600;

/** The store URL and grace from the options and the environment; throws UsageError. */
export function hostsOptions(values: Values, env: Readonly<Record<string, string | undefined>>): { store: string; endpoints: string[]; graceMs: number } {
  const { store, endpoints } = clusterStore(values, env, 'hosts');
  const graceText = values['block-grace'] ?? String(DEFAULT_GRACE_SECONDS);
  if (!/^\d+$/.test(graceText)) throw new UsageError(`--block-grace ${JSON.stringify(graceText)}: must be a whole number of seconds`);
  return { store, endpoints, graceMs: Number(graceText) * 1000 };
}

export async function runHosts(values: Values, ctx: Ctx, prefix = DEFAULT_OVERLAY_PREFIX): Promise<void> {
  const { store, endpoints, graceMs } = hostsOptions(values, ctx.env);
  const now = ctx.now();
  const listing = await withRegistry(endpoints, prefix, (reg) => listHosts(reg, now, graceMs));
  if (ctx.json) {
    writeJson(ctx, {
      store,
      hosts: listing.hosts.map((h) => ({ ...h, ttlSeconds: h.ttlSeconds ?? null })),
      blocks: listing.blocks.map((b) => ({ ...b, orphanedAt: b.orphanedAt ?? null })),
    });
    return;
  }
  ctx.stdout(renderTable(HOSTS_COLUMNS, hostsRows(listing, now, graceMs)));
  if (listing.hosts.length === 0 && listing.blocks.length === 0) ctx.stdout(`(no overlay host registered in ${store})\n`);
}
