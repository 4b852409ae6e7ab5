// The one place that chooses a store implementation. CNI and CNM code call openStore and never
// import an implementation, so the embedded store's native module loads only when it is used,
// and the etcd client (etcd3, gRPC: see ./etcd-client.ts) only when a store URL asks for etcd.
import { InvalidNetworkConfig } from '../../lib/errors';
import type { IpamStore } from './types';

export const DEFAULT_DATA_DIR = '/var/lib/vxnet';

export interface StoreOptions {
  /** Directory of the embedded store's database (default /var/lib/vxnet). */
  readonly dataDir?: string;
  /** When true, a missing database is not created (vxnetctl reads, STATUS). */
  readonly mustExist?: boolean;
  /**
   * The cluster store, `etcd://host:port[,host:port...]` (vxnetd --store); undefined or empty:
   * the embedded store in dataDir.
   */
  readonly store?: string;
  /** etcd key prefix (default /vxnet/ipam/); tests isolate stores by prefix. */
  readonly etcdPrefix?: string;
}

/**
 * Parses `etcd://host:port[,host:port...]` into endpoints (`host:port`, IPv6 hosts in
 * brackets). Throws InvalidNetworkConfig naming what is wrong.
 */
export function parseStoreUrl(url: string): { kind: 'etcd'; endpoints: string[] } {
  const m = /^etcd:\/\/([^/?#]*)\/?$/.exec(url.trim());
  if (!m) throw new InvalidNetworkConfig(`store "${url}" is not etcd://host:port[,host:port...]`);
  const endpoints = m[1].split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (endpoints.length === 0) throw new InvalidNetworkConfig(`store "${url}" names no etcd endpoint`);
  return {
    kind: 'etcd',
    endpoints: endpoints.map((e) => {
      const hp = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(e);
      const port = hp?.[2] === undefined ? 2379 : Number(hp[2]);
      if (!hp || port < 1 || port > 65535) throw new InvalidNetworkConfig(`store "${url}": "${e}" is not host:port`);
      return `${hp[1]}:${port}`;
    }),
  };
}

export function openStore(options: StoreOptions = {}): IpamStore {
  if (options.store) {
    const { endpoints } = parseStoreUrl(options.store);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { openEtcdStore } = require('./etcd') as typeof import('./etcd');
    return openEtcdStore(endpoints, options.etcdPrefix === undefined ? {} : { prefix: options.etcdPrefix });
  }
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
