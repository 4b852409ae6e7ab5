// The operator API's JSON shapes (api/README.md, ./openapi.ts): one per resource, plain data.
// Absent values are null, never missing; sizes that may pass 2^53 (IPv6 pools) are decimal
// strings. The sources vxnetd composes (./sources.ts) hand over the DNS, VIP and edge views
// already in these shapes, so api/ imports nothing of dns/, vip/ or edge/ (its own layer).
import type { AllocationJson, HistoryJson, AddressEvent, Holding } from '../ipam/query';

export type { AllocationJson, HistoryJson, AddressEvent, Holding };

export interface SummaryJson {
  host: string;
  version: string;
  store: 'embedded' | 'etcd';
  networks: number;
  hosts: number;
  allocations: number;
  endpoints: number;
  vips: number;
  /** ISO 8601, the server's clock. */
  time: string;
}

export interface UsageJson {
  /** Decimal string: an IPv6 pool has up to 2^64 addresses and more. */
  size: string;
  used: number;
  free: string;
}

export interface NetworkJson extends UsageJson {
  name: string;
  mode: 'bridge' | 'overlay';
  subnets: string[];
  vni: number | null;
  mtu: number | null;
  /** The IPv4 block prefix of an overlay network (each host's block), else null. */
  blockPrefix: number | null;
  /** This host's pool of the network (its IPAM store), null when it has none. */
  local: UsageJson | null;
}

export interface HostNetworkJson { network: string; mac: string; vteps: string[]; blocks: string[] }

export interface HostJson {
  id: string;
  /** The underlay address (its VTEP's), null when unknown (one host without --store). */
  address: string | null;
  /** ISO 8601: when the host registered; null without --store. */
  since: string | null;
  /** Seconds left on its lease; null when expired or without --store. */
  leaseTtl: number | null;
  leaseExpiresAt: string | null;
  state: 'alive' | 'expired';
  networks: HostNetworkJson[];
  /** Blocks it holds (any state). */
  blocks: number;
  self: boolean;
}

export interface BlockJson {
  network: string;
  cidr: string;
  host: string;
  state: 'held' | 'orphaned';
  size: string;
  /** As its host last published it; null when not published (or the host is gone). */
  used: number | null;
  free: string | null;
  usageAt: string | null;
  /** When the host leased it; when it was marked orphaned (null: not marked). */
  since: string;
  orphanedAt: string | null;
}

export interface ApiAllocationJson extends AllocationJson {
  host: string;
}

export interface HistoryAnswerJson {
  address: string | null;
  network: string | null;
  at: string | null;
  /** Newest first. */
  events: AddressEvent[];
  /** Who held the address at `at` (one per network); [] without `at`. */
  holders: Holding[];
  /** holders[0], or null. */
  holder: Holding | null;
  /** The current holders and the past allocations as `vxnetctl ipam show` has them. */
  current: AllocationJson[];
  past: HistoryJson[];
}

export interface EndpointJson {
  id: string;
  name: string;
  aliases: string[];
  service: string | null;
  network: string;
  containerId: string;
  addresses: string[];
  host: string;
  runtime: string;
  labels: Record<string, string>;
  ports: Array<{ port: number; protocol: 'tcp' | 'udp'; name: string | null }>;
  /** Docker's health check state; null without one. */
  health: 'starting' | 'healthy' | 'unhealthy' | null;
  /** health === "healthy"; null without a health check. */
  healthy: boolean | null;
}

export interface DnsRecordJson { name: string; type: string; value: string; ttl: number }

export interface DnsRecordsJson {
  /** False with --no-dns (then no records). */
  running: boolean;
  domain: string | null;
  serial: number | null;
  records: DnsRecordJson[];
}

export interface VipBackendJson {
  endpoint: string;
  name: string;
  address: string;
  port: number;
  host: string;
  weight: number;
  state: string;
}

export interface VipJson {
  vip: string;
  name: string | null;
  addresses: string[];
  protocol: 'tcp' | 'udp';
  port: number;
  backends: VipBackendJson[];
}

export interface EdgeServerJson { slot: string; endpoint: string; address: string; weight: number; state: string; sessions: number }

export interface EdgeRouteJson {
  frontend: string;
  bind: string;
  mode: 'http' | 'tcp';
  vhosts: string[];
  path: string | null;
  redirectToHttps: boolean;
  backend: string;
  servers: EdgeServerJson[];
}

export interface EdgeRoutesJson {
  /** Whether vxnet-lb answered on this host. */
  running: boolean;
  /** Where it was asked. */
  source: string | null;
  haproxyUp: boolean | null;
  routes: EdgeRouteJson[];
}

export interface VethJson {
  name: string;
  containerId: string;
  ifname: string;
  result: 'deleted' | 'absent' | 'kept' | 'would-delete' | 'error';
  error?: string;
}

export interface ReleaseAnswerJson { released: AllocationJson[]; veths: VethJson[] }

export interface GcAnswerJson {
  dryRun: boolean;
  checked: number;
  released: AllocationJson[];
  kept: { alive: number; noNetns: number; otherRuntime: number; unknown: number };
  /** Netns paths whose existence could not be told (their allocations were kept). */
  unknownNetns: string[];
  veths: VethJson[];
}

export interface LabelsAnswerJson { id: string; name: string; labels: Record<string, string> }

export type { ErrorJson } from '../lib/http-errors';
