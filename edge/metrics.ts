// vxnet-lb's Prometheus metrics (prom-client, a registry of its own): what vxnet-lb did
// (reloads by result, Runtime API commands by op, config generation time, refused configs,
// catalog reconnects, HAProxy restarts) as counters and a histogram, and at each scrape what
// runs (backends and servers by state) plus HAProxy's own per-backend and per-server figures
// from `show stat`, as gauges: those are the serving worker's counters, which a reload starts
// at zero, so they are not Prometheus counters.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { StatRow } from './stat';
import type { LbView } from './view';

/** What the controller reports as it works (EdgeController's `events`). */
export interface EdgeEvents {
  reload(result: 'ok' | 'failed'): void;
  runtime(op: string, result: 'ok' | 'failed'): void;
  /** Catalog -> model -> placed -> config text, for one sync that changed something. */
  generated(seconds: number): void;
  refused(): void;
  haproxyRestarted(): void;
}

export interface Scrape {
  readonly view: LbView;
  readonly stat: readonly StatRow[] | undefined;
}

const P = 'vxnet_lb_';

export class EdgeMetrics implements EdgeEvents {
  readonly registry = new Registry();
  private readonly reloads = new Counter({ name: `${P}reloads_total`, help: 'HAProxy reloads vxnet-lb asked for, by result', labelNames: ['result'], registers: [this.registry] });
  private readonly runtimeOps = new Counter({ name: `${P}runtime_api_commands_total`, help: 'Server changes through HAProxy\'s Runtime API, by op (fill, drain, weight, maint) and result', labelNames: ['op', 'result'], registers: [this.registry] });
  private readonly generation = new Histogram({ name: `${P}config_generation_seconds`, help: 'Catalog -> model -> slots -> config text, per change', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2], registers: [this.registry] });
  private readonly refusedConfigs = new Counter({ name: `${P}config_refused_total`, help: 'Configs haproxy -c refused (the running one stayed)', registers: [this.registry] });
  private readonly restarts = new Counter({ name: `${P}haproxy_restarts_total`, help: 'Times vxnet-lb started HAProxy again after it died', registers: [this.registry] });
  private readonly backends = new Gauge({ name: `${P}backends`, help: 'Backends vxnet-lb runs, by HAProxy\'s state (up, down; unknown: HAProxy did not answer or has no such backend)', labelNames: ['state'], registers: [this.registry] });
  private readonly servers = new Gauge({ name: `${P}servers`, help: 'Servers (filled slots and drains) by state: up, down, drain, maint, nolb, unknown', labelNames: ['state'], registers: [this.registry] });
  private readonly up = new Gauge({ name: `${P}haproxy_up`, help: '1 when HAProxy answered show stat at this scrape', registers: [this.registry] });
  private readonly hx: Record<'scur' | 'stot' | 'bytesIn' | 'bytesOut' | 'http5xx' | 'econ' | 'eresp', { backend: Gauge; server: Gauge }>;
  private readonly serverStatus = new Gauge({ name: `${P}haproxy_server_status`, help: 'Per server: 1, with HAProxy\'s status as a label', labelNames: ['backend', 'server', 'endpoint', 'status'], registers: [this.registry] });

  /** `reconnects()`: the catalog source's count of lost and restarted streams or watches. */
  constructor(reconnects: () => number) {
    new Counter({ // eslint-disable-line no-new
      name: `${P}catalog_reconnects_total`, help: 'Times the catalog stream (--api) or etcd watch (--store) was lost and started again', registers: [this.registry],
      collect() { this.reset(); this.inc(reconnects()); },
    });
    const pair = (key: string, help: string): { backend: Gauge; server: Gauge } => ({
      backend: new Gauge({ name: `${P}haproxy_backend_${key}`, help: `${help}, per backend (HAProxy's show stat; since the worker started)`, labelNames: ['backend'], registers: [this.registry] }),
      server: new Gauge({ name: `${P}haproxy_server_${key}`, help: `${help}, per server (HAProxy's show stat; since the worker started)`, labelNames: ['backend', 'server', 'endpoint'], registers: [this.registry] }),
    });
    this.hx = {
      scur: pair('current_sessions', 'Current sessions'),
      stot: pair('sessions', 'Sessions'),
      bytesIn: pair('bytes_in', 'Bytes from clients'),
      bytesOut: pair('bytes_out', 'Bytes to clients'),
      http5xx: pair('http_responses_5xx', 'HTTP responses with a 5xx status'),
      econ: pair('connection_errors', 'Failed connections to servers'),
      eresp: pair('response_errors', 'Response errors'),
    };
  }

  reload(result: 'ok' | 'failed'): void { this.reloads.inc({ result }); }
  runtime(op: string, result: 'ok' | 'failed'): void { this.runtimeOps.inc({ op, result }); }
  generated(seconds: number): void { this.generation.observe(seconds); }
  refused(): void { this.refusedConfigs.inc(); }
  haproxyRestarted(): void { this.restarts.inc(); }

  /** The text format, with the gauges set from this scrape's view and `show stat`. */
  async text(s: Scrape): Promise<string> {
    this.up.set(s.stat ? 1 : 0);
    for (const g of [this.backends, this.servers, this.serverStatus, ...Object.values(this.hx).flatMap((p) => [p.backend, p.server])]) g.reset();
    for (const state of ['up', 'down', 'unknown']) this.backends.set({ state }, 0);
    for (const state of ['up', 'down', 'drain', 'maint', 'nolb', 'unknown']) this.servers.set({ state }, 0);
    const rows = new Map((s.stat ?? []).map((r) => [`${r.proxy}/${r.server}`, r]));
    for (const b of s.view.backends) {
      const row = rows.get(`${b.name}/BACKEND`);
      this.backends.inc({ state: !row ? 'unknown' : row.status.toUpperCase().startsWith('UP') ? 'up' : 'down' });
      if (row) for (const [k, p] of Object.entries(this.hx)) p.backend.set({ backend: b.name }, row[k as keyof typeof this.hx]);
      for (const sv of b.servers) {
        this.servers.inc({ state: sv.state });
        const r = rows.get(`${b.name}/${sv.slot}`);
        if (!r) continue;
        const labels = { backend: b.name, server: sv.slot, endpoint: sv.endpoint };
        for (const [k, p] of Object.entries(this.hx)) p.server.set(labels, r[k as keyof typeof this.hx]);
        this.serverStatus.set({ ...labels, status: r.status }, 1);
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string { return this.registry.contentType; }
}
