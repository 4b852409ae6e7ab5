// The operator API's routes (express): one table, ROUTES, that the router is built from and the
// OpenAPI document (./openapi.ts) must match (test/unit/api-openapi.test.ts checks both ways).
// Each handler parses the query or body, calls ./resources.ts and sends JSON; anything thrown
// becomes vxnet's error JSON (./errors.ts). Mutations parse at most BODY_LIMIT bytes of JSON;
// who may call them is ./auth.ts's to decide, before any route.
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { HttpError, sendError } from '../lib/http-errors';
import { ApiEvents } from './events';
import { OPENAPI } from './openapi';
import * as r from './resources';
import type { ApiSources } from './sources';

/** The largest request body read (JSON, mutations): 64 KiB. */
export const BODY_LIMIT = 64 * 1024;

export type Method = 'get' | 'post' | 'put';

export interface RouteSpec {
  readonly method: Method;
  /** OpenAPI's path template (`{id}`); express gets `:id`. */
  readonly path: string;
  /** A write: needs the token when one is configured, else a loopback client. */
  readonly mutation: boolean;
}

type Handler = (src: ApiSources, req: Request, res: Response) => Promise<unknown> | unknown;

const str = (req: Request, key: string): string | undefined => {
  const v = (req.query as Record<string, unknown>)[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
};

function limit(req: Request): number | undefined {
  const text = str(req, 'limit');
  if (text === undefined) return undefined;
  if (!/^\d{1,6}$/.test(text)) throw new HttpError(400, 'BadRequest', `limit ${JSON.stringify(text)}: expected a whole number`);
  return Number(text);
}

const param = (req: Request, key: string): string => String((req.params as Record<string, unknown>)[key] ?? '');

/** [spec, handler]: the handler's value is sent as JSON (200); undefined: it answered itself. */
const TABLE: ReadonlyArray<readonly [RouteSpec, Handler]> = [
  [{ method: 'get', path: '/api/v1/summary', mutation: false }, (src) => r.summary(src)],
  [{ method: 'get', path: '/api/v1/networks', mutation: false }, (src) => r.networks(src)],
  [{ method: 'get', path: '/api/v1/pools', mutation: false }, (src, req) => r.pools(src, str(req, 'network'))],
  [{ method: 'get', path: '/api/v1/hosts', mutation: false }, (src) => r.hosts(src)],
  [{ method: 'get', path: '/api/v1/blocks', mutation: false }, (src, req) => r.blocks(src, str(req, 'network'))],
  [{ method: 'get', path: '/api/v1/allocations', mutation: false }, (src, req) => r.allocations(src, {
    ...opt('network', str(req, 'network')), ...opt('container', str(req, 'container')), ...opt('name', str(req, 'name')),
    ...opt('address', str(req, 'address')), ...opt('q', str(req, 'q')),
  })],
  [{ method: 'get', path: '/api/v1/history', mutation: false }, (src, req) => r.history(src, {
    ...opt('address', str(req, 'address')), ...opt('network', str(req, 'network')), ...opt('at', str(req, 'at')), ...opt('limit', limit(req)),
  })],
  [{ method: 'get', path: '/api/v1/endpoints', mutation: false }, (src, req) => r.endpoints(src, {
    ...opt('host', str(req, 'host')), ...opt('network', str(req, 'network')), ...opt('name', str(req, 'name')), ...opt('q', str(req, 'q')),
  })],
  [{ method: 'get', path: '/api/v1/endpoints/{id}/labels', mutation: false }, (src, req) => r.getLabels(src, param(req, 'id'))],
  [{ method: 'get', path: '/api/v1/dns/records', mutation: false }, (src) => r.dnsRecords(src)],
  [{ method: 'get', path: '/api/v1/vips', mutation: false }, (src) => r.vips(src)],
  [{ method: 'get', path: '/api/v1/edge/routes', mutation: false }, (src) => r.edgeRoutes(src)],
  [{ method: 'get', path: '/api/openapi.json', mutation: false }, () => OPENAPI],
  [{ method: 'post', path: '/api/v1/allocations/release', mutation: true }, (src, req) => r.release(src, req.body)],
  [{ method: 'post', path: '/api/v1/gc', mutation: true }, (src, req) => r.gc(src, req.body)],
  [{ method: 'put', path: '/api/v1/endpoints/{id}/labels', mutation: true }, (src, req) => r.putLabels(src, param(req, 'id'), req.body)],
];

/** The SSE route, answered by ./events.ts. */
export const EVENTS_ROUTE: RouteSpec = { method: 'get', path: '/api/v1/events', mutation: false };

/** Every route of the operator API. */
export const ROUTES: readonly RouteSpec[] = [...TABLE.map(([spec]) => spec), EVENTS_ROUTE];

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

export const expressPath = (p: string): string => p.replace(/\{(\w+)\}/g, ':$1');

/** Whether an express path (method, path) is a mutation of the API. */
export function isMutation(method: string, path: string): boolean {
  const m = method.toLowerCase();
  return ROUTES.some((s) => s.mutation && s.method === m && new RegExp(`^${s.path.replace(/\{\w+\}/g, '[^/]+')}/?$`).test(path));
}

export function sendJson(res: Response, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  res.status(status).set({ 'cache-control': 'no-store', ...headers }).type('application/json').send(JSON.stringify(body) + '\n');
}

export interface OperatorApi {
  readonly router: Router;
  /** Ends the event streams (vxnetd stopping). */
  close(): void;
}

/** The router of /api/...: every route of ROUTES, JSON 404/405 for the rest of /api, errors as vxnet's JSON. */
export function operatorApi(src: ApiSources): OperatorApi {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const router = express.Router({ caseSensitive: true, strict: false });
  const json = express.json({ limit: BODY_LIMIT, strict: true, type: () => true });
  const events = new ApiEvents(src);
  for (const [spec, handler] of TABLE) {
    const run: RequestHandler = (req, res, next) => {
      Promise.resolve().then(() => handler(src, req, res)).then((value) => { if (value !== undefined) sendJson(res, 200, value); }, next);
    };
    if (spec.method === 'get') router.get(expressPath(spec.path), run);
    else if (spec.method === 'post') router.post(expressPath(spec.path), json, run);
    else router.put(expressPath(spec.path), json, run);
  }
  router.get(EVENTS_ROUTE.path, (req, res) => events.serve(req, res));
  // Known paths, other methods: 405 with Allow.
  const byPath = new Map<string, string[]>();
  for (const s of ROUTES) byPath.set(s.path, [...(byPath.get(s.path) ?? []), s.method.toUpperCase()]);
  for (const [p, methods] of byPath) {
    router.all(expressPath(p), (req, res) => sendError(res, new HttpError(405, 'MethodNotAllowed', `${req.method} not allowed on ${req.path} (${methods.join(', ')})`, { allow: methods.join(', ') })));
  }
  router.all(/^\/api(\/.*)?$/, (req, res) => sendError(res, new HttpError(404, 'NotFound', `no such resource: ${req.method} ${req.path} (GET /api/openapi.json lists them)`)));
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) { next(err); return; }
    if (!req.path.startsWith('/api')) { next(err); return; }
    sendError(res, err);
  });
  return { router, close: () => events.close() };
}
