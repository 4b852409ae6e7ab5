// vxnetd's composition: from the typed flags (./flags.ts) to running services (lib/service.ts)
// and back. In start order: the Docker plugin server (cnm/), the CNI hand-off (handoff/), with
// --store the overlay agent (overlay/runner.ts, retried in the background while etcd is away),
// the Docker watcher (cnm/watcher.ts), the endpoint catalog's sources (catalog/: operator
// labels, this host's IPAM store completed by the runtimes' metadata, and with --store the
// cluster's endpoints through etcd), unless --no-vip the VIP service (./vip.ts: the catalog's
// VIP labels into the kernel's VIP table), unless --no-dns the DNS service (./dns.ts: the zone
// fed from that catalog and the named VIPs, on the addresses of --dns-listen) and the HTTP API
// (./http-api.ts); the IPAM store they share closes after them all. The catalog's sources go
// before the VIPs and DNS in the list, so the table and the zone are full before DNS's sockets
// open; the VIPs go before DNS, so a VIP's name resolves only once the kernel balances it. A handed-off CNI call and a Docker
// container event refresh this host's endpoints at once (a 2 s rescan is the safety net).
// A signal, or a service that cannot start, stops the started ones in reverse. All state is in
// the IPAM store, vxnetd's network records and the kernel, so a restart (or kill -9) loses
// nothing and running containers keep their connectivity.
import { closeIdleEmbeddedStores, keepEmbeddedStoresOpen, openStore } from '../../ipam/store';
import type { IpamStore } from '../../ipam/store/types';
import { type Cidr, type Ip, contains, parseCidr, parseIp } from '../../ipam/addr';
import { subnetsOf } from '../../ipam/config';
import * as os from 'node:os';
import * as path from 'node:path';
import { EndpointCatalog } from '../../catalog/catalog';
import { ClusterEndpoints } from '../../catalog/cluster';
import { LocalEndpoints } from '../../catalog/local';
import { OperatorLabelsFile } from '../../catalog/operator-labels';
import { runtimeMetadata } from '../../catalog/runtime-metadata';
import { EtcdClient } from '../../etcd/client';
import { Rtnl } from '../../net/rtnl';
import { asVxnetError } from '../../lib/errors';
import { Logger, createLogger } from '../../lib/log';
import { type Service, onFirstSignal, startServices } from '../../lib/service';
import { UsageError } from '../../lib/usage';
import { VERSION } from '../../lib/version';
import { kernelDatapath, type Datapath } from '../../datapath/docker';
import { dockerApi, type DockerApi } from '../../cnm/docker';
import { Driver } from '../../cnm/driver';
import { pluginNameOf } from '../../cnm/server';
import { NetworkRecords } from '../../cnm/state';
import { DockerWatcher, isHealthEvent } from '../../cnm/watcher';
import { OverlayRunner } from '../../overlay/runner';
import { defaultHostId } from '../../overlay/service';
import { HELP, type VxnetdConfig, parseVxnetdArgs } from './flags';
import { dockerPluginServer } from './docker-plugin';
import { type DnsService, dnsService } from './dns';
import { ensureDnsLink } from './dns-link';
import { type ExtraRoute, httpApiService } from './http-api';
import { etcdObserverOf, ipamEventsOf, scrapeOverlay, scrapePools, timedCniCall, timedMethods } from './metrics';
import { VxnetdMetrics } from '../../lib/metrics';
import { observeStore } from '../../ipam/store/observed';
import { type VipKernelFactory, vipService } from './vip';
import type { VipService } from '../../vip/service';

/** How long vxnetd keeps a CNI network's IPAM database open after a handed-off call. */
const STORE_IDLE_MS = 5 * 60_000;

export interface Vxnetd {
  readonly driver: Driver;
  /** The overlay agent's runner, with --store. */
  readonly overlay: OverlayRunner | undefined;
  /** Every endpoint of the cluster: the sources put them in, DNS (and what comes next) reads them. */
  readonly catalog: EndpointCatalog;
  /** Undefined with --no-dns. */
  readonly dns: DnsService | undefined;
  /** Undefined with --no-vip. */
  readonly vips: VipService | undefined;
  /** Its Prometheus metrics (served at /metrics on the HTTP API). */
  readonly metrics: VxnetdMetrics;
  /** Stops every service in reverse order; once, whoever calls it. */
  stop(): Promise<void>;
}

/** Addresses held per block of an overlay network in this host's IPAM store. */
async function blockUsage(store: IpamStore, network: string, blocks: readonly Cidr[]): Promise<number[]> {
  const held = await store.view((tx) => tx.list({ network }));
  return blocks.map((b) => held.filter((a) => { const ip = parseIp(a.address); return ip !== undefined && contains(b, ip); }).length);
}

