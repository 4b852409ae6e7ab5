// The operator API's resources as the web view reads them (field names from api/README.md and
// /api/openapi.json). Types only: the pure modules (format.ts) and their Node tests use them.

export interface Summary { host: string; version: string; networks: number; hosts: number; allocations: number; endpoints: number; vips: number; store: string }
export interface Network { name: string; mode: string; subnets: string[]; vni?: number; mtu?: number; blockPrefix?: number; size: number; used: number; free: number }
export interface Host { id: string; address?: string; leaseTtl?: number; leaseExpiresAt?: string; state: string; blocks: number; self?: boolean }
export interface Block { network: string; cidr: string; host: string; size: number; used: number; free: number }
export interface Allocation { network: string; address: string; family?: number | string; containerId: string; ifname?: string; name?: string; runtime?: string; host?: string; since?: string }
export interface HistoryEvent { network: string; address: string; action: string; containerId: string; ifname?: string; name?: string; runtime?: string; host?: string; at: string }
export interface History { events: HistoryEvent[]; holder?: HistoryEvent | Allocation | null }
export interface DnsRecord { name: string; type: string; value: string; ttl?: number }
export interface Backend { address: string; port: number; host?: string; weight?: number; state: string; name?: string }
export interface Vip { name?: string; address: string; protocol?: string; port: number; backends: Backend[] }
