// The VIP model kept up to date change by change: the catalog's change batches (endpoints
// added, changed, removed) are applied to per-VIP backend sets, and only the VIPs they touched
// are recomputed, so a change with 10,000 endpoints present costs what the change touches, not
// the catalog. Pure: the named VIPs' addresses come in through `addressesOf`, as in ./model.ts,
// whose full build (`buildVips` + `entriesOf`) stays the reference: `rebuild` starts from it,
// `verify` compares against it, and test/unit/vip-live-model.test.ts checks that both agree
// after every step of random change sequences.
//
// What a recompute gives (`flush`): the kernel entries to put and to remove (an entry is one
// VIP address, protocol and port; two VIPs landing on one address share it, as in entriesOf),
// one log line per difference (describeVip), the names still to be claimed, and whether the
// views changed (listeners). Entries are compared by their text, so a change elsewhere in the
// catalog sends nothing.
import type { Endpoint, EndpointChange } from '../catalog/endpoint';
import type { VipAddressesOf } from './address';
import type { VipEntry } from './kernel';
import type { VipProtocol } from './labels';
import { type Contribution, type VipBackendView, type VipProblem, type VipView, buildVips, contributionOf, describeVip, entriesOf, ipOf, textOf } from './model';

export interface VipRefOut { readonly ip: VipEntry['ip']; readonly protocol: VipProtocol; readonly port: number }

export interface LiveChanges {
  /** Kernel entries new or changed. */
  readonly put: VipEntry[];
  /** Kernel entries gone. */
  readonly remove: VipRefOut[];
  /** One line per VIP difference (describeVip). */
  readonly lines: string[];
  /** Named VIPs touched whose addresses are not known yet. */
  readonly unplaced: string[];
  /** Whether any VIP's view changed (the listeners hear it). */
  readonly viewsChanged: boolean;
}

export interface LiveProblems {
  /** Problems that appeared with this batch (to log once). */
  readonly appeared: VipProblem[];
}

interface VipMeta { readonly name?: string; readonly ip?: VipEntry['ip']; readonly protocol: VipProtocol; readonly port: number }

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const entryKeyOf = (address: string, protocol: VipProtocol, port: number): string => `${address}\0${protocol}\0${port}`;

/** An entry's text: equal texts, equal kernel elements. */
export const entryText = (e: VipEntry): string =>
  `${e.ip.family}:${e.ip.value}/${e.protocol}/${e.port}=${e.backends.map((b) => `${b.ip.value}:${b.port}*${b.weight}`).join(',')}`;

export class LiveVipModel {
  /** Per endpoint id: what it contributes (problems, VIPs and their backends). */
  private readonly contributions = new Map<string, Contribution>();
  /** Per VIP key: its description and its backends by (endpoint, address, port). */
  private readonly backends = new Map<string, { meta: VipMeta; set: Map<string, VipBackendView> }>();
  /** Per name: the VIP keys of that name (a claim placing the name touches them). */
  private readonly byName = new Map<string, Set<string>>();
  private readonly views = new Map<string, VipView>();
  /** Per kernel entry key: the VIPs on it (usually one) and the entry as last computed. */
  private readonly entryVips = new Map<string, Set<string>>();
  private readonly entries = new Map<string, { entry: VipEntry; text: string }>();
  private readonly dirty = new Set<string>();

  constructor(private readonly addressesOf: (name: string) => VipAddressesOf | undefined, private readonly ipv6: boolean) {}

  /** Forgets everything and takes `endpoints` as the whole catalog; the next flush puts every entry. */
  rebuild(endpoints: Iterable<Endpoint>): LiveProblems {
    this.contributions.clear();
    this.backends.clear();
    this.byName.clear();
    this.views.clear();
    this.entryVips.clear();
    this.entries.clear();
    this.dirty.clear();
    const appeared: VipProblem[] = [];
    for (const e of endpoints) { const a = this.set(e.id, e).appeared; if (a.length) appeared.push(...a); }
    return { appeared };
  }

