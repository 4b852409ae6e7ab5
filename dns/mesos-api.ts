// The Mesos-DNS HTTP API (GET /v1/version, /v1/config, /v1/hosts/{host},
// /v1/hosts/{host}/ports, /v1/services/{service}, /v1/enumerate, /v1/axfr) plus vxnet's
// /v1/endpoints, as an express Router vxnetd mounts on its HTTP port. A thin shell: the
// answers are ./mesos-view.ts's, computed per request from the live zone and catalog.
//
// A known path asked with another method gets 405 with Allow; `apiFallback()` (mounted last,
// after every router of the port) gives unknown paths and unreadable requests a JSON 404/400,
// so the router itself lets paths it does not know through to routers mounted after it. Errors
// are vxnet's error family as the operator API answers them (lib/http-errors.ts):
// `{"error": {"code": "MethodNotAllowed" | "NotFound" | "BadRequest" | ..., "message": TEXT}}`.
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response, Router } from 'express';
import type { EndpointCatalog } from '../catalog/catalog';
import { InvalidNetworkConfig } from '../lib/errors';
import { HttpError, sendError } from '../lib/http-errors';
import { parseHostPort } from './upstreams';
import { axfr, endpointViews, enumerate, hostRecords, portRecords, serviceRecords, type ZoneView } from './mesos-view';
import { formatIp } from '../ipam/addr';

/** What vxnetd runs the DNS service with, as /v1/config shows it. */
export interface MesosDnsConfig {
  /** The zone's domain (`--dns-domain`); must be the zone's. */
  readonly domain: string;
  /** Record TTL in seconds (`--dns-ttl`); must be the zone's. */
  readonly ttl: number;
  /** The DNS listening addresses, ADDR:PORT (`--dns-listen`). */
  readonly listen: readonly string[];
  /** The forwarder's upstreams, ADDR:PORT (`--dns-upstream`, else resolv.conf's). */
  readonly upstreams: readonly string[];
  /** Where this API listens, ADDR:PORT (`--http-listen`). */
  readonly httpListen: string;
  /** Seconds the forwarder waits per attempt; default 2 (dns/forwarder.ts). */
  readonly timeoutSeconds?: number;
  /** Serve /v1/enumerate and /v1/axfr (Mesos-DNS's EnumerationOn); default true. */
  readonly enumeration?: boolean;
}

export interface MesosDnsApiOptions {
  readonly catalog: Pick<EndpointCatalog, 'list'>;
  readonly zone: ZoneView;
  readonly config: MesosDnsConfig;
  /** vxnet's version (lib/version.ts VERSION). */
  readonly version: string;
}

/** Mesos-DNS's default HTTP port. */
export const MESOS_DNS_HTTP_PORT = 8123;
export const DEFAULT_API_URL = `http://127.0.0.1:${MESOS_DNS_HTTP_PORT}`;

const ROUTES = ['/v1/version', '/v1/config', '/v1/hosts/:host', '/v1/hosts/:host/ports', '/v1/services/:service', '/v1/enumerate', '/v1/axfr', '/v1/endpoints'] as const;

/** JSON with a trailing newline, as curl users expect; no ETag (answers change every second). */
function send(res: Response, status: number, body: unknown): void {
  res.status(status).type('application/json').send(JSON.stringify(body) + '\n');
}

/** 405 with Allow: the routes here answer GET (and HEAD, which express answers from GET). */
const methodNotAllowed = (req: Request): HttpError =>
  new HttpError(405, 'MethodNotAllowed', `method ${req.method} not allowed on ${req.path} (GET only)`, { allow: 'GET, HEAD' });

const param = (req: Request, name: string): string => {
  const value = (req.params as Record<string, string | string[] | undefined>)[name];
  return typeof value === 'string' ? value : '';
};

/** `ADDR:PORT` read as Mesos-DNS's separate Listener and Port. */
function listener(text: string | undefined, what: string): { address: string; port: number } {
  if (text === undefined) return { address: '', port: 0 };
  const hp = parseHostPort(text);
  if (!hp) throw new InvalidNetworkConfig(`${what} "${text}": expected ADDRESS[:PORT] or [IPV6]:PORT`);
  return { address: formatIp(hp.ip), port: hp.port };
}

