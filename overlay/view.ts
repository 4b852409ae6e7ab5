// What one host's VXLAN device should hold, kept up to date one peer at a time (issue 17).
//
// A full reconciliation (overlay/apply.ts: read the kernel, diff against desiredEntries) costs
// three dumps and a pass over every peer: fine at start-up, after a lost watch or a compaction,
// and as a slow periodic check, but at 5,000 hosts it made each join cost ~2 s on every host.
// This view holds the desired entries keyed as the kernel is (neighbour by VTEP IP, FDB by MAC,
// route by block) with the peer each came from; a changed peer yields the diff of its own
// entries only, so per-event work is proportional to the change. It answers with exactly what
// desiredEntries would give for the same peers (test/unit/overlay-view.test.ts checks that
// against random histories): a change that touches a clash between peers (two peers with one MAC
// or one block: a misconfiguration, or a block mid-reclaim), or any peer left out by an earlier
// clash, is resolved by recomputing the whole desired set in memory (no kernel read) and
// diffing it against the previous one.
//
// The view also tells the kernel's echo of our own changes from damage done by someone else
// (`explains`): every netlink notification on the device that agrees with the view is ours.
// Pure: no I/O.
import { Cidr, Ip, formatCidr, formatIp } from '../ipam/addr';
import {
  Conflict, EMPTY, Entries, EntryDiff, FdbEntry, NeighEntry, Peer, PeerEvent, RouteEntry, desiredEntries, diffEntries, diffPeers, entriesFor,
} from './plan';

const neighKey = (ip: Ip): string => formatIp(ip);
const routeKey = (dst: Cidr): string => formatCidr(dst);
const macKey = (mac: string): string => mac.toLowerCase();

const samePeer = (a: Peer, b: Peer): boolean => diffPeers([a], [b]).length === 0;

/** A change the kernel announced on the device, in the view's terms (net/rtnl.ts RtnlChange narrowed). */
export type KernelEntryChange =
  | { readonly what: 'neigh'; readonly op: 'new' | 'del'; readonly ip: Ip; readonly mac: string; readonly permanent: boolean }
  | { readonly what: 'fdb'; readonly op: 'new' | 'del'; readonly mac: string; readonly dst: Ip | undefined }
  | { readonly what: 'route'; readonly op: 'new' | 'del'; readonly dst: Cidr; readonly gw: Ip | undefined };

export interface ViewUpdate {
  /** What to change on the device (deletions and additions; apply.ts orders them). */
  readonly diff: EntryDiff;
  /** Peers that joined, left or changed (for the log). */
  readonly events: PeerEvent[];
  /** Peers left out because they clash with another (after this update). */
  readonly conflicts: Conflict[];
  /** True when the update needed the whole desired set recomputed (a clash was involved). */
  readonly recomputed: boolean;
}

export class DesiredView {
  /** Every peer but this host, as last applied. */
  private readonly peers = new Map<string, Peer>();
  /** The entries each peer contributes (absent for a peer left out by a clash). */
  private readonly byPeer = new Map<string, Entries>();
  private readonly neigh = new Map<string, { e: NeighEntry; owner: string }>();
  private readonly fdb = new Map<string, { e: FdbEntry; owner: string }>();
  private readonly routes = new Map<string, { e: RouteEntry; owner: string }>();
  private conflicts: Conflict[] = [];
  /** Entries removed by drop() during one update, per peer (the "before" of its diff). */
  private readonly dropped = new Map<string, Entries>();

  constructor(readonly selfId: string) {}

  get size(): number {
    return this.peers.size;
  }

  peerList(): Peer[] {
    return [...this.peers.values()];
  }

  /** The whole desired set (what a full reconciliation programs). */
  entries(): Entries {
    return {
      neigh: [...this.neigh.values()].map((x) => x.e),
      fdb: [...this.fdb.values()].map((x) => x.e),
      routes: [...this.routes.values()].map((x) => x.e),
    };
  }

