// What the VIP service hands the kernel: the whole desired VIP table (VipTable.sync, at start)
// and then the entries that changed (VipTable.apply); datapath/vip-table.ts turns either into
// element changes. The service needs only start, sync, apply and stop, so it is tested over an
// in-memory table.
import type { ConntrackFilter, VipChanges, VipEntry, VipSyncStats } from '../datapath/vip-table';

export type { ConntrackFilter, VipBackend, VipChanges, VipEntry, VipRef, VipSyncStats } from '../datapath/vip-table';

/** The part of VipTable the service uses. */
export interface VipKernel {
  start(): Promise<void>;
  sync(entries: readonly VipEntry[]): Promise<VipSyncStats>;
  /** Some entries put or removed, the rest as they are (VipTable.apply); without it the service sends the whole table. */
  apply?(changes: VipChanges): Promise<VipSyncStats>;
  stop(): Promise<void>;
  /** Deletes the conntrack entries of these flows (backends whose address is gone); optional: a kernel without it keeps them. */
  forget?(flows: readonly ConntrackFilter[]): Promise<number>;
}