/** /v1/config: Mesos-DNS's Config field names; Masters/Zk/IPSources have no vxnet meaning. */
export function configView(config: MesosDnsConfig, zone: ZoneView): Record<string, unknown> {
  const dns = listener(config.listen[0], 'DNS listen address');
  const http = listener(config.httpListen, 'HTTP listen address');
  const soa = zone.lookup(zone.domain, 'SOA')?.answers.find((r) => r.type === 'SOA');
  const data = soa?.type === 'SOA' ? soa.data : undefined;
  return {
    Masters: null,
    Zk: '',
    // Pushed, not polled: every change reaches the zone as it happens.
    RefreshSeconds: 0,
    TTL: config.ttl,
    Port: dns.port,
    Domain: config.domain,
    Resolvers: [...config.upstreams],
    Timeout: config.timeoutSeconds ?? 2,
    SOAMname: `${data?.mname ?? zone.nameserver}.`,
    SOARname: `${data?.rname ?? `hostmaster.${zone.domain}`}.`,
    SOASerial: data?.serial ?? zone.serial,
    SOARefresh: data?.refresh ?? 0,
    SOARetry: data?.retry ?? 0,
    SOAExpire: data?.expire ?? 0,
    SOAMinttl: data?.minimum ?? 0,
    Listener: dns.address,
    HTTPListener: http.address,
    HttpPort: http.port,
    DnsOn: true,
    HttpOn: true,
    RecurseOn: config.upstreams.length > 0,
    ExternalOn: config.upstreams.length > 0,
    EnumerationOn: config.enumeration ?? true,
    // vxnet: every DNS address (Mesos-DNS had one Listener and one Port).
    Listeners: [...config.listen],
  };
}

/** The API's routes; throws InvalidNetworkConfig when config does not match the zone. */
export function mesosDnsApi(o: MesosDnsApiOptions): Router {
  const { catalog, zone, config, version } = o;
  if (config.domain.toLowerCase().replace(/\.$/, '') !== zone.domain) {
    throw new InvalidNetworkConfig(`mesos-dns api: config domain "${config.domain}" is not the zone's "${zone.domain}"`);
  }
  if (config.ttl !== zone.ttl) throw new InvalidNetworkConfig(`mesos-dns api: config TTL ${config.ttl} is not the zone's ${zone.ttl}`);
  listener(config.httpListen, 'HTTP listen address');
  for (const l of config.listen) listener(l, 'DNS listen address');

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const router = express.Router({ caseSensitive: true, strict: false });
  const enumeration = config.enumeration ?? true;

  router.get('/v1/version', (_req, res) => send(res, 200, { Service: 'vxnet', URL: '', Version: version }));
  router.get('/v1/config', (_req, res) => send(res, 200, configView(config, zone)));
  router.get('/v1/hosts/:host', (req, res) => send(res, 200, hostRecords(zone, param(req, 'host'))));
  router.get('/v1/hosts/:host/ports', (req, res) => send(res, 200, portRecords(zone, catalog.list(), param(req, 'host'))));
  router.get('/v1/services/:service', (req, res) => send(res, 200, serviceRecords(zone, param(req, 'service'))));
  if (enumeration) {
    router.get('/v1/enumerate', (_req, res) => send(res, 200, enumerate(zone, catalog.list())));
    router.get('/v1/axfr', (_req, res) => send(res, 200, axfr(zone, catalog.list())));
  }
  router.get('/v1/endpoints', (_req, res) => send(res, 200, endpointViews(zone, catalog.list())));

  // express answers HEAD from GET; every other method on a known path is 405.
  for (const route of ROUTES) {
    if (!enumeration && (route === '/v1/enumerate' || route === '/v1/axfr')) continue;
    router.all(route, (req, res) => sendError(res, methodNotAllowed(req)));
  }
  return router;
}

/**
 * Mounted with `app.use(...apiFallback())` after every router of the HTTP port: a JSON 404 for
 * any other path, and for a request express could not read (a malformed %-escape in the path)
 * a JSON 400; 500 for anything a handler threw. Plain handlers, not a Router: express hands
 * errors only to four-argument handlers, which a mounted Router is not.
 */
export function apiFallback(): [RequestHandler, ErrorRequestHandler] {
  const notFound: RequestHandler = (req, res) => sendError(res, new HttpError(404, 'NotFound', `no such resource: ${req.method} ${req.path}`));
  const failed: ErrorRequestHandler = (err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) { next(err); return; }
    // express's own 4xx (a malformed %-escape in the path: 400) named with the path; a
    // VxnetError keeps its class and status; anything else is a 500 InternalError.
    const status = (err as { status?: unknown } | null)?.status;
    if (!(err instanceof HttpError) && typeof status === 'number' && status >= 400 && status < 500) {
      sendError(res, new HttpError(status, 'BadRequest', `bad request ${req.path}: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    sendError(res, err);
  };
  return [notFound, failed];
}
