// vxnet-lb's local HTTP listener (--metrics-listen, default 127.0.0.1:9091):
//   GET /metrics   Prometheus text format (./metrics.ts)
//   GET /v1/lb     what it serves (./view.ts), JSON: what `vxnetctl lb ls` shows
// Both ask HAProxy's Runtime API for `show stat` once per request; HAProxy not answering is
// shown (haproxy.up false, server states unknown), never an error page. HAProxy's own stats
// page stays where --stats-listen puts it.
import * as http from 'node:http';
import { IoFailure } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { EdgeController } from './controller';
import type { ConfigOptions } from './config';
import { cliCommand } from './haproxy';
import type { EdgeMetrics, Scrape } from './metrics';
import { parseStat } from './stat';
import { lbView } from './view';

export interface LbApiOptions {
  /** ADDRESS:PORT ([v6]:PORT). */
  readonly listen: string;
  readonly controller: EdgeController;
  readonly config: ConfigOptions;
  readonly metrics: EdgeMetrics;
  readonly masterPid: () => number | undefined;
  readonly log: Logger;
}

/** The view and `show stat` now. */
export async function scrape(o: Pick<LbApiOptions, 'controller' | 'config' | 'masterPid'>): Promise<Scrape> {
  const text = await cliCommand(o.config.statsSocket, 'show stat', 2000).catch(() => undefined);
  const stat = text?.startsWith('# pxname') ? parseStat(text) : undefined;
  const st = o.controller.status();
  const view = lbView({
    running: st.running, drains: st.drains, stat, config: o.config, pid: o.masterPid(),
    counts: { reloads: st.reloads, runtimeChanges: st.runtimeChanges, refused: st.refused },
  });
  return { view, stat };
}

export interface LbApi {
  readonly port: number;
  close(): Promise<void>;
}

export async function startLbApi(o: LbApiOptions): Promise<LbApi> {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(o.listen);
  if (!m) throw new IoFailure(`--metrics-listen ${o.listen}: not ADDRESS:PORT`);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') { send(405, 'application/json', '{"error":"GET only"}\n'); return; }
    if (path !== '/metrics' && path !== '/v1/lb') { send(404, 'application/json', '{"error":"not found: /metrics and /v1/lb are served here"}\n'); return; }
    void (async () => {
      try {
        const s = await scrape(o);
        if (path === '/metrics') send(200, o.metrics.contentType, await o.metrics.text(s));
        else send(200, 'application/json', `${JSON.stringify(s.view, null, 2)}\n`);
      } catch (err) {
        o.log.warn('cannot answer', { path, error: err instanceof Error ? err.message : String(err) });
        send(500, 'application/json', `${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new IoFailure(`cannot listen on ${o.listen} (--metrics-listen): ${err.message}`)));
    server.listen(Number(m[2]), m[1], () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
