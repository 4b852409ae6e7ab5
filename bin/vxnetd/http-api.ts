// vxnetd's HTTP API (--http-listen, default 127.0.0.1:8123): Mesos-DNS's /v1/... routes and
// /v1/endpoints from dns/mesos-api.ts, over the live zone and the endpoint catalog (with DNS),
// the catalog's change stream (GET /v1/endpoints?watch=1, catalog/stream.ts, which vxnet-lb
// follows), /v1/vips from vip/api.ts (with VIPs), and /metrics (Prometheus, lib/metrics.ts). Started after the DNS and VIP services,
// whose zone, listen addresses and VIPs it shows.
import * as http from 'node:http';
import type { EndpointCatalog } from '../../catalog/catalog';
import { watchHandler } from '../../catalog/stream';
import { hostUpstreams } from '../../dns/forwarder';
import { apiFallback, mesosDnsApi } from '../../dns/mesos-api';
import { type HostPort, formatHostPort } from '../../dns/upstreams';
import { formatIp } from '../../ipam/addr';
import { IoFailure } from '../../lib/errors';
import { type VxnetdMetrics, metricsHandler } from '../../lib/metrics';
import type { Logger } from '../../lib/log';
import type { Service } from '../../lib/service';
import { VERSION } from '../../lib/version';
import { type VipSource, vipApi } from '../../vip/api';
import type { DnsService } from './dns';
import type { DnsFlags } from './flags';

export interface HttpApiService extends Service {
  /** Where it listens (port 0 resolved), once started. */
  address(): HostPort | undefined;
}

export function httpApiService(o: { listen: HostPort; dns?: { service: DnsService; config: DnsFlags }; vips?: VipSource; catalog: EndpointCatalog; metrics?: VxnetdMetrics; log: Logger }): HttpApiService {
  let server: http.Server | undefined;
  let bound: HostPort | undefined;
  return {
    name: 'http api',
    address: () => bound,
    async start() {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const express = require('express') as typeof import('express');
      const app = express();
      // GET /v1/endpoints?watch=1: the catalog's changes as server-sent events (vxnet-lb follows them).
      app.get('/v1/endpoints', watchHandler(o.catalog));
      if (o.dns) {
        const { service, config } = o.dns;
        const upstreams = config.upstreams ?? hostUpstreams(config.listen);
        app.use(mesosDnsApi({
          catalog: o.catalog, zone: service.zone, version: VERSION,
          config: { domain: config.domain, ttl: config.ttl, listen: service.addresses().map(formatHostPort),
            upstreams: upstreams.map(formatHostPort), httpListen: formatHostPort(o.listen) },
        }));
      }
      if (o.vips) app.use(vipApi(o.vips));
      if (o.metrics) app.get('/metrics', metricsHandler(o.metrics));
      app.use(...apiFallback());
      const s = http.createServer(app);
      await new Promise<void>((resolve, reject) => {
        s.once('error', (err: NodeJS.ErrnoException) => reject(new IoFailure(`cannot listen on ${formatHostPort(o.listen)} for the HTTP API: ${err.message}`)));
        s.listen(o.listen.port, formatIp(o.listen.ip), () => resolve());
      });
      server = s;
      const a = s.address();
      bound = a && typeof a === 'object' ? { ip: o.listen.ip, port: a.port } : o.listen;
      o.log.info('http api listening', { address: formatHostPort(bound) });
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
