// The catalog as a stream of changes over HTTP: vxnetd's `GET /v1/endpoints?watch=1` answers
// with server-sent events, which vxnet-lb (edge/) follows so that a container's route is live
// as soon as the catalog has it. Pure codec plus the one express handler.
//
//   event: reset    data: [Endpoint, ...]                      first, and the whole catalog
//   event: change   data: [{"id": ID, "endpoint": Endpoint|null}, ...]   each change batch, in order
//   : ping                                                      every heartbeat (default 10 s)
//
// A follower that hears nothing for a few heartbeats reconnects: Marathon-LB's event stream
// died silently and was only noticed by a 5-minute poll (research/dcos-internals.md 5).
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { EndpointCatalog } from './catalog';
import type { Endpoint } from './endpoint';
import { DEFAULT_PREFIX, decodeEndpoint, encodeEndpoint, endpointKey } from './records';

export const DEFAULT_HEARTBEAT_MS = 10_000;

export type StreamEvent =
  | { readonly type: 'reset'; readonly endpoints: readonly Endpoint[] }
  | { readonly type: 'change'; readonly changes: ReadonlyArray<{ id: string; endpoint: Endpoint | undefined }> };

export function encodeEvent(ev: StreamEvent): string {
  const data = ev.type === 'reset'
    ? `[${ev.endpoints.map(encodeEndpoint).join(',')}]`
    : `[${ev.changes.map((c) => `{"id":${JSON.stringify(c.id)},"endpoint":${c.endpoint ? encodeEndpoint(c.endpoint) : 'null'}}`).join(',')}]`;
  return `event: ${ev.type}\ndata: ${data}\n\n`;
}

/** One endpoint from the stream, every field checked as records.ts checks etcd's values. */
function endpointOf(raw: unknown): Endpoint | string {
  if (typeof raw !== 'object' || raw === null) return 'not an object';
  const { id, host } = raw as { id?: unknown; host?: unknown };
  if (typeof id !== 'string' || typeof host !== 'string') return 'id or host not a string';
  const r = decodeEndpoint(DEFAULT_PREFIX, endpointKey(DEFAULT_PREFIX, { id, host }), JSON.stringify(raw));
  return 'endpoint' in r ? r.endpoint : `${id}: ${r.error}`;
}

/** A server-sent event's type and data -> a StreamEvent, or why not. */
export function decodeEvent(type: string, data: string): StreamEvent | { error: string } {
  let raw: unknown;
  try { raw = JSON.parse(data); } catch { return { error: `${type}: data is not JSON` }; }
  if (!Array.isArray(raw)) return { error: `${type}: data is not a list` };
  if (type === 'reset') {
    const endpoints: Endpoint[] = [];
    for (const x of raw) {
      const e = endpointOf(x);
      if (typeof e === 'string') return { error: `reset: ${e}` };
      endpoints.push(e);
    }
    return { type, endpoints };
  }
  if (type === 'change') {
    const changes: Array<{ id: string; endpoint: Endpoint | undefined }> = [];
    for (const x of raw) {
      const { id, endpoint } = (x ?? {}) as { id?: unknown; endpoint?: unknown };
      if (typeof id !== 'string') return { error: 'change: id not a string' };
      if (endpoint === null) { changes.push({ id, endpoint: undefined }); continue; }
      const e = endpointOf(endpoint);
      if (typeof e === 'string') return { error: `change: ${e}` };
      if (e.id !== id) return { error: `change: endpoint ${e.id} under id ${id}` };
      changes.push({ id, endpoint: e });
    }
    return { type, changes };
  }
  return { error: `unknown event type "${type}"` };
}

/** Splits a text/event-stream into events; feed it chunks, it calls `onEvent(type, data)`. */
export class SseParser {
  private buf = '';
  private type = 'message';
  private data: string[] = [];
  constructor(private readonly onEvent: (type: string, data: string) => void) {}

  push(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) !== -1) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      if (line === '') {
        if (this.data.length) this.onEvent(this.type, this.data.join('\n'));
        this.type = 'message';
        this.data = [];
      } else if (line.startsWith(':')) {
        continue;
      } else {
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') this.type = value;
        else if (field === 'data') this.data.push(value);
      }
    }
  }
}

/**
 * `GET /v1/endpoints?watch=1`: the stream; without `watch` the request goes on to the next
 * handler (the JSON list). `heartbeat=MS` (100 to 60000) sets the ping interval.
 */
export function watchHandler(catalog: EndpointCatalog, defaultHeartbeatMs = DEFAULT_HEARTBEAT_MS): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.query.watch === undefined || req.query.watch === '0' || req.query.watch === 'false') { next(); return; }
    const hb = Number(req.query.heartbeat);
    const heartbeatMs = Number.isInteger(hb) && hb >= 100 && hb <= 60_000 ? hb : defaultHeartbeatMs;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    const unsubscribe = catalog.subscribe((changes) => {
      res.write(encodeEvent({ type: 'change', changes: changes.map((c) => ({ id: c.id, endpoint: c.after })) }));
    });
    res.write(encodeEvent({ type: 'reset', endpoints: catalog.list() }));
    const ping = setInterval(() => res.write(': ping\n\n'), heartbeatMs);
    const end = (): void => { clearInterval(ping); unsubscribe(); };
    res.on('close', end);
    req.on('close', end);
  };
}
