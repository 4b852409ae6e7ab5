// An IpamStore that tells an observer what its transactions allocated and released, once they
// committed (for vxnetd's allocation counters, lib/metrics.ts). Wraps any IpamStore: reads and
// everything else pass through; a transaction that throws (rolled back) reports nothing.
import type { Allocation, IpamStore, IpamTx, Owner } from './types';

export interface IpamEvents {
  /** `count` addresses of `network` allocated for `runtime` ("cni", "docker"). */
  allocated(network: string, runtime: string, count: number): void;
  released(network: string, runtime: string, count: number): void;
}

interface Pending { readonly allocated: Owner[]; readonly released: Allocation[] }

function observedTx(tx: IpamTx, p: Pending): IpamTx {
  const own: Partial<IpamTx> = {
    reserve: async (owner: Owner, ip: Parameters<IpamTx['reserve']>[1], rangeSet: number) => {
      const ok = await tx.reserve(owner, ip, rangeSet);
      if (ok) p.allocated.push(owner);
      return ok;
    },
    releaseByOwner: async (...a: Parameters<IpamTx['releaseByOwner']>) => {
      const out = await tx.releaseByOwner(...a);
      p.released.push(...out);
      return out;
    },
    releaseAddress: async (...a: Parameters<IpamTx['releaseAddress']>) => {
      const out = await tx.releaseAddress(...a);
      if (out) p.released.push(out);
      return out;
    },
  };
  // The others are the transaction's own, called on it.
  return new Proxy(tx, {
    get: (target, prop, _receiver) => {
      if (Object.prototype.hasOwnProperty.call(own, prop)) return own[prop as keyof IpamTx];
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Counts per (network, runtime): the events of one committed transaction. Pure. */
export function tally(items: readonly Owner[]): Map<string, { network: string; runtime: string; count: number }> {
  const out = new Map<string, { network: string; runtime: string; count: number }>();
  for (const o of items) {
    const k = `${o.network}\u0000${o.runtime}`;
    const e = out.get(k);
    if (e) e.count++;
    else out.set(k, { network: o.network, runtime: o.runtime, count: 1 });
  }
  return out;
}

export function observeStore(store: IpamStore, events: IpamEvents): IpamStore {
  return {
    get description() { return store.description; },
    view: (fn) => store.view(fn),
    check: () => store.check(),
    close: () => store.close(),
    withLock: async <T>(fn: (tx: IpamTx) => Promise<T>): Promise<T> => {
      const p: Pending = { allocated: [], released: [] };
      const out = await store.withLock((tx) => fn(observedTx(tx, p)));
      for (const e of tally(p.allocated).values()) events.allocated(e.network, e.runtime, e.count);
      for (const e of tally(p.released).values()) events.released(e.network, e.runtime, e.count);
      return out;
    },
  };
}
