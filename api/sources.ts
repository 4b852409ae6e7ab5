// What the operator API reads and changes, handed to it by vxnetd (bin/vxnetd/http-api.ts):
// this host's IPAM store and endpoint catalog, the cluster store's overlay registry (with
// --store), and the views of the services on layer 3 beside api/ (DNS zone, VIPs, vxnet-lb)
// as functions already returning the API's shapes (./model.ts), so api/ imports none of them.
import type { EndpointCatalog } from '../catalog/catalog';
import type { VethNamer, VethOps } from '../ipam/maintenance';
import type { IpamStore } from '../ipam/store/types';
import type { OverlayRegistry } from '../overlay/registry';
import type { DnsRecordsJson, EdgeRoutesJson, VipJson } from './model';

export interface ClusterSource {
  readonly registry: OverlayRegistry;
  /** vxnetd's --block-grace, for the blocks' reclaim times. */
  readonly graceMs: number;
}

export interface ApiSources {
  /** This host's id (the overlay's host id with --store, else the host name). */
  readonly host: string;
  readonly version: string;
  /** This host's IPAM store (shared with the CNI plugin and the Docker driver). */
  readonly store: IpamStore;
  readonly catalog: EndpointCatalog;
  /** vxnet's data directory (the operator labels file is there). */
  readonly dataDir: string;
  /** With --store. */
  readonly cluster?: ClusterSource;
  /** This host's address for /hosts without --store; undefined: null. */
  readonly hostAddress?: () => string | undefined;
  /** The DNS zone's records; undefined with --no-dns. */
  readonly dns?: () => DnsRecordsJson;
  /** The VIPs as the kernel was given them; undefined with --no-vip. */
  readonly vips?: () => readonly VipJson[];
  /** vxnet-lb's routes on this host (asked each time; running: false when it does not answer). */
  readonly edge?: () => Promise<EdgeRoutesJson>;
  /** Host veth deletion for release and gc. */
  readonly veth: VethOps;
  readonly vethName: VethNamer;
  /** Epoch ms; default Date.now. */
  readonly now?: () => number;
}