  /** Applies a batch of catalog changes; the VIPs they touch are recomputed by the next flush. */
  apply(changes: readonly EndpointChange[]): LiveProblems {
    const appeared: VipProblem[] = [];
    for (const c of changes) { const a = this.set(c.id, c.after).appeared; if (a.length) appeared.push(...a); }
    return { appeared };
  }

  /** A name's addresses became known (claimed): its VIPs are recomputed by the next flush. */
  touchName(name: string): void {
    for (const k of this.byName.get(name) ?? []) this.dirty.add(k);
  }

  /** Names of the VIPs taken in (flushed or not) whose addresses are not known: claimed at start before the first flush. */
  namesToPlace(): string[] {
    const out: string[] = [];
    for (const name of this.byName.keys()) if (!this.addressesOf(name)) out.push(name);
    return out.sort(byText);
  }

  /** Whether a flush has anything to do. */
  get pending(): boolean { return this.dirty.size > 0; }

  /** Recomputes the touched VIPs and their entries. */
  flush(): LiveChanges {
    const lines: string[] = [];
    const unplaced = new Set<string>();
    const touchedEntries = new Set<string>();
    let viewsChanged = false;
    const dirty = [...this.dirty].sort(byText);
    this.dirty.clear();
    for (const key of dirty) {
      const was = this.views.get(key);
      const now = this.viewOf(key, unplaced);
      for (const ek of this.entryKeysOf(was)) { touchedEntries.add(ek); this.entryVips.get(ek)?.delete(key); }
      for (const ek of this.entryKeysOf(now)) {
        touchedEntries.add(ek);
        let s = this.entryVips.get(ek);
        if (!s) this.entryVips.set(ek, (s = new Set()));
        s.add(key);
      }
      if (now) this.views.set(key, now); else this.views.delete(key);
      const l = describeVip(was, now);
      // A view can change without a line (a backend's name or host): still news for listeners.
      if (l.length || !sameView(was, now)) viewsChanged = true;
      lines.push(...l);
    }
    const put: VipEntry[] = [];
    const remove: VipRefOut[] = [];
    for (const ek of touchedEntries) {
      const on = this.entryVips.get(ek);
      if (on && on.size === 0) this.entryVips.delete(ek);
      const next = on && on.size ? this.entryOf(ek, [...on].sort(byText)) : undefined;
      const prev = this.entries.get(ek);
      if (!next) {
        if (prev) { this.entries.delete(ek); remove.push({ ip: prev.entry.ip, protocol: prev.entry.protocol, port: prev.entry.port }); }
        continue;
      }
      const text = entryText(next);
      if (prev?.text === text) continue;
      this.entries.set(ek, { entry: next, text });
      put.push(next);
    }
    return { put, remove, lines, unplaced: [...unplaced].sort(), viewsChanged };
  }

  /** The VIPs, sorted by key (O(n log n): for listeners and the API, not per change). */
  vips(): VipView[] {
    return [...this.views.entries()].sort(([a], [b]) => byText(a, b)).map(([, v]) => v);
  }

  /** Every kernel entry as last flushed. */
  allEntries(): VipEntry[] {
    return [...this.entries.values()].map((e) => e.entry);
  }

  /** Names of VIPs whose addresses are not known (the whole model). */
  unplacedNames(): string[] {
    const out = new Set<string>();
    for (const v of this.views.values()) if (v.name !== undefined && v.addresses.length === 0) out.add(v.name);
    return [...out].sort();
  }

  /**
   * Compares the model (after a flush) with a full build from `endpoints`: undefined when
   * equal, else what differs first (a bug: the caller logs it and rebuilds).
   */
  verify(endpoints: Iterable<Endpoint>): string | undefined {
    const full = buildVips(endpoints, this.addressesOf, this.ipv6);
    const mine = this.vips();
    if (full.vips.length !== mine.length) return `${mine.length} VIPs, a full build has ${full.vips.length}`;
    for (let i = 0; i < mine.length; i++) {
      if (JSON.stringify(mine[i]) !== JSON.stringify(full.vips[i])) return `VIP ${full.vips[i]?.vip ?? '?'} differs from a full build`;
    }
    const a = entriesOf(full.vips).map(entryText).sort();
    const b = this.allEntries().map(entryText).sort();
    if (a.join('\n') !== b.join('\n')) return `kernel entries differ from a full build (${b.length} vs ${a.length})`;
    return undefined;
  }