  /** Replaces every peer (start-up, a watch's reset); returns what changed against the previous set. */
  reset(peers: Iterable<Peer>): ViewUpdate {
    const before = this.entries();
    const old = [...this.peers.values()];
    this.peers.clear();
    for (const p of peers) if (p.id !== this.selfId) this.peers.set(p.id, p);
    this.rebuild();
    return { diff: diffEntries(this.entries(), before), events: diffPeers(old, this.peers.values()), conflicts: this.conflicts, recomputed: true };
  }

  /**
   * Applies changed peers: each id maps to its new record, or undefined when it left. The diff
   * covers only their entries, unless a clash is involved (see the top).
   */
  update(changes: ReadonlyMap<string, Peer | undefined>): ViewUpdate {
    const events: PeerEvent[] = [];
    const changed = new Map<string, Peer | undefined>();
    for (const [id, next] of changes) {
      if (id === this.selfId) continue;
      const prev = this.peers.get(id);
      if (!prev && !next) continue;
      if (prev && next && samePeer(prev, next)) continue;
      events.push(!prev ? { type: 'join', peer: next as Peer } : !next ? { type: 'leave', peer: prev } : { type: 'change', peer: next, before: prev });
      changed.set(id, next);
    }
    const empty: EntryDiff = { set: EMPTY, del: EMPTY };
    if (changed.size === 0) return { diff: empty, events, conflicts: this.conflicts, recomputed: false };
    const clash = this.conflicts.length > 0 || this.clashes(changed);
    for (const [id, next] of changed) {
      if (next) this.peers.set(id, next);
      else this.peers.delete(id);
    }
    if (clash) {
      const before = this.entries();
      this.rebuild();
      return { diff: diffEntries(this.entries(), before), events, conflicts: this.conflicts, recomputed: true };
    }
    const set: { neigh: NeighEntry[]; fdb: FdbEntry[]; routes: RouteEntry[] } = { neigh: [], fdb: [], routes: [] };
    const del: { neigh: NeighEntry[]; fdb: FdbEntry[]; routes: RouteEntry[] } = { neigh: [], fdb: [], routes: [] };
    // Old entries out first, then the new ones in: one peer's block may pass to another in one batch.
    for (const id of changed.keys()) this.drop(id);
    for (const next of changed.values()) if (next) this.add(next);
    // The diff: per key, what the view holds now against what it held (keys are disjoint across
    // peers here, so each peer's diff stands alone).
    for (const [id] of changed) {
      const was = this.dropped.get(id) ?? EMPTY;
      const now = this.byPeer.get(id) ?? EMPTY;
      const d = diffEntries(now, was);
      set.neigh.push(...d.set.neigh); set.fdb.push(...d.set.fdb); set.routes.push(...d.set.routes);
      del.neigh.push(...d.del.neigh); del.fdb.push(...d.del.fdb); del.routes.push(...d.del.routes);
    }
    this.dropped.clear();
    // A key deleted for one peer and set for another in this batch: keep only the set (apply.ts
    // deletes first, then sets, so both would also work; this saves the kernel a round trip and
    // the route a gap).
    const setKeys = { neigh: new Set(set.neigh.map((n) => neighKey(n.ip))), fdb: new Set(set.fdb.map((f) => macKey(f.mac))), routes: new Set(set.routes.map((r) => routeKey(r.dst))) };
    return {
      diff: {
        set,
        del: {
          neigh: del.neigh.filter((n) => !setKeys.neigh.has(neighKey(n.ip))),
          fdb: del.fdb.filter((f) => !setKeys.fdb.has(macKey(f.mac))),
          routes: del.routes.filter((r) => !setKeys.routes.has(routeKey(r.dst))),
        },
      },
      events, conflicts: this.conflicts, recomputed: false,
    };
  }

