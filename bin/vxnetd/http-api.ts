// vxnetd's HTTP listener (--api-listen, alias --http-listen; default 127.0.0.1:8123): a thin
// composer. api/server.ts owns the listener (HTTP or HTTPS with --api-cert/--api-key, the
// bearer token, body and time limits); mounted on it in order: the operator API (api/router.ts:
// /api/v1/..., /api/openapi.json) over this host's store, catalog, the cluster registry (with
// --store) and the DNS, VIP and vxnet-lb views adapted here; the catalog's change stream
// (GET /v1/endpoints?watch=1, which vxnet-lb follows); Mesos-DNS's /v1/... (with DNS);
// /v1/vips (with VIPs); the web view at /ui/ (./ui.ts); then /metrics (Prometheus, lib/metrics.ts), `extraRoutes`; a JSON 404/500 last.
// Started after the DNS and VIP services, whose zone, listen addresses and VIPs it shows.
import * as os from 'node:os';
import type { RequestHandler, Router } from 'express';
import type { Etcd3 } from 'etcd3';
import type { EndpointCatalog } from '../../catalog/catalog';
import { watchHandler } from '../../catalog/stream';
import { hostUpstreams } from '../../dns/forwarder';
import { apiFallback, mesosDnsApi } from '../../dns/mesos-api';
import { axfr } from '../../dns/mesos-view';
import { type HostPort, formatHostPort } from '../../dns/upstreams';
import type { LbView } from '../../edge/view';
import { createEtcd } from '../../etcd/client';
import { formatIp } from '../../ipam/addr';
import type { IpamStore } from '../../ipam/store/types';
import { hostVethName } from '../../datapath/names';
import { systemVeth } from '../../ctl/veth';
import { type VxnetdMetrics, metricsHandler } from '../../lib/metrics';
import type { Logger } from '../../lib/log';
import type { Service } from '../../lib/service';
import { VERSION } from '../../lib/version';
import { OverlayRegistry } from '../../overlay/registry';
import { DEFAULT_OVERLAY_PREFIX } from '../../overlay/records';
import { type VipSource, vipApi } from '../../vip/api';
import type { DnsRecordJson, DnsRecordsJson, EdgeRoutesJson, VipJson } from '../../api/model';
import { type OperatorApi, operatorApi } from '../../api/router';
import { type ApiServer, readTokenFile, startApiServer } from '../../api/server';
import type { ApiSources } from '../../api/sources';
import type { DnsService } from './dns';
import type { ApiFlags, DnsFlags } from './flags';
import { etcdObserverOf } from './metrics';
import { webView } from './ui';

/** Where vxnet-lb's local API answers (edge/api.ts, its --metrics-listen default). */
export const DEFAULT_LB_URL = 'http://127.0.0.1:9091';

export interface HttpApiService extends Service {
  /** Where it listens (port 0 resolved), once started. */
  address(): HostPort | undefined;
}

/** One more thing served on the listener: a router, or [path, handler] (e.g. ['/metrics', handler]). */
export type ExtraRoute = Router | RequestHandler | readonly [string, Router | RequestHandler];

export interface HttpApiOptions {
  readonly listen: HostPort;
  readonly api: ApiFlags;
  readonly host: string;
  readonly store: IpamStore;
  readonly catalog: EndpointCatalog;
  readonly dataDir: string;
  /** With --store: the cluster store's endpoints and vxnetd's --block-grace. */
  readonly cluster?: { readonly endpoints: readonly string[]; readonly graceMs: number };
  readonly dns?: { service: DnsService; config: DnsFlags };
  readonly vips?: VipSource;
  /** vxnet-lb's local API (default DEFAULT_LB_URL). */
  readonly lbUrl?: string;
  /** Mounted after the API's own routes, in order (/metrics, /ui). */
  readonly extraRoutes?: readonly ExtraRoute[];
  /** Served at /metrics (Prometheus text). */
  readonly metrics?: VxnetdMetrics;
  readonly log: Logger;
}

/** The zone's A, AAAA and SRV records, as /v1/axfr has them, one row each. */
function dnsRecords(service: DnsService, catalog: EndpointCatalog): DnsRecordsJson {
  const zone = service.zone;
  const x = axfr(zone, catalog.list());
  const records: DnsRecordJson[] = [];
  for (const [type, set] of [['A', x.Records.As], ['AAAA', x.Records.AAAAs], ['SRV', x.Records.SRVs]] as const) {
    for (const [name, values] of Object.entries(set)) for (const value of values) records.push({ name, type, value, ttl: zone.ttl });
  }
  return { running: true, domain: zone.domain, serial: zone.serial, records };
}

function vipsJson(source: VipSource): VipJson[] {
  return source.vips().map((v) => ({
    vip: v.vip, name: v.name ?? null, addresses: [...v.addresses], protocol: v.protocol, port: v.port,
    backends: v.backends.map((b) => ({ endpoint: b.endpoint, name: b.name, address: b.ip, port: b.port, host: b.host, weight: b.weight, state: b.state })),
  }));
}

