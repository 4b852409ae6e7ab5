// The one place that opens the IPAM store. CNI and CNM code call openStore and never import an
// implementation, so the embedded store's native module loads only when it is used.
//
// Addresses are allocated on the host, from the embedded store (SQLite under /var/lib/vxnet;
// in an overlay, from the host's own block), so no container start waits for the cluster.
// etcd (`--store etcd://...`) holds the overlay's shared state through overlay/registry.ts and
// etcd/, never an IPAM store.
import type { IpamStore } from './types';

export const DEFAULT_DATA_DIR = '/var/lib/vxnet';

export interface StoreOptions {
  /** Directory of the embedded store's database (default /var/lib/vxnet). */
  readonly dataDir?: string;
  /** When true, a missing database is not created (vxnetctl reads, STATUS). */
  readonly mustExist?: boolean;
}

export function openStore(options: StoreOptions = {}): IpamStore {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { openEmbeddedStore } = require('./embedded') as typeof import('./embedded');
  return openEmbeddedStore(options.dataDir ?? DEFAULT_DATA_DIR, options.mustExist ?? false);
}

/** Loads the embedded store's JavaScript (not its native addon): for startup snapshots. */
export function preloadEmbeddedStore(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('./embedded') as typeof import('./embedded')).preloadDriver();
}

/**
 * A long-lived process keeps embedded databases open between callers, `idleMs` after the last
 * one (see embedded.ts); `closeIdleEmbeddedStores` closes them at shutdown.
 */
export function keepEmbeddedStoresOpen(idleMs: number): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('./embedded') as typeof import('./embedded')).keepStoresOpen(idleMs);
}

export async function closeIdleEmbeddedStores(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  await (require('./embedded') as typeof import('./embedded')).closeIdleStores();
}