/** The subnets of vxnet's networks: the IPAM store's pools (CNI and Docker), Docker networks' records, overlay definitions. */
async function vxnetSubnets(store: IpamStore, records: NetworkRecords, config: VxnetdConfig): Promise<Cidr[]> {
  const pools = await store.view((tx) => tx.listPools());
  const fromPools = pools.flatMap((p) => {
    try {
      return subnetsOf(p.definition).map((s) => parseCidr(s)).filter((c): c is Cidr => c !== undefined);
    } catch {
      return []; // an unreadable definition is the IPAM's to report, not a reason to close DNS
    }
  });
  return [...fromPools, ...records.all().map((r) => r.pool), ...(config.overlay?.networks ?? []).flatMap((n) => n.subnets)];
}

/** Every address on this host's links (a socket per call: every few seconds, about a millisecond). */
async function hostAddresses(): Promise<Ip[]> {
  const rtnl = Rtnl.open();
  try {
    return (await rtnl.addresses()).map((a) => a.cidr.ip);
  } finally {
    rtnl.close();
  }
}

async function dnsLink(name: string, addresses: readonly Ip[]): Promise<void> {
  const rtnl = Rtnl.open();
  try {
    await ensureDnsLink(rtnl, name, addresses);
  } finally {
    rtnl.close();
  }
}

/** Takes whole CNI calls from the vxnet plugin, run by the plugin's own code (cni/), warm. */
function cniHandoff(socketPath: string, log: Logger, metrics: VxnetdMetrics, afterCall: () => void): Service {
  // Required, not imported: the CNI plugin's code loads only when vxnetd takes CNI calls.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { cniHandoffService } = require('../../handoff/service') as typeof import('../../handoff/service');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { vxnetPlugin } = require('../../cni/vxnet') as typeof import('../../cni/vxnet');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { dispatch } = require('../../cni/skel') as typeof import('../../cni/skel');
  const ipamEvents = ipamEventsOf(metrics);
  const handoff = cniHandoffService({ socketPath, run: async (env, stdin) => {
    const outcome = await timedCniCall(metrics, env.CNI_COMMAND, () => dispatch(env, stdin, vxnetPlugin, ipamEvents));
    afterCall();
    return outcome;
  }, log: log.child({ component: 'cni' }) });
  return {
    name: handoff.name,
    start: () => {
      // A handed-off call then finds its network's database open (the plugin opens and closes it).
      keepEmbeddedStoresOpen(STORE_IDLE_MS);
      return handoff.start();
    },
    stop: () => handoff.stop(),
  };
}