  /**
   * True when a kernel notification on the device agrees with the view: the echo of our own
   * change (or of something we do not manage). False: someone else changed one of our entries,
   * or added one we do not want; a full reconciliation puts it right.
   */
  explains(c: KernelEntryChange): boolean {
    switch (c.what) {
      case 'route': {
        if (c.gw === undefined) return true; // not one of ours (apply.ts manages routes via a gateway)
        const want = this.routes.get(routeKey(c.dst))?.e;
        const matches = want !== undefined && want.via.family === c.gw.family && want.via.value === c.gw.value;
        return c.op === 'new' ? matches : !matches;
      }
      case 'neigh': {
        const want = this.neigh.get(neighKey(c.ip))?.e;
        if (c.op === 'del') return want === undefined;
        // A non-permanent entry is the kernel's own (resolution; also reported, without a MAC,
        // while one of ours is replaced). Ours being removed arrives as a deletion.
        if (!c.permanent) return true;
        return want !== undefined && want.mac.toLowerCase() === c.mac.toLowerCase();
      }
      case 'fdb': {
        if (c.dst === undefined) return true; // the device's own entries, not a remote
        const want = this.fdb.get(macKey(c.mac))?.e;
        const matches = want !== undefined && want.dst.family === c.dst.family && want.dst.value === c.dst.value;
        return c.op === 'new' ? matches : !matches;
      }
    }
  }

  // --- internals ----------------------------------------------------------------------------

  /** Whether the changed peers' new entries would collide with another peer's (or each other's). */
  private clashes(changed: ReadonlyMap<string, Peer | undefined>): boolean {
    const macs = new Map<string, string>();
    const blocks = new Map<string, string>();
    for (const [id, next] of changed) {
      if (!next) continue;
      const e = entriesFor(next);
      for (const f of e.fdb) {
        const k = macKey(f.mac);
        const owner = this.fdb.get(k)?.owner;
        if ((owner !== undefined && owner !== id && !changed.has(owner)) || (macs.has(k) && macs.get(k) !== id)) return true;
        macs.set(k, id);
      }
      for (const r of e.routes) {
        const k = routeKey(r.dst);
        const owner = this.routes.get(k)?.owner;
        if ((owner !== undefined && owner !== id && !changed.has(owner)) || (blocks.has(k) && blocks.get(k) !== id)) return true;
        blocks.set(k, id);
      }
      for (const n of e.neigh) {
        const owner = this.neigh.get(neighKey(n.ip))?.owner;
        if (owner !== undefined && owner !== id && !changed.has(owner)) return true;
      }
    }
    return false;
  }

  private drop(id: string): void {
    const e = this.byPeer.get(id);
    if (!e) return;
    this.byPeer.delete(id);
    this.dropped.set(id, e);
    for (const n of e.neigh) this.neigh.delete(neighKey(n.ip));
    for (const f of e.fdb) this.fdb.delete(macKey(f.mac));
    for (const r of e.routes) this.routes.delete(routeKey(r.dst));
  }

  private add(p: Peer): void {
    const e = entriesFor(p);
    this.byPeer.set(p.id, e);
    for (const n of e.neigh) this.neigh.set(neighKey(n.ip), { e: n, owner: p.id });
    for (const f of e.fdb) this.fdb.set(macKey(f.mac), { e: f, owner: p.id });
    for (const r of e.routes) this.routes.set(routeKey(r.dst), { e: r, owner: p.id });
  }

  /** Recomputes everything from the peers, with desiredEntries' rules for clashes. */
  private rebuild(): void {
    this.byPeer.clear();
    this.neigh.clear();
    this.fdb.clear();
    this.routes.clear();
    const { conflicts } = desiredEntries(this.peers.values(), this.selfId);
    this.conflicts = conflicts;
    const dropped = new Set(conflicts.map((c) => c.dropped));
    for (const p of this.peers.values()) if (!dropped.has(p.id)) this.add(p);
  }
}