  private set(id: string, e: Endpoint | undefined): LiveProblems {
    const old = this.contributions.get(id);
    const next = e ? contributionOf(e, this.ipv6) : undefined;
    if (old === next) return NOTHING;
    for (const item of old?.items ?? []) {
      const b = this.backends.get(item.key);
      if (b) {
        for (const [k] of item.backends) b.set.delete(k);
        if (b.set.size === 0) {
          this.backends.delete(item.key);
          if (b.meta.name !== undefined) {
            const names = this.byName.get(b.meta.name);
            names?.delete(item.key);
            if (names?.size === 0) this.byName.delete(b.meta.name);
          }
        }
      }
      this.dirty.add(item.key);
    }
    for (const item of next?.items ?? []) {
      let b = this.backends.get(item.key);
      if (!b) {
        this.backends.set(item.key, (b = { meta: item.vip, set: new Map() }));
        if (item.vip.name !== undefined) {
          let names = this.byName.get(item.vip.name);
          if (!names) this.byName.set(item.vip.name, (names = new Set()));
          names.add(item.key);
        }
      }
      for (const [k, v] of item.backends) b.set.set(k, v);
      this.dirty.add(item.key);
    }
    if (next) this.contributions.set(id, next); else this.contributions.delete(id);
    if (!next?.problems.length) return NOTHING;
    const seen = new Set((old?.problems ?? []).map(problemKey));
    return { appeared: next.problems.filter((p) => !seen.has(problemKey(p))) };
  }

  /** A VIP's view from its backend set (as buildVips makes it), or undefined when no endpoint asks for it. */
  private viewOf(key: string, unplaced: Set<string>): VipView | undefined {
    const b = this.backends.get(key);
    if (!b) return undefined;
    const v = b.meta;
    let addresses: string[];
    if (v.ip) addresses = [textOf(v.ip)];
    else {
      const placed = this.addressesOf(v.name as string);
      if (!placed) unplaced.add(v.name as string);
      addresses = placed ? [textOf(placed.v4), ...(placed.v6 && this.ipv6 ? [textOf(placed.v6)] : [])] : [];
    }
    const backends = [...b.set.values()].sort((x, y) => byText(x.endpoint, y.endpoint) || byText(x.ip, y.ip) || x.port - y.port);
    return { vip: key, ...(v.name !== undefined ? { name: v.name } : {}), addresses, protocol: v.protocol, port: v.port, backends };
  }

  private entryKeysOf(v: VipView | undefined): string[] {
    return v ? v.addresses.filter((a) => ipOf(a) !== undefined).map((a) => entryKeyOf(a, v.protocol, v.port)) : [];
  }

  /** The entry `ek` of the VIPs on it: entriesOf over just them (in key order, as a full build meets them). */
  private entryOf(ek: string, keys: readonly string[]): VipEntry | undefined {
    const vs = keys.map((k) => this.views.get(k)).filter((v): v is VipView => v !== undefined);
    // One VIP with one address (the common case): its one entry is ek's.
    if (vs.length === 1 && vs[0]?.addresses.length === 1) return entriesOf(vs)[0];
    // entriesOf makes one entry per address of each view (a named VIP: IPv4 and IPv6); the one wanted is ek.
    return entriesOf(vs).find((e) => entryKeyOf(textOf(e.ip), e.protocol, e.port) === ek);
  }
}

const NOTHING: LiveProblems = { appeared: [] };

const problemKey = (p: VipProblem): string => `${p.endpoint}\0${p.label}\0${p.problem}`;

function sameView(a: VipView | undefined, b: VipView | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}