/** Starts vxnetd's services in order; resolves once all have started (the overlay agent may still be retrying). */
export async function startVxnetd(config: VxnetdConfig, o: { log?: Logger; datapath?: Datapath; docker?: DockerApi; vipKernel?: VipKernelFactory; extraRoutes?: readonly ExtraRoute[] } = {}): Promise<Vxnetd> {
  const log = o.log ?? createLogger('vxnetd', config.logLevel);
  const plugin = pluginNameOf(config.socket);
  const metrics = new VxnetdMetrics();
  // What the Docker driver allocates and releases is counted as it commits.
  const rawStore = openStore({ dataDir: config.dataDir });
  const store = observeStore(rawStore, ipamEventsOf(metrics));
  scrapePools(metrics, rawStore);
  const records = new NetworkRecords(config.dataDir);
  records.load((file, err) => log.error('unreadable network record; ignored', { file, error: err.message }));
  const docker = o.docker ?? (config.dockerSocket ? dockerApi(config.dockerSocket) : undefined);
  const driver = new Driver({ store, records, datapath: o.datapath ?? kernelDatapath, docker, log, pluginName: plugin,
    overlayDir: config.overlayDir, endpointGraceMs: config.reconcileGraceMs, pendingGraceMs: 2 * config.reconcileGraceMs });
  const ov = config.overlay;
  const overlay = ov ? new OverlayRunner({ ...ov, localDir: config.overlayDir, usage: (network, blocks) => blockUsage(store, network, blocks), etcdObserver: etcdObserverOf(metrics) },
    log.child({ component: 'overlay' })) : undefined;
  if (overlay) scrapeOverlay(metrics, overlay);
  const catalog = new EndpointCatalog();
  // The catalog's host: the overlay's host id in a cluster (unique there), else the host name.
  const host = ov ? (ov.hostId ?? defaultHostId()) : os.hostname();
  const operatorLabels = new OperatorLabelsFile({ dataDir: config.dataDir, log: log.child({ component: 'labels' }) });
  const local = new LocalEndpoints({
    store, catalog, host, operatorLabels, log: log.child({ component: 'endpoints' }),
    metadata: runtimeMetadata({ ...(config.dockerSocket ? { docker: config.dockerSocket } : {}), podman: config.podmanSocket ?? false, log: log.child({ component: 'metadata' }) }),
  });
  // Not awaited: a runtime may hold the container's lock while it waits for the call that asked.
  const refreshCatalog = (): void => { void local.refresh().catch((err: unknown) => log.warn('endpoint refresh failed', { error: asVxnetError(err).message })); };
  operatorLabels.onChange(refreshCatalog);
  let cluster: Service | undefined;
  if (ov) {
    const client = EtcdClient.connect(ov.endpoints, undefined, etcdObserverOf(metrics));
    const endpoints = new ClusterEndpoints({ client, catalog, host, log: log.child({ component: 'catalog' }) });
    cluster = { name: endpoints.name, start: () => endpoints.start(), stop: async () => { try { await endpoints.stop(); } finally { client.close(); } } };
  }
  const vip = config.vip ? vipService({
    config: config.vip, catalog, etcd: ov?.endpoints, log: log.child({ component: 'vip' }), metrics, claimsFile: path.join(config.dataDir, 'vip-claims.json'), ...(o.vipKernel ? { kernel: o.vipKernel } : {}),
  }) : undefined;
  const dns = config.dns ? dnsService({
    config: config.dns, catalog, log: log.child({ component: 'dns' }),
    networks: () => vxnetSubnets(store, records, config), hostAddresses, ensureLink: dnsLink, metrics,
    ...(vip ? { vips: vip.vips } : {}),
  }) : undefined;
  const services: Service[] = [
    // Opened above (the driver holds it); listed first so that it closes last.
    { name: 'ipam store', start: async () => undefined, stop: async () => { await store.close(); await closeIdleEmbeddedStores(); } },
    dockerPluginServer({ socket: config.socket, methods: timedMethods(driver.methods, metrics), log }),
    ...(config.cniSocket !== undefined ? [cniHandoff(config.cniSocket, log, metrics, refreshCatalog)] : []),
    ...(overlay ? [overlay] : []),
    ...(docker ? [new DockerWatcher({ docker, driver, plugin, log, intervalMs: config.reconcileIntervalMs, onContainerEvent: (e) => {
      // A health change is the one fact of a running container the catalog must ask again (VIP backends follow it).
      if (isHealthEvent(e)) local.forget(e.id);
      refreshCatalog();
    } })] : []),
    // The catalog: operator labels, this host's endpoints (filled before start() resolves), the cluster's.
    operatorLabels, local,
    ...(cluster ? [cluster] : []),
    // After the catalog's sources: they serve the catalog as they filled it; VIPs before DNS.
    ...(vip ? [vip] : []),
    ...(dns ? [dns] : []),
    // The HTTP listener always (unless --api-listen ""): the operator API, and /v1 with DNS or VIPs.
    ...(config.httpListen ? [httpApiService({
      listen: config.httpListen, api: config.api, host, store, catalog, dataDir: config.dataDir, metrics, log: log.child({ component: 'http' }),
      ...(ov ? { cluster: { endpoints: ov.endpoints, graceMs: ov.graceMs } } : {}),
      ...(dns && config.dns ? { dns: { service: dns, config: config.dns } } : {}), ...(vip ? { vips: vip.vips } : {}),
      ...(o.extraRoutes ? { extraRoutes: o.extraRoutes } : {}),
    })] : []),
  ];
  const running = await startServices(services, log.child({ component: 'services' }));
  log.info('vxnetd listening', {
    version: VERSION, socket: config.socket, plugin, store: store.description, networks: records.all().length,
    docker: config.dockerSocket ?? null, services: running.names,
  });
  let stopping: Promise<void> | undefined;
  return {
    driver, overlay, catalog, dns, vips: vip?.vips, metrics,
    stop: () => (stopping ??= running.stop().then(() => log.info('vxnetd stopped'))),
  };
}

/** The command line entry: exit 2 on usage errors, 1 when it cannot start, 0 after a signal. */
export async function main(argv: readonly string[]): Promise<void> {
  let invocation;
  try {
    invocation = parseVxnetdArgs(argv, process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`vxnetd: ${err.message}\nTry "vxnetd --help".\n`);
    process.exit(2);
  }
  if (invocation.action === 'help') { process.stdout.write(HELP); return; }
  if (invocation.action === 'version') { process.stdout.write(`vxnetd ${VERSION}\n`); return; }
  const { config } = invocation;
  const log = createLogger('vxnetd', config.logLevel);
  let vxnetd: Vxnetd;
  try {
    vxnetd = await startVxnetd(config, { log });
  } catch (err) {
    log.error('cannot start', { error: asVxnetError(err).message });
    process.exit(1);
  }
  onFirstSignal((signal) => {
    log.info('stopping', { signal });
    void vxnetd.stop().then(() => process.exit(0));
  });
  // Keep serving: a bug in one call must not take every network down with it.
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.message, stack: (err as Error)?.stack }));
}
