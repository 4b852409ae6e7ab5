// What the endpoint catalog holds: one attached, named container on one network, with its
// addresses, runtime, labels, ordered ports and service. The DNS zone (dns/), the VIPs and
// the edge balancer (next issues) all read endpoints from one catalog (./catalog.ts).
//
// Contract shared by the sources (./local.ts on this host, ./cluster.ts from etcd) and the
// readers; derivation rules (which label wins, the port order) live in ./derive.ts.

export interface EndpointPort {
  readonly port: number;
  readonly protocol: 'tcp' | 'udp';
  /** `vxnet.ports` entries like `http=8080` name a port; named ports get their own SRV name. */
  readonly name?: string;
}

export interface Endpoint {
  /** Unique in the cluster and stable while the endpoint lives: `HOST/NETWORK/CONTAINERID`. */
  readonly id: string;
  /** The host it runs on (vxnetd's host name: the overlay's, else os.hostname()). */
  readonly host: string;
  /** "cni" or "docker" (the IPAM store's runtime field). */
  readonly runtime: string;
  readonly containerId: string;
  readonly network: string;
  /** DNS-safe name: the Docker container name, else K8S_POD_NAME; lowercase. */
  readonly name: string;
  /** Extra names (CNI runtimeConfig.aliases); each resolves like the name. */
  readonly aliases: readonly string[];
  /** Canonical text addresses (IPv4 and IPv6), ascending. */
  readonly addresses: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** Ordered: index n is the endpoint's port n (VIP_<n>, HAPROXY_<n>_*). */
  readonly ports: readonly EndpointPort[];
  /** `vxnet.service`, else `com.docker.compose.service`, else none. */
  readonly service?: string;
  /** Docker's health check state (inspect's State.Health.Status); none without a health check. VIPs leave out all but healthy. */
  readonly health?: EndpointHealth;
}

export type EndpointHealth = 'starting' | 'healthy' | 'unhealthy';

/** One change to the catalog; `before` and `after` undefined for an add and a removal respectively. */
export interface EndpointChange {
  readonly id: string;
  readonly before: Endpoint | undefined;
  readonly after: Endpoint | undefined;
}
