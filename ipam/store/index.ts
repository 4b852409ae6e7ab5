// The one place that chooses a store implementation. CNI and CNM code call openStore and never
// import an implementation, so the embedded store's native module loads only when it is used.
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
