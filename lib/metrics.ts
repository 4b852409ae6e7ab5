// vxnetd's Prometheus metrics (issue 15): one prom-client Registry per vxnetd (never prom-client's
// global default: tests run several vxnetd in one process), the families every module records
// into, and the process metrics (collectDefaultMetrics). Modules receive a `VxnetdMetrics` (or
// nothing: metrics are optional everywhere) by injection; nothing here is module-level state.
// The families and their labels are listed in bin/vxnetd/README.md ("Metrics").
//
// Two kinds of figures:
// - Events (calls, allocations, etcd round trips, nft batches) are prom-client counters and
//   histograms, recorded where they happen; those happen at most a few hundred times a second.
// - What is (pool usage, VIPs, overlay peers) is gauges set at scrape time from the module that
//   owns it (`onScrape`), never kept in sync by hand.
// The hot path (a DNS answer, ~1 us) records into `CellTable`s, plain numbers in cells cached
// per label value; a counter's `collect` turns them into series at scrape time. prom-client's
// `inc(labels)` hashes the label object on every call, which that path cannot pay for.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from './version';

/** One counter's value, incremented in place (`cell.n++`). */
export interface Cell { n: number }

/**
 * Plain counters under two labels: `row(key)` gives the cells of one first-label value (cached
 * per key, so a hot path does one Map lookup and no allocation), indexed by the second label's
 * position in `columns`. `label(key)` names a key's first label (several keys may share a name,
 * e.g. every rare DNS type as "other"); keys beyond `maxKeys` share the row of `overflow`.
 */
export class CellTable<K> {
  private readonly rows = new Map<K, Cell[]>();
  private readonly byLabel = new Map<string, Cell[]>();

  constructor(
    readonly columns: readonly string[],
    private readonly label: (key: K) => string,
    private readonly maxKeys = 1024,
    private readonly overflow = 'other',
  ) {}

  row(key: K): Cell[] {
    let r = this.rows.get(key);
    if (r) return r;
    const name = this.rows.size < this.maxKeys ? this.label(key) : this.overflow;
    r = this.byLabel.get(name);
    if (!r) {
      r = this.columns.map(() => ({ n: 0 }));
      this.byLabel.set(name, r);
    }
    if (this.rows.size < this.maxKeys) this.rows.set(key, r);
    return r;
  }

  /** Every (first label, second label, count) with a count above zero. */
  *entries(): Iterable<[string, string, number]> {
    for (const [name, cells] of this.byLabel) {
      for (let i = 0; i < cells.length; i++) if (cells[i]!.n > 0) yield [name, this.columns[i]!, cells[i]!.n];
    }
  }
}

/** Seconds since `started` (process.hrtime.bigint()). */
export const secondsSince = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e9;

/** Buckets of calls that take milliseconds to seconds (CNI, Docker plugin, etcd, nft). */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Buckets of a forwarded DNS query (an upstream's round trip; 2 s is the forwarder's timeout). */
const DNS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4];

const P = 'vxnet_';

/** One gauge series: its labels and value. */
export interface Sample<L extends string> { readonly labels: Readonly<Record<L, string>>; readonly value: number }

export class VxnetdMetrics {
  readonly registry = new Registry();
  private readonly scrapers: Array<() => void | Promise<void>> = [];

  // IPAM (ipam/store/observed.ts; pools at scrape time)
  readonly allocations = new Counter({ name: `${P}ipam_allocations_total`, help: 'Addresses allocated (committed), by network and runtime (cni, docker)', labelNames: ['network', 'runtime'] as const, registers: [this.registry] });
  readonly releases = new Counter({ name: `${P}ipam_releases_total`, help: 'Addresses released (committed), by network and runtime', labelNames: ['network', 'runtime'] as const, registers: [this.registry] });
  readonly poolSize = new Gauge({ name: `${P}ipam_pool_size_addresses`, help: 'Addresses a network\'s pool can hand out on this host (its ranges, gateways excluded)', labelNames: ['network'] as const, registers: [this.registry] });
  readonly poolUsed = new Gauge({ name: `${P}ipam_pool_used_addresses`, help: 'Addresses of a network\'s pool allocated on this host', labelNames: ['network'] as const, registers: [this.registry] });
  readonly poolFree = new Gauge({ name: `${P}ipam_pool_free_addresses`, help: 'Addresses of a network\'s pool still free on this host', labelNames: ['network'] as const, registers: [this.registry] });
  readonly blockSize = new Gauge({ name: `${P}ipam_block_size_addresses`, help: 'Addresses of one block (a range set of a pool: an overlay network\'s block of this host)', labelNames: ['network', 'block'] as const, registers: [this.registry] });
  readonly blockUsed = new Gauge({ name: `${P}ipam_block_used_addresses`, help: 'Addresses of one block allocated', labelNames: ['network', 'block'] as const, registers: [this.registry] });
  readonly blockFree = new Gauge({ name: `${P}ipam_block_free_addresses`, help: 'Addresses of one block still free', labelNames: ['network', 'block'] as const, registers: [this.registry] });

