// Opening the IPAM store for vxnetctl: never create one (an operator looking is not an
// allocation), and say plainly when there is none yet.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { PluginNotAvailable } from '../lib/errors';
import { openStore } from '../ipam/store';
import type { IpamStore } from '../ipam/store/types';

/** The embedded store's file in a data directory (ipam/store/embedded.ts names it so). */
export const storeFile = (dataDir: string): string => path.join(dataDir, 'ipam.db');

export type Opened = { readonly store: IpamStore } | { readonly missing: string };

export function openExisting(dataDir: string): Opened {
  const missing = `no IPAM store at ${storeFile(dataDir)} (nothing allocated yet)`;
  if (!existsSync(storeFile(dataDir))) return { missing };
  try {
    return { store: openStore({ dataDir, mustExist: true }) };
  } catch (err) {
    // Removed between the check and the open.
    if (err instanceof PluginNotAvailable && !existsSync(storeFile(dataDir))) return { missing };
    throw err;
  }
}

/** Opens the store or fails with the "no IPAM store" message (show, release). */
export function openOrFail(dataDir: string): IpamStore {
  const opened = openExisting(dataDir);
  if ('missing' in opened) throw new PluginNotAvailable(opened.missing);
  return opened.store;
}
