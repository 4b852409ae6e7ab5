// Follows vxnetd's catalog stream (`GET /v1/endpoints?watch=1`, catalog/stream.ts) into a
// local EndpointCatalog. Reconnects with backoff (100 ms doubling to 5 s) when the connection
// ends, fails, or stays silent for three heartbeats; every connection starts with a reset,
// so nothing missed meanwhile stays missed. While vxnetd is away the catalog keeps what it had
// (the edge keeps serving the last known servers).
import * as http from 'node:http';
import { EndpointCatalog } from '../catalog/catalog';
import type { Endpoint } from '../catalog/endpoint';
import { decodeEvent, SseParser, type StreamEvent } from '../catalog/stream';
import type { Logger } from '../lib/log';

/** Makes `catalog` hold exactly `endpoints` (one batch per host that changed). */
export function applyReset(catalog: EndpointCatalog, endpoints: readonly Endpoint[]): void {
  const byHost = new Map<string, Endpoint[]>();
  for (const e of endpoints) byHost.set(e.host, [...(byHost.get(e.host) ?? []), e]);
  for (const h of catalog.hosts()) if (!byHost.has(h)) catalog.replaceHost(h, []);
  for (const [h, list] of byHost) catalog.replaceHost(h, list);
}

export function applyEvent(catalog: EndpointCatalog, ev: StreamEvent): void {
  if (ev.type === 'reset') { applyReset(catalog, ev.endpoints); return; }
  for (const c of ev.changes) {
    if (c.endpoint) catalog.put(c.endpoint); else catalog.remove(c.id);
  }
}

export interface FeedOptions {
  /** vxnetd's HTTP API, e.g. http://127.0.0.1:8123. */
  readonly api: string;
  readonly catalog: EndpointCatalog;
  readonly log: Logger;
  readonly heartbeatMs?: number;
}

export class CatalogFeed {
  private req: http.ClientRequest | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stall: NodeJS.Timeout | undefined;
  private stopped = false;
  private backoffMs = 100;
  private troubled = false;
  private firstReset: Promise<void>;
  /** Streams lost and started again (metrics). */
  reconnects = 0;
  private resolveFirst!: () => void;
  readonly url: URL;

  constructor(private readonly o: FeedOptions) {
    this.url = new URL('/v1/endpoints', o.api);
    this.url.searchParams.set('watch', '1');
    this.url.searchParams.set('heartbeat', String(o.heartbeatMs ?? 2000));
    this.firstReset = new Promise((r) => { this.resolveFirst = r; });
  }

  /** Connects; resolves at the first reset or after `waitMs` (the edge then starts with what it has). */
  async start(waitMs = 5000): Promise<void> {
    this.connect();
    await Promise.race([this.firstReset, new Promise((r) => setTimeout(r, waitMs).unref())]);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.stall);
    this.req?.destroy();
  }

  private trouble(what: string): void {
    if (this.stopped) return;
    if (!this.troubled) this.o.log.warn('catalog stream lost; reconnecting', { url: this.url.href, error: what });
    this.troubled = true;
    clearTimeout(this.stall);
    this.req?.destroy();
    this.req = undefined;
    clearTimeout(this.timer);
    this.reconnects++;
    this.timer = setTimeout(() => this.connect(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
  }

  private armStall(): void {
    clearTimeout(this.stall);
    this.stall = setTimeout(() => this.trouble('no data for three heartbeats'), 3 * (this.o.heartbeatMs ?? 2000) + 1000);
  }

  private connect(): void {
    if (this.stopped) return;
    const req = http.get(this.url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { res.resume(); this.trouble(`HTTP ${res.statusCode}`); return; }
      res.setEncoding('utf8');
      const parser = new SseParser((type, data) => {
        const ev = decodeEvent(type, data);
        if ('error' in ev) { this.trouble(`bad event: ${ev.error}`); return; }
        applyEvent(this.o.catalog, ev);
        if (ev.type === 'reset') {
          if (this.troubled) this.o.log.info('catalog stream back', { url: this.url.href, endpoints: ev.endpoints.length });
          this.troubled = false;
          this.backoffMs = 100;
          this.resolveFirst();
        }
      });
      this.armStall();
      res.on('data', (chunk: string) => { this.armStall(); parser.push(chunk); });
      res.on('end', () => { if (this.req === req) this.trouble('stream ended'); });
      res.on('error', (err) => { if (this.req === req) this.trouble(err.message); });
    });
    req.on('error', (err) => { if (this.req === req) this.trouble(err.message); });
    this.req = req;
  }
}