  // The doors (handoff/service.ts, cnm/server.ts)
  readonly cniCalls = new Histogram({ name: `${P}cni_call_duration_seconds`, help: 'CNI calls vxnetd ran for the plugin (the hand-off), by command and result code (0: success, else the CNI error code)', labelNames: ['command', 'code'] as const, buckets: CALL_BUCKETS, registers: [this.registry] });
  readonly dockerCalls = new Histogram({ name: `${P}docker_plugin_call_duration_seconds`, help: 'Docker plugin API calls, by method and result code (0: success, else vxnet\'s error code)', labelNames: ['method', 'code'] as const, buckets: CALL_BUCKETS, registers: [this.registry] });

  // etcd (etcd/client.ts)
  readonly etcdRequests = new Histogram({ name: `${P}etcd_request_duration_seconds`, help: 'etcd operations (each with its retries), by operation (range, get, txn, lease_ttl) and result (ok, error)', labelNames: ['operation', 'result'] as const, buckets: CALL_BUCKETS, registers: [this.registry] });
  readonly etcdErrors = new Counter({ name: `${P}etcd_request_errors_total`, help: 'etcd operations that failed after their retries, by operation', labelNames: ['operation'] as const, registers: [this.registry] });

  // DNS (dns/metrics.ts: counted in CellTables, collected at scrape)
  readonly dnsForwarded = new Histogram({ name: `${P}dns_forwarded_duration_seconds`, help: 'Queries answered through the upstreams (not from the zone or the cache): from the handler to the answer', buckets: DNS_BUCKETS, registers: [this.registry] });

  // nftables batches (vip/kernel.ts)
  readonly nftBatches = new Histogram({ name: `${P}nft_batch_duration_seconds`, help: 'nftables batches vxnetd programmed, by table and result (ok, error)', labelNames: ['table', 'result'] as const, buckets: CALL_BUCKETS, registers: [this.registry] });

  constructor(o: { defaultMetrics?: boolean } = {}) {
    if (o.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: `${P}build_info`, help: 'Always 1; vxnetd\'s version as a label', labelNames: ['version'], registers: [this.registry] }).set({ version: VERSION }, 1);
  }

  /** A counter whose series are `table`'s cells at each scrape. */
  cellCounter<K>(name: string, help: string, labels: readonly [string, string], table: CellTable<K>): void {
    new Counter({ // eslint-disable-line no-new
      name: `${P}${name}`, help, labelNames: labels, registers: [this.registry],
      collect() {
        this.reset();
        for (const [a, b, n] of table.entries()) this.inc({ [labels[0]]: a, [labels[1]]: b }, n);
      },
    });
  }

  /**
   * A gauge set at each scrape from `read` (the module that owns the figure); `undefined` from
   * read leaves it without series (the module is not running).
   */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => readonly Sample<L>[] | undefined | Promise<readonly Sample<L>[] | undefined>): void {
    new Gauge({ // eslint-disable-line no-new
      name: `${P}${name}`, help, labelNames, registers: [this.registry],
      async collect() {
        let samples;
        try { samples = await read(); } catch { return; } // a failed read keeps the last figures
        this.reset();
        for (const s of samples ?? []) this.set(s.labels as never, s.value);
      },
    });
  }

  /** A counter whose series are read at each scrape from totals a module keeps (monotonic, as plain numbers). */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => readonly Sample<L>[] | undefined): void {
    new Counter({ // eslint-disable-line no-new
      name: `${P}${name}`, help, labelNames, registers: [this.registry],
      collect() {
        let samples;
        try { samples = read(); } catch { return; }
        this.reset();
        for (const s of samples ?? []) this.inc(s.labels as never, s.value);
      },
    });
  }

  /** A function run before each scrape (several gauges from one read). */
  onScrape(fn: () => void | Promise<void>): void {
    this.scrapers.push(fn);
  }

  /** The text exposition format. A failing scraper is not fatal: its gauges keep their last values. */
  async text(): Promise<string> {
    await Promise.all(this.scrapers.map(async (fn) => { try { await fn(); } catch { /* figures stay as they were */ } }));
    return this.registry.metrics();
  }

  get contentType(): string { return this.registry.contentType; }
}

/** GET /metrics (an express handler; typed structurally, so lib/ needs no express). */
export function metricsHandler(m: VxnetdMetrics): (req: unknown, res: { status(code: number): { type(t: string): { send(body: string): void } } }) => void {
  return (_req, res) => {
    m.text().then(
      (text) => res.status(200).type(m.contentType).send(text),
      (err: unknown) => res.status(500).type('text/plain').send(`vxnet: metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  };
}
