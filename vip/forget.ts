// Forgetting the flows of backends whose address is gone (kube-proxy's `conntrack -D` for UDP).
//
// conntrack keeps a UDP "connection" alive as long as datagrams flow, and every datagram of it
// keeps the DNAT chosen by its first: a client sending to a VIP every few seconds would keep
// being sent to a backend whose container is deleted, for ever. So when a backend's address
// leaves the catalog (its endpoint deleted, its host's lease expired), the entries of the flows
// VIP:port -> that address are deleted, and the next datagram is balanced again. TCP flows to a
// gone address go too (the client then gets a reset from a live backend instead of
// retransmitting into nothing). A backend merely out of its VIPs (unhealthy, label removed)
// keeps its entries: draining, its open connections end on their own.
//
// `goneFlows` is pure; `VipForgetter` hears the VIP service's model after the kernel took it
// (the backend is already out of the table, so a new datagram cannot pick it again) and asks
// the kernel to delete the flows.
import type { EndpointCatalog } from '../catalog/catalog';
import { formatIp, parseIp } from '../ipam/addr';
import { asVxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { ConntrackFilter, VipKernel } from './kernel';
import type { VipView } from './model';

/** The flows of `before`'s backends whose address is not in `live`. */
export function goneFlows(before: readonly VipView[], live: ReadonlySet<string>): ConntrackFilter[] {
  const out: ConntrackFilter[] = [];
  const seen = new Set<string>();
  for (const v of before) {
    for (const b of v.backends) {
      if (live.has(b.ip)) continue;
      const backend = parseIp(b.ip);
      if (!backend) continue;
      for (const a of v.addresses) {
        const vip = parseIp(a);
        if (!vip || vip.family !== backend.family) continue;
        const key = `${v.protocol} ${a} ${v.port} ${b.ip}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ protocol: v.protocol, origDst: vip, origDstPort: v.port, replySrc: backend });
      }
    }
  }
  return out;
}

/** The VIP service's part the forgetter needs. */
export interface VipModelSource {
  vips(): readonly VipView[];
  subscribe(listener: (vips: readonly VipView[]) => void): () => void;
}

export class VipForgetter {
  private last: readonly VipView[] = [];
  private unsubscribe: (() => void) | undefined;
  private queue: Promise<void> = Promise.resolve();
  private failing = false;

  constructor(private readonly o: { source: VipModelSource; catalog: EndpointCatalog; kernel: VipKernel; log: Logger }) {}

  start(): void {
    if (!this.o.kernel.forget) return;
    this.last = this.o.source.vips();
    this.unsubscribe = this.o.source.subscribe((vips) => this.onModel(vips));
  }

  stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    return this.queue;
  }

  /** Resolves when the deletions asked for so far are done (tests). */
  settled(): Promise<void> {
    return this.queue;
  }

  private onModel(vips: readonly VipView[]): void {
    const before = this.last;
    this.last = vips;
    const now = new Set<string>();
    for (const v of vips) for (const b of v.backends) now.add(b.ip);
    // Cheap check first: only backends that left the model can have gone addresses.
    if (before.every((v) => v.backends.every((b) => now.has(b.ip)))) return;
    const live = new Set<string>();
    for (const e of this.o.catalog.list()) for (const a of e.addresses) live.add(a);
    const flows = goneFlows(before, live);
    if (!flows.length) return;
    const forget = this.o.kernel.forget!.bind(this.o.kernel);
    this.queue = this.queue.then(async () => {
      try {
        const n = await forget(flows);
        if (this.failing) this.o.log.info('vip flows forgotten again');
        this.failing = false;
        this.o.log.info('flows to gone VIP backends forgotten', { backends: [...new Set(flows.map((f) => formatIp(f.replySrc)))], entries: n });
      } catch (err) {
        if (!this.failing) this.o.log.warn('cannot forget flows to gone VIP backends; UDP clients may keep sending to them', { error: asVxnetError(err).message });
        this.failing = true;
      }
    });
  }
}
