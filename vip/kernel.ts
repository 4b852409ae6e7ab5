// What the VIP service hands the kernel: the desired VIP table, whole, as datapath/vip-table.ts's
// VipTable.sync takes it (that class diffs and sends element changes). The service needs only
// start, sync and stop, so it is tested over an in-memory table.
import type { ConntrackFilter, VipEntry, VipSyncStats } from '../datapath/vip-table';

export type { ConntrackFilter, VipBackend, VipEntry, VipSyncStats } from '../datapath/vip-table';

/** The part of VipTable the service uses. */
export interface VipKernel {
  start(): Promise<void>;
  sync(entries: readonly VipEntry[]): Promise<VipSyncStats>;
  stop(): Promise<void>;
  /** Deletes the conntrack entries of these flows (backends whose address is gone); optional: a kernel without it keeps them. */
  forget?(flows: readonly ConntrackFilter[]): Promise<number>;
}
