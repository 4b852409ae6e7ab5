// Server slots: every backend is written with a fixed number of server lines (`s1`..`sN`),
// filled ones with a container's address, free ones disabled. A container started or stopped
// then changes what one slot holds, which HAProxy's Runtime API does without a reload
// (`set server B/sK addr ...`, `state ready|drain|maint`). Pure.
//
// A server keeps its slot for as long as it lives (its stats, its sticky cookie `sK`, its
// health state stay its own). A slot vacated in this step is not given to a new server in the
// same step while another free slot exists, so the leaving server can drain in it first.
// Capacity grows (a reload) when the servers no longer fit: to the next power of two at
// least twice the servers, so scaling up by doubling needs one reload, not one per container.
import type { Backend, EdgeModel, Server, Tls } from './model';

export interface PlacedBackend extends Omit<Backend, 'servers'> {
  /** Slot i is server `s${i + 1}`; undefined: free. */
  readonly slots: ReadonlyArray<Server | undefined>;
}

export interface PlacedModel {
  readonly backends: readonly PlacedBackend[];
  readonly tls?: Tls;
}

export const DEFAULT_MIN_SLOTS = 8;
export const slotName = (i: number): string => `s${i + 1}`;

function capacityFor(n: number, min: number): number {
  let c = Math.max(1, min);
  while (c < n * 2) c *= 2;
  return c;
}

export function placeBackend(prev: PlacedBackend | undefined, b: Backend, minSlots: number): PlacedBackend {
  const { servers, ...settings } = b;
  const byId = new Map(servers.map((s) => [s.id, s]));
  let capacity = prev?.slots.length ?? 0;
  if (capacity < servers.length || capacity === 0) capacity = capacityFor(servers.length, minSlots);
  const slots: Array<Server | undefined> = new Array<Server | undefined>(capacity).fill(undefined);
  const placed = new Set<string>();
  const vacated: number[] = [];
  prev?.slots.forEach((s, i) => {
    if (!s || i >= capacity) return;
    const now = byId.get(s.id);
    if (now) { slots[i] = now; placed.add(s.id); } else vacated.push(i);
  });
  const free = slots.map((s, i) => (s ? -1 : i)).filter((i) => i >= 0 && !vacated.includes(i));
  free.push(...vacated); // reused only when nothing else is free
  for (const s of servers) {
    if (placed.has(s.id)) continue;
    const i = free.shift() as number;
    slots[i] = s;
  }
  return { ...settings, slots };
}

/** Places every backend of `next`, keeping the slots `prev` gave its servers. */
export function place(prev: PlacedModel | undefined, next: EdgeModel, minSlots = DEFAULT_MIN_SLOTS): PlacedModel {
  const before = new Map((prev?.backends ?? []).map((b) => [b.name, b]));
  return { backends: next.backends.map((b) => placeBackend(before.get(b.name), b, minSlots)), ...(next.tls ? { tls: next.tls } : {}) };
}
