// The one store interface the IPAM core, vxnetctl and the Docker driver use. Its implementation
// is the embedded store (SQLite on the host, ./embedded.ts), opened in one factory (./index.ts);
// nothing outside ipam/store imports it, so the core stays testable against any IpamStore.
import type { Ip } from '../addr';

/** Who holds an address: the allocation key is (network, containerId, ifname). */
export interface Owner {
  readonly network: string;
  readonly containerId: string;
  readonly ifname: string;
  /** Which runtime attached it: "cni" for the CNI plugins, "docker" for the Docker driver. */
  readonly runtime: string;
  /** The container's name (K8S_POD_NAME from CNI_ARGS, the Docker container name). */
  readonly name?: string;
  /** DNS aliases (runtimeConfig.aliases) for the DNS module. */
  readonly aliases?: readonly string[];
  /** Where the container's namespace was when it was attached. */
  readonly netns?: string;
  /** CNI `args.cni.labels` as key -> value, for the endpoint catalog (catalog/derive.ts). */
  readonly labels?: Readonly<Record<string, string>>;
  /** The container ports of CNI `runtimeConfig.portMappings`, for the endpoint catalog. */
  readonly ports?: readonly OwnerPort[];
}

export interface OwnerPort {
  readonly port: number;
  readonly protocol: 'tcp' | 'udp';
}

export interface Allocation extends Owner {
  readonly address: string;
  readonly family: 4 | 6;
  readonly rangeSet: number;
  /** Epoch milliseconds when the address was reserved. */
  readonly since: number;
}

export interface HistoryEntry extends Allocation {
  /** Epoch milliseconds when the address was released. */
  readonly until: number;
  /** Why: "del", "gc", "vxnetctl release", "add failed", ... */
  readonly reason: string;
}

/** A network's pool definition as the first attachment (or an operator) registered it. */
export interface PoolRecord {
  readonly network: string;
  /** Canonical range sets as JSON (ranges.setToJson per set). */
  readonly definition: string;
  readonly updated: number;
}

export interface AllocationFilter {
  readonly network?: string;
  readonly containerId?: string;
  readonly runtime?: string;
}

/** Operations inside one transaction (withLock) or one consistent read (view). */
export interface IpamTx {
  /** Reserves ip for owner in range set rangeSet; false when someone holds it already. Records ip as the set's last reserved. */
  reserve(owner: Owner, ip: Ip, rangeSet: number): Promise<boolean>;
  /** The network's allocations held by (containerId, ifname); every ifname when ifname is undefined. */
  listByOwner(network: string, containerId: string, ifname?: string): Promise<Allocation[]>;
  /** Releases what listByOwner would list, moving it to history; returns what was released. */
  releaseByOwner(network: string, containerId: string, ifname: string | undefined, reason: string): Promise<Allocation[]>;
  /**
   * Changes who holds ip (keeps the address, its range set and since); false when nobody holds it.
   * The Docker driver reserves an address before Docker says which endpoint it is for, and learns
   * the container's name later still.
   */
  updateOwner(network: string, ip: Ip, owner: Owner): Promise<boolean>;
  /** Releases one address whoever holds it. */
  releaseAddress(network: string, ip: Ip, reason: string): Promise<Allocation | undefined>;
  ownerOf(network: string, ip: Ip): Promise<Allocation | undefined>;
  lastReserved(network: string, rangeSet: number): Promise<Ip | undefined>;
  /** Held addresses in [from, to] (same family), ascending, at most limit of them. */
  takenBetween(network: string, from: Ip, to: Ip, limit: number): Promise<Ip[]>;
  list(filter?: AllocationFilter): Promise<Allocation[]>;
  countByNetwork(network: string): Promise<number>;
  history(network?: string, ip?: Ip, limit?: number): Promise<HistoryEntry[]>;
  getPool(network: string): Promise<PoolRecord | undefined>;
  putPool(network: string, definition: string): Promise<void>;
  listPools(): Promise<PoolRecord[]>;
  deletePool(network: string): Promise<void>;
}

export interface IpamStore {
  /** Which store and where it lives ("embedded:/var/lib/vxnet/ipam.db"); for logs and vxnetctl. */
  readonly description: string;
  /** Runs fn with exclusive write access: no other process or caller allocates meanwhile. */
  withLock<T>(fn: (tx: IpamTx) => Promise<T>): Promise<T>;
  /** Runs fn over a consistent snapshot; fn must not write. */
  view<T>(fn: (tx: IpamTx) => Promise<T>): Promise<T>;
  /** Throws PluginNotAvailable when the store cannot be used (STATUS). */
  check(): Promise<void>;
  close(): Promise<void>;
}
