// vxnetctl hosts: the overlay's hosts as the cluster store (etcd) holds them, through
// overlay/registry.ts (listHosts, hostsRows). Bounded: a store that does not answer is one
// "cannot reach etcd" line after a few seconds, not a hang.
import { IoFailure, VxnetError } from '../lib/errors';
import { createLogger } from '../lib/log';
import { parseStoreUrl } from '../ipam/store';
import { DEFAULT_OVERLAY_PREFIX } from '../overlay/records';
import { HOSTS_COLUMNS, OverlayRegistry, createOverlayEtcd, hostsRows, listHosts } from '../overlay/registry';
import { UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { renderTable } from './table';

/** How long the first answer from etcd may take. */
export const PROBE_TIMEOUT_MS = 3000;
/** How long the whole listing may take. */
export const LIST_TIMEOUT_MS = 15_000;
const DEFAULT_GRACE_SECONDS = 600;

/** The store URL and grace from the options and the environment; throws UsageError. */
export function hostsOptions(values: Values, env: Readonly<Record<string, string | undefined>>): { store: string; endpoints: string[]; graceMs: number } {
  const store = values.store ?? (env.VXNET_STORE || undefined);
  if (store === undefined) throw new UsageError('hosts needs the cluster store: --store etcd://HOST:PORT[,HOST:PORT...] or $VXNET_STORE (see vxnetctl hosts --help)');
  let endpoints: string[];
  try {
    endpoints = parseStoreUrl(store).endpoints;
  } catch (err) {
    throw new UsageError(`--store: ${(err as Error).message}`);
  }
  const graceText = values['block-grace'] ?? String(DEFAULT_GRACE_SECONDS);
  if (!/^\d+$/.test(graceText)) throw new UsageError(`--block-grace ${JSON.stringify(graceText)}: must be a whole number of seconds`);
  return { store, endpoints, graceMs: Number(graceText) * 1000 };
}

function within<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(onTimeout()), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function runHosts(values: Values, ctx: Ctx, prefix = DEFAULT_OVERLAY_PREFIX): Promise<void> {
  const { store, endpoints, graceMs } = hostsOptions(values, ctx.env);
  const etcd = createOverlayEtcd(endpoints);
  const unreachable = (why: string): IoFailure => new IoFailure(`cannot reach etcd at ${endpoints.join(',')}: ${why}`);
  try {
    // One call with a short deadline and no retry budget: an etcd that is down answers here.
    await within(etcd.get(`${prefix}hosts/`).options({ deadline: Date.now() + PROBE_TIMEOUT_MS }).string(),
      PROBE_TIMEOUT_MS + 500, () => unreachable(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`))
      .catch((err: unknown) => {
        if (err instanceof VxnetError) throw err;
        throw unreachable((err as Error).message.split('\n')[0]);
      });
    const reg = new OverlayRegistry(etcd, prefix, createLogger('vxnetctl', 'error'));
    const now = ctx.now();
    const listing = await within(listHosts(reg, now, graceMs), LIST_TIMEOUT_MS,
      () => unreachable(`listing did not finish within ${LIST_TIMEOUT_MS / 1000} s`));
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
  } finally {
    etcd.close();
  }
}
