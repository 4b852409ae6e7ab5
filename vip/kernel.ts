// What the VIP service hands the kernel: the desired VIP table, whole, as datapath/vip-table.ts's
// VipTable.sync takes it (that class diffs and sends element changes). Declared here as the
// interface the service needs, so the service is tested with an in-memory table.
import type { Ip } from '../ipam/addr';
import type { VipProtocol } from './labels';

export interface VipBackend { readonly ip: Ip; readonly port: number; /** >= 1 */ readonly weight: number }
export interface VipEntry {
  readonly ip: Ip;
  readonly protocol: VipProtocol;
  readonly port: number;
  /** Same family as ip; empty: new connections are rejected. */
  readonly backends: readonly VipBackend[];
}
export interface VipSyncStats { readonly elementsAdded: number; readonly elementsRemoved: number; readonly ms: number; readonly full: boolean }

/** The part of VipTable the service uses. */
export interface VipKernel {
  start(): Promise<void>;
  sync(entries: readonly VipEntry[]): Promise<VipSyncStats>;
  stop(): Promise<void>;
}