/** vxnet-lb's routes, from its local API; running false when it does not answer within a second. */
async function edgeRoutes(url: string): Promise<EdgeRoutesJson> {
  let view: LbView;
  try {
    const res = await fetch(`${url}/v1/lb`, { signal: AbortSignal.timeout(1000), headers: { accept: 'application/json' } });
    if (!res.ok) return { running: false, source: url, haproxyUp: null, routes: [] };
    view = await res.json() as LbView;
    if (!Array.isArray(view.frontends) || !Array.isArray(view.backends)) return { running: false, source: url, haproxyUp: null, routes: [] };
  } catch {
    return { running: false, source: url, haproxyUp: null, routes: [] };
  }
  const backends = new Map(view.backends.map((b) => [b.name, b]));
  return {
    running: true, source: url, haproxyUp: view.haproxy?.up ?? null,
    routes: view.frontends.flatMap((f: LbView['frontends'][number]) => f.rules.map((r: LbView['frontends'][number]["rules"][number]) => ({
      frontend: f.name, bind: f.bind, mode: f.mode, vhosts: [...r.vhosts], path: r.path ?? null, redirectToHttps: r.redirectToHttps === true, backend: r.backend,
      servers: (backends.get(r.backend)?.servers ?? []).map((s: LbView['backends'][number]["servers"][number]) => ({ slot: s.slot, endpoint: s.endpoint, address: s.address, weight: s.weight, state: s.state, sessions: s.sessions })),
    }))),
  };
}

/** The first non-internal address of this host (IPv4 first), for /hosts without --store. */
function firstHostAddress(): string | undefined {
  const all = Object.values(os.networkInterfaces()).flat().filter((a): a is os.NetworkInterfaceInfo => !!a && !a.internal);
  return (all.find((a) => a.family === 'IPv4') ?? all[0])?.address;
}

export function httpApiService(o: HttpApiOptions): HttpApiService {
  let server: ApiServer | undefined;
  let api: OperatorApi | undefined;
  let etcd: Etcd3 | undefined;
  let bound: HostPort | undefined;
  return {
    name: 'http api',
    address: () => bound,
    async start() {
      const token = o.api.tokenFile !== undefined ? readTokenFile(o.api.tokenFile) : o.api.token;
      if (o.cluster) etcd = createEtcd(o.cluster.endpoints);
      const sources: ApiSources = {
        host: o.host, version: VERSION, store: o.store, catalog: o.catalog, dataDir: o.dataDir,
        ...(etcd && o.cluster ? { cluster: { registry: new OverlayRegistry(etcd, DEFAULT_OVERLAY_PREFIX, o.log, o.metrics ? etcdObserverOf(o.metrics) : undefined), graceMs: o.cluster.graceMs } } : {}),
        hostAddress: firstHostAddress,
        ...(o.dns ? { dns: () => dnsRecords((o.dns as { service: DnsService }).service, o.catalog) } : {}),
        ...(o.vips ? { vips: () => vipsJson(o.vips as VipSource) } : {}),
        edge: () => edgeRoutes(o.lbUrl ?? DEFAULT_LB_URL),
        veth: systemVeth, vethName: hostVethName,
      };
      api = operatorApi(sources);
      const mounts: ExtraRoute[] = [api.router];
      // GET /v1/endpoints?watch=1: the catalog's changes as server-sent events (vxnet-lb follows them).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const watch = (require('express') as typeof import('express')).Router();
      watch.get('/v1/endpoints', watchHandler(o.catalog));
      mounts.push(watch);
      if (o.dns) {
        const { service, config } = o.dns;
        const upstreams = config.upstreams ?? hostUpstreams(config.listen);
        mounts.push(mesosDnsApi({
          catalog: o.catalog, zone: service.zone, version: VERSION,
          config: { domain: config.domain, ttl: config.ttl, listen: service.addresses().map(formatHostPort),
            upstreams: upstreams.map(formatHostPort), httpListen: formatHostPort(o.listen) },
        }));
      }
      if (o.vips) mounts.push(vipApi(o.vips));
      mounts.push(webView());
      if (o.metrics) { const m = o.metrics; mounts.push(['/metrics', (req, res) => metricsHandler(m)(req, res)]); }
      mounts.push(...(o.extraRoutes ?? []));
      try {
        server = await startApiServer({
          host: formatIp(o.listen.ip), port: o.listen.port, mounts, fallback: apiFallback(), log: o.log,
          ...(o.api.certFile && o.api.keyFile ? { tls: { certFile: o.api.certFile, keyFile: o.api.keyFile } } : {}),
          ...(token !== undefined ? { token } : {}),
        });
      } catch (err) {
        api.close();
        etcd?.close();
        throw err;
      }
      bound = { ip: o.listen.ip, port: server.port };
      o.log.info('http api listening', { address: formatHostPort(bound), tls: server.secure, token: token !== undefined });
    },
    async stop() {
      const s = server;
      server = undefined;
      api?.close();
      await s?.close();
      etcd?.close();
      etcd = undefined;
    },
  };
}
