// Docker's remote NetworkDriver and IpamDriver over vxnet's IPAM core and datapath, put
// together from its parts: cnm/networks.ts (records, names, mode, IPAM config),
// cnm/ipam-driver.ts (pools, addresses), cnm/network-driver.ts (networks),
// cnm/endpoints.ts (endpoints, join), cnm/reconcile.ts (against the Docker API).
//
// What Docker 20.10 sends (logged from a real daemon) shapes this:
// - `docker network create`: RequestPool {Pool, SubPool, Options: --ipam-opt only}, then
//   RequestAddress for the gateway, then CreateNetwork {NetworkID, -o options, IPv4Data}. No
//   call carries the network's name, and Docker stores the network only after CreateNetwork
//   returns. So a PoolID is self-describing (vxnet:CIDR[:RANGE]), and the vxnet network name
//   (the IPAM store's key, shared with CNI) is bound after creation: from -o network=NAME at
//   once, else from Docker (the network create event, or a lookup by id).
// - a container start: RequestAddress {PoolID} (no endpoint, no container), CreateEndpoint
//   {EndpointID, Interface.Address}, Join {SandboxKey}. So RequestAddress reserves under a
//   pending owner and CreateEndpoint moves the address to owner (endpoint id, "docker"); the
//   container's name comes from Docker later (network connect event, reconcile).
// - teardown: Leave, DeleteEndpoint, ReleaseAddress; network rm: DeleteNetwork,
//   ReleaseAddress(gateway), ReleasePool.
import type { Datapath } from '../datapath/docker';
import type { IpamStore } from '../ipam/store/types';
import type { Logger } from '../lib/log';
import type { DriverContext, Handlers } from './context';
import type { DockerApi } from './docker';
import { endpointHandlers } from './endpoints';
import { ipamHandlers } from './ipam-driver';
import { KeyedMutex } from '../lib/mutex';
import { networkHandlers } from './network-driver';
import { Networks, OverlayStates, overlayStatesIn } from './networks';
import { ReconcileReport, Reconciler } from './reconcile';
import type { NetworkRecords } from './state';

export type { ReconcileReport } from './reconcile';

export interface DriverOptions {
  readonly store: IpamStore;
  readonly records: NetworkRecords;
  readonly datapath: Datapath;
  /** The Docker API; undefined when vxnetd runs without one (names then come only from -o network). */
  readonly docker: DockerApi | undefined;
  readonly log: Logger;
  /** The name Docker knows this plugin by (the socket's base name): -d NAME / --ipam-driver NAME. */
  readonly pluginName: string;
  readonly now?: () => number;
  /** An address reserved by RequestAddress and not claimed by CreateEndpoint is released after this long. */
  readonly pendingGraceMs?: number;
  /** An endpoint's address is released when Docker has not listed the endpoint for this long. */
  readonly endpointGraceMs?: number;
  /**
   * Where this host's overlay agent keeps its state (overlay/local.ts): a Docker network whose
   * --subnet is an overlay network's subnet attaches containers to that overlay.
   */
  readonly overlayDir?: string;
  /** How that state is read; default: the files in overlayDir. */
  readonly overlayStates?: OverlayStates;
}

export class Driver {
  private readonly networks: Networks;
  private readonly reconciler: Reconciler;
  /** The handler of each method Docker calls, by its path without the leading "/". */
  readonly methods: Readonly<Handlers>;

  constructor(o: DriverOptions) {
    const now = o.now ?? Date.now;
    const mutex = new KeyedMutex();
    this.networks = new Networks({
      records: o.records, store: o.store, docker: o.docker, log: o.log, plugin: o.pluginName, now, mutex,
      overlays: o.overlayStates ?? overlayStatesIn(o.overlayDir),
    });
    const ctx: DriverContext = { store: o.store, networks: this.networks, dp: o.datapath, docker: o.docker, log: o.log, plugin: o.pluginName, now, mutex };
    this.reconciler = new Reconciler(ctx, { endpointGraceMs: o.endpointGraceMs ?? 60_000, pendingGraceMs: o.pendingGraceMs ?? 120_000 });
    this.methods = {
      'Plugin.Activate': async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),
      ...networkHandlers(ctx),
      ...endpointHandlers(ctx),
      ...ipamHandlers(ctx),
    };
  }

  /** Called after CreateNetwork and on the network create event: learns the Docker name. */
  learnName(nid: string, dockerName?: string): Promise<void> {
    return this.networks.learnName(nid, dockerName);
  }

  /** Brings the store and the records in line with Docker (see cnm/reconcile.ts). */
  reconcile(): Promise<ReconcileReport> {
    return this.reconciler.reconcile();
  }

  /** Fills in container names for one network's endpoints (after a network connect event). */
  refreshNames(nid: string): Promise<number> {
    return this.reconciler.refreshNames(nid);
  }
}
