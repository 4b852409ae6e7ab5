// vxnetd's metrics, composed (lib/metrics.ts holds the registry and the families): the pool
// gauges read from the IPAM store at each scrape, the IPAM counters fed by the stores' committed
// transactions (ipam/store/observed.ts), and the timing of the doors (handed-off CNI calls,
// Docker plugin calls) by command and result code. Served at /metrics by ./http-api.ts.
import type { CallOutcome } from '../../handoff/service';
import type { Methods } from '../../cnm/server';
import type { IpamStore } from '../../ipam/store/types';
import type { IpamEvents } from '../../ipam/store/observed';
import { freeOf, poolUsage } from '../../ipam/usage';
import { asVxnetError } from '../../lib/errors';
import { type VxnetdMetrics, secondsSince } from '../../lib/metrics';

/** The counters an observed IPAM store feeds. */
export const ipamEventsOf = (m: VxnetdMetrics): IpamEvents => ({
  allocated: (network, runtime, count) => m.allocations.inc({ network, runtime }, count),
  released: (network, runtime, count) => m.releases.inc({ network, runtime }, count),
});

/** Sets the pool and block gauges from `store` before each scrape. */
export function scrapePools(m: VxnetdMetrics, store: IpamStore): void {
  m.onScrape(async () => {
    const pools = await store.view((tx) => poolUsage(tx));
    for (const g of [m.poolSize, m.poolUsed, m.poolFree, m.blockSize, m.blockUsed, m.blockFree]) g.reset();
    for (const p of pools) {
      const network = p.network;
      m.poolUsed.set({ network }, p.used);
      if (p.size !== undefined) {
        m.poolSize.set({ network }, p.size);
        m.poolFree.set({ network }, freeOf(p.size, p.used));
      }
      for (const b of p.blocks) {
        const labels = { network, block: b.block };
        m.blockSize.set(labels, b.size);
        m.blockUsed.set(labels, b.used);
        m.blockFree.set(labels, freeOf(b.size, b.used));
      }
    }
  });
}

/** A CNI call's result code: 0, or the code of the CNI error it printed (999 when unreadable). Pure. */
export function cniResultCode(outcome: CallOutcome): number {
  if (outcome.exitCode === 0) return 0;
  try {
    const code = (JSON.parse(outcome.stdout) as { code?: unknown }).code;
    return typeof code === 'number' ? code : 999;
  } catch {
    return 999;
  }
}

/** `run` (one handed-off CNI call), timed into vxnet_cni_call_duration_seconds. */
export async function timedCniCall(m: VxnetdMetrics, command: string | undefined, run: () => Promise<CallOutcome>): Promise<CallOutcome> {
  const started = process.hrtime.bigint();
  const outcome = await run();
  m.cniCalls.observe({ command: command ?? 'none', code: String(cniResultCode(outcome)) }, secondsSince(started));
  return outcome;
}

/** The Docker plugin's methods, each timed into vxnet_docker_plugin_call_duration_seconds. */
export function timedMethods(methods: Methods, m: VxnetdMetrics): Methods {
  return Object.fromEntries(Object.entries(methods).map(([method, fn]) => [method, async (body: Record<string, unknown>) => {
    const started = process.hrtime.bigint();
    try {
      const out = await fn(body);
      m.dockerCalls.observe({ method, code: '0' }, secondsSince(started));
      return out;
    } catch (err) {
      m.dockerCalls.observe({ method, code: String(asVxnetError(err).code) }, secondsSince(started));
      throw err;
    }
  }]));
}
