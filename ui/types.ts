// The operator API's resources as the web view reads them (field names from api/README.md and
// /api/openapi.json: absent values are null; pool sizes are decimal strings, an IPv6 pool's
// size passes 2^53). Types only: the pure modules (format.ts) and their Node tests use them.

/** A count that may be a decimal string (pool sizes). */
export type Big = number | string;

export interface Summary { host: string; version: string; networks: number; hosts: number; allocations: number; endpoints: number; vips: number; store: string; time?: string }
export interface Usage { size: Big; used: number; free: Big }
export interface Network extends Usage { name: string; mode: string; subnets: string[]; vni?: number | null; mtu?: number | null; blockPrefix?: number | null; local?: Usage | null }
export interface HostNetwork { network: string; mac?: string; vteps?: string[]; blocks?: string[] }
export interface Host { id: string; address?: string | null; since?: string | null; leaseTtl?: number | null; leaseExpiresAt?: string | null; state: string; networks?: HostNetwork[]; blocks: number; self?: boolean }
export interface Block { network: string; cidr: string; host: string; state?: string; size: Big; used: number | null; free: Big | null; usageAt?: string | null }
export interface Allocation { network: string; address: string; family?: number; containerId: string; ifname?: string; name?: string | null; runtime?: string; host?: string | null; since?: string | null; endpoint?: string }
export interface HistoryEvent { network: string; address: string; action: string; containerId: string; ifname?: string; name?: string | null; runtime?: string; at: string; reason?: string | null }
export interface Holding { network: string; address: string; containerId: string; ifname?: string; name?: string | null; runtime?: string; since: string; until: string | null }
export interface History { events: HistoryEvent[]; holder?: Holding | null; holders?: Holding[] }
export interface DnsRecord { name: string; type: string; value: string; ttl?: number }
export interface DnsRecords { running?: boolean; domain?: string | null; records: DnsRecord[] }
export interface Backend { endpoint?: string; name?: string; address: string; port: number; host?: string; weight?: number; state: string }
export interface Vip { vip?: string; name?: string | null; addresses: string[]; protocol?: string; port: number; backends: Backend[] }
export interface Vips { running?: boolean; vips: Vip[] }
