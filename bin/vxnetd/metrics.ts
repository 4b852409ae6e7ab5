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
import type { EtcdObserver } from '../../etcd/client';
import type { VipKernel } from '../../vip/kernel';
import type { VipSource } from '../../vip/api';
import type { OverlayRunner } from '../../overlay/runner';

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

/** etcd round trips into vxnet_etcd_request_duration_seconds and vxnet_etcd_request_errors_total. */
export const etcdObserverOf = (m: VxnetdMetrics): EtcdObserver => ({
  request(operation, seconds, ok) {
    m.etcdRequests.observe({ operation, result: ok ? 'ok' : 'error' }, seconds);
    if (!ok) m.etcdErrors.inc({ operation });
  },
});

/** The kernel's VIP table, its batches (sync, apply) timed into vxnet_nft_batch_duration_seconds. */
export function timedVipKernel(kernel: VipKernel, m: VxnetdMetrics, table: string): VipKernel {
  const timed = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    const started = process.hrtime.bigint();
    try {
      const out = await fn(...a);
      m.nftBatches.observe({ table, result: 'ok' }, secondsSince(started));
      return out;
    } catch (err) {
      m.nftBatches.observe({ table, result: 'error' }, secondsSince(started));
      throw err;
    }
  };
  const apply = kernel.apply?.bind(kernel);
  const forget = kernel.forget?.bind(kernel);
  return {
    start: () => kernel.start(),
    stop: () => kernel.stop(),
    sync: timed((entries: Parameters<VipKernel['sync']>[0]) => kernel.sync(entries)),
    ...(apply ? { apply: timed(apply) } : {}),
    ...(forget ? { forget } : {}),
  };
}

/** vxnet_vips (by protocol) and vxnet_vip_backends (by state), read from the VIP service at each scrape. */
export function scrapeVips(m: VxnetdMetrics, source: VipSource): void {
  m.gauge('vips', 'VIPs served, by protocol', ['protocol'], () => {
    const n = new Map<string, number>([['tcp', 0], ['udp', 0]]);
    for (const v of source.vips()) n.set(v.protocol, (n.get(v.protocol) ?? 0) + 1);
    return [...n].map(([protocol, value]) => ({ labels: { protocol }, value }));
  });
  m.gauge('vip_backends', 'VIP backends, by state (up, unhealthy, starting)', ['state'], () => {
    const n = new Map<string, number>([['up', 0], ['unhealthy', 0], ['starting', 0]]);
    for (const v of source.vips()) for (const b of v.backends) n.set(b.state, (n.get(b.state) ?? 0) + 1);
    return [...n].map(([state, value]) => ({ labels: { state }, value }));
  });
}

/** The overlay agent's peers per network and its lease, read at each scrape; lease losses counted as they happen. */
export function scrapeOverlay(m: VxnetdMetrics, runner: OverlayRunner): void {
  let losses = 0;
  void runner.ready().then((svc) => svc.agent.on('leaseLost', () => { losses++; }));
  m.gauge('overlay_agent_up', '1 when the overlay agent runs (it retries in the background while etcd is away)', [], () => [{ labels: {}, value: runner.current ? 1 : 0 }]);
  m.gauge('overlay_lease_held', '1 while this host\'s registration lease is held in etcd', [], () => [{ labels: {}, value: runner.current?.agent.leaseHeld ? 1 : 0 }]);
  m.counter('overlay_lease_losses_total', 'Times the registration lease was lost (then registered again)', [], () => [{ labels: {}, value: losses }]);
  m.gauge('overlay_peers', 'Peers (other hosts) this host programs, per overlay network', ['network'], () => {
    const agent = runner.current?.agent;
    return agent?.networks.map((network) => ({ labels: { network }, value: agent.peers(network).length }));
  });
}
