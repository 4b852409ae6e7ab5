// From the running placed model to the next: nothing, server changes HAProxy's Runtime API
// makes in place, or a reload. Pure.
//
// Server-only means: the same backends with the same settings and the same number of slots,
// only what slots hold differs. Then per slot:
//   free -> server      `set server B/sK addr A port P`, `set weight`, `state ready`
//                       (and `enable health` when the backend checks: a disabled slot's
//                       check is not running)
//   server -> free      `state drain` (no new requests; those in flight finish), then, once
//                       the server has no connections or the drain time is up, `state maint`
//   same id, new addr   drained and refilled: a container does not change address in place,
//                       so this is a new server in the old one's slot
//   weight only         `set weight`
// Anything else (a backend added or removed, a vhost, a port, a mode, a slot count, a
// certificate) is a reload.
import { slotName, type PlacedBackend, type PlacedModel } from './slots';
import type { Server } from './model';

export type ServerOp =
  | { readonly op: 'fill'; readonly backend: string; readonly slot: string; readonly server: Server; readonly check: boolean }
  | { readonly op: 'drain'; readonly backend: string; readonly slot: string; readonly server: Server }
  | { readonly op: 'weight'; readonly backend: string; readonly slot: string; readonly weight: number };

export type Change =
  | { readonly kind: 'none' }
  | { readonly kind: 'servers'; readonly ops: readonly ServerOp[] }
  | { readonly kind: 'reload'; readonly reasons: readonly string[] };

const settingsOf = (b: PlacedBackend): string => {
  const { slots, ...rest } = b;
  return JSON.stringify({ ...rest, slotCount: slots.length });
};

/** Why `prev` cannot become `next` in place; [] when it can. */
export function reloadReasons(prev: PlacedModel, next: PlacedModel): string[] {
  const reasons: string[] = [];
  // Certificates are read when HAProxy loads its config: any change to them is a reload.
  if (JSON.stringify(prev.tls ?? null) !== JSON.stringify(next.tls ?? null)) reasons.push('certificates changed');
  const before = new Map(prev.backends.map((b) => [b.name, b]));
  const after = new Map(next.backends.map((b) => [b.name, b]));
  for (const name of after.keys()) if (!before.has(name)) reasons.push(`backend ${name} added`);
  for (const name of before.keys()) if (!after.has(name)) reasons.push(`backend ${name} removed`);
  for (const [name, b] of after) {
    const a = before.get(name);
    if (!a) continue;
    if (a.slots.length !== b.slots.length) reasons.push(`backend ${name}: ${a.slots.length} -> ${b.slots.length} slots`);
    else if (settingsOf(a) !== settingsOf(b)) reasons.push(`backend ${name}: settings changed`);
  }
  return reasons;
}

export function serverOps(prev: PlacedModel, next: PlacedModel): ServerOp[] {
  const ops: ServerOp[] = [];
  const before = new Map(prev.backends.map((b) => [b.name, b]));
  for (const b of next.backends) {
    const a = before.get(b.name);
    if (!a) continue;
    b.slots.forEach((s, i) => {
      const old = a.slots[i];
      const slot = slotName(i);
      const sameServer = old && s && old.id === s.id && old.address === s.address && old.port === s.port;
      if (sameServer) {
        if (old.weight !== s.weight) ops.push({ op: 'weight', backend: b.name, slot, weight: s.weight });
        return;
      }
      if (old) ops.push({ op: 'drain', backend: b.name, slot, server: old });
      if (s) ops.push({ op: 'fill', backend: b.name, slot, server: s, check: b.health !== undefined });
    });
  }
  return ops;
}

export function classify(prev: PlacedModel | undefined, next: PlacedModel): Change {
  if (!prev) return { kind: 'reload', reasons: ['first configuration'] };
  const reasons = reloadReasons(prev, next);
  if (reasons.length) return { kind: 'reload', reasons };
  const ops = serverOps(prev, next);
  return ops.length ? { kind: 'servers', ops } : { kind: 'none' };
}

/** Runtime API commands for one op (drain's second half, `state maint`, is `afterDrain`). */
export function commandsFor(op: ServerOp): string[] {
  const ref = `${op.backend}/${op.slot}`;
  switch (op.op) {
    case 'fill': return [
      `set server ${ref} addr ${op.server.address} port ${op.server.port}`,
      `set weight ${ref} ${op.server.weight}`,
      ...(op.check ? [`enable health ${ref}`] : []),
      `set server ${ref} state ready`,
    ];
    case 'drain': return [`set server ${ref} state drain`];
    case 'weight': return [`set weight ${ref} ${op.weight}`];
  }
}

/** After a drain: the slot goes to maintenance with the free slots' placeholder address. */
export function afterDrain(op: Extract<ServerOp, { op: 'drain' }>): string[] {
  const ref = `${op.backend}/${op.slot}`;
  return [`set server ${ref} state maint`, `set server ${ref} addr 0.0.0.0 port 0`];
}
