// Opening the IPAM store for vxnetctl: never create one (an operator looking is not an
// allocation), and say plainly when there is none yet.
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { IoFailure, PluginNotAvailable } from '../lib/errors';
import { openStore } from '../ipam/store';
import type { IpamStore } from '../ipam/store/types';

/** The embedded store's file in a data directory (ipam/store/embedded.ts names it so). */
export const storeFile = (dataDir: string): string => path.join(dataDir, 'ipam.db');

export type Opened = { readonly store: IpamStore } | { readonly missing: string };

/** Whether the store's file exists; permission problems are errors, not "nothing allocated yet". */
function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return false;
    throw new IoFailure(`cannot read the IPAM store ${file}: ${e.code === 'EACCES' ? 'permission denied (vxnetctl needs root here)' : e.message}`);
  }
}

export function openExisting(dataDir: string): Opened {
  const file = storeFile(dataDir);
  const missing = `no IPAM store at ${file} (nothing allocated yet)`;
  if (!exists(file)) return { missing };
  try {
    return { store: openStore({ dataDir, mustExist: true }) };
  } catch (err) {
    if (!(err instanceof PluginNotAvailable)) throw err;
    // Removed between the check and the open.
    if (!exists(file)) return { missing };
    // The store says "no IPAM store at FILE: <why>" of any failure to open an existing file.
    const why = err.message.startsWith(`no IPAM store at ${file}: `) ? err.message.slice(`no IPAM store at ${file}: `.length) : err.message;
    throw new IoFailure(`cannot open the IPAM store ${file}: ${why}`);
  }
}

/** Opens the store or fails with the "no IPAM store" message (show, release). */
export function openOrFail(dataDir: string): IpamStore {
  const opened = openExisting(dataDir);
  if ('missing' in opened) throw new PluginNotAvailable(opened.missing);
  return opened.store;
}
