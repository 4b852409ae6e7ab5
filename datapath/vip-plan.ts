// The VIP table's pure core: the fixed skeleton of the nftables table, the elements a set of
// VIPs needs, the diff between two such states and the nft text that applies it. No I/O here;
// `vip-table.ts` sends what this renders.
//
// Shape (the kernel pays per chain, ~2 ms each, not per map element; see datapath/README.md):
//   services4/services6   verdict maps  ADDR . PROTO . PORT : goto pickN
//   pickN (N = 1..MAX)    numgen random mod N vmap { 0 : goto slot0, ..., N-1 : goto slotN-1 }
//   slotK (K < MAX)       dnat to ADDR . PROTO . PORT map @slotK_4 (and @slotK_6)
//   hairpin4/6            sets of BACKEND . BACKEND: masqueraded when a client reached itself
//   noep4/6               VIPs without backends: new connections rejected (TCP reset, ICMP)
// A VIP with N slots is one services element and one element in each of slot0..slotN-1, so
// the chains are a fixed 2 x MAX whatever the number of VIPs, and a change to a VIP is a few
// element deletes and adds in one transaction. Weights are slots: a backend of weight 2 takes
// two of its VIP's slots.
import { InvalidNetworkConfig } from '../lib/errors';
import { formatIp, parseIp, type Ip } from '../ipam/addr';
import type { NftPacked, NftSetOps } from '../net/nft-netlink';

export type VipProtocol = 'tcp' | 'udp';
export interface VipBackend { readonly ip: Ip; readonly port: number; readonly weight: number }
export interface VipEntry {
  readonly ip: Ip;
  readonly protocol: VipProtocol;
  readonly port: number;
  readonly backends: readonly VipBackend[];
}

/** Slots a VIP may use: the number of pick and slot chains in the table. */
export const MAX_SLOTS = 64;

/** Element key -> element value ('' for a set's element), per map or set name. */
export type VipState = ReadonlyMap<string, ReadonlyMap<string, string>>;

export interface VipDiff {
  /** Per map: keys to delete (also the old key of a changed element). */
  readonly deletes: ReadonlyMap<string, readonly string[]>;
  /** Per map: `key` or `key : value` to add. */
  readonly adds: ReadonlyMap<string, ReadonlyArray<readonly [string, string]>>;
  readonly added: number;
  readonly removed: number;
}

const fam = (ip: Ip): '4' | '6' => (ip.family === 4 ? '4' : '6');

/**
 * Backend index per slot: weights divided by their common divisor and, when they add up to
 * more than MAX_SLOTS, scaled down (each backend keeps at least one slot). Pure.
 */
export function slotsFor(weights: readonly number[]): number[] {
  if (weights.length === 0) return [];
  const g = weights.reduce((a, b) => gcd(a, b));
  let shares = weights.map((w) => w / g);
  const total = shares.reduce((a, b) => a + b, 0);
  if (total > MAX_SLOTS) {
    shares = shares.map((w) => Math.max(1, Math.floor((w * MAX_SLOTS) / total)));
    // Flooring to at least one can still overshoot: take slots from the largest shares.
    let sum = shares.reduce((a, b) => a + b, 0);
    while (sum > MAX_SLOTS) {
      const i = shares.indexOf(Math.max(...shares));
      shares[i] = (shares[i] as number) - 1;
      sum--;
    }
  }
  const slots: number[] = [];
  shares.forEach((s, i) => { for (let k = 0; k < s; k++) slots.push(i); });
  return slots;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

const isPort = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;

/** The text of a VIP in errors and keys: `tcp 10.0.0.1:80`, `udp [fd00::1]:53`. */
export function vipName(e: Pick<VipEntry, 'ip' | 'protocol' | 'port'>): string {
  const a = formatIp(e.ip);
  return `${e.protocol} ${e.ip.family === 6 ? `[${a}]` : a}:${e.port}`;
}

/** Throws InvalidNetworkConfig naming the VIP and the field for anything the table cannot express. */
export function validateVips(entries: readonly VipEntry[]): void {
  validatedKeys(entries);
}

/** validateVips, returning each entry's key (vipKeyOf). */
function validatedKeys(entries: readonly VipEntry[]): string[] {
  const seen = new Set<string>();
  const keys: string[] = [];
  for (const e of entries) {
    if (e.protocol !== 'tcp' && e.protocol !== 'udp') throw new InvalidNetworkConfig(`VIP ${formatIp(e.ip)}: protocol must be tcp or udp, not "${String(e.protocol)}"`);
    if (!isPort(e.port)) throw new InvalidNetworkConfig(`VIP ${formatIp(e.ip)}: port ${e.port} is not a port (1-65535)`);
    const key = vipKeyOf(e);
    if (seen.has(key)) throw new InvalidNetworkConfig(`VIP ${vipName(e)} is given twice`);
    seen.add(key);
    keys.push(key);
    if (e.backends.length > MAX_SLOTS) throw new InvalidNetworkConfig(`VIP ${vipName(e)} has ${e.backends.length} backends; at most ${MAX_SLOTS} are supported`);
    for (const b of e.backends) {
      // Texts only for the error: formatting every backend costs ~10 us each at 30,000 backends.
      const bn = (): string => `${formatIp(b.ip)}:${b.port}`;
      if (b.ip.family !== e.ip.family) throw new InvalidNetworkConfig(`VIP ${vipName(e)}: backend ${bn()} is not of the VIP's address family (IPv${e.ip.family})`);
      if (!isPort(b.port)) throw new InvalidNetworkConfig(`VIP ${vipName(e)}: backend port ${b.port} is not a port (1-65535)`);
      if (!Number.isInteger(b.weight) || b.weight < 1) throw new InvalidNetworkConfig(`VIP ${vipName(e)}: backend ${bn()} has weight ${b.weight}; a weight is an integer >= 1`);
    }
  }
  return keys;
}

/** An address as nft text; IPv4 by hand (ipam/addr's memo holds 4,096 and 10,000 VIPs thrash it). */
function addrText(ip: Ip): string {
  if (ip.family === 6) return formatIp(ip);
  const v = Number(ip.value);
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** What names a VIP in the table: its key in services4/6 and noep4/6 (`10.0.0.1 . tcp . 80`). */
export type VipRef = Pick<VipEntry, 'ip' | 'protocol' | 'port'>;
export const vipKeyOf = (e: VipRef): string => `${addrText(e.ip)} . ${e.protocol} . ${e.port}`;

/** One VIP's own elements (map, key, value) and the hairpin elements it needs (shared between VIPs). */
interface VipElements {
  readonly own: ReadonlyArray<readonly [string, string, string]>;
  readonly hairpins: readonly string[];
}

/** The slots of a VIP's backends; all weights equal (the common case) is one slot each. */
function slotsOf(backends: readonly VipBackend[]): number[] {
  const w0 = backends[0]?.weight;
  if (backends.every((b) => b.weight === w0)) return backends.map((_, i) => i);
  return slotsFor(backends.map((b) => b.weight));
}

/** A VIP's elements as text, for the diff of a changed VIP (a few at a time; the full table is rendered without them). */
function elementsOf(e: VipEntry): VipElements {
  const f = fam(e.ip);
  const key = vipKeyOf(e);
  if (e.backends.length === 0) return { own: [[`noep${f}`, key, '']], hairpins: [] };
  const slots = slotsOf(e.backends);
  const own: Array<readonly [string, string, string]> = [[`services${f}`, key, `goto pick${slots.length}`]];
  const texts = e.backends.map((b) => addrText(b.ip));
  slots.forEach((bi, k) => own.push([`slot${k}_${f}`, key, `${texts[bi] as string} . ${(e.backends[bi] as VipBackend).port}`]));
  return { own, hairpins: texts.map((a) => hairpinRef(f, a)) };
}

/** A hairpin element's reference-count key: the family's digit, then the backend's address text. */
const hairpinRef = (f: '4' | '6', a: string): string => f + a;
const hairpinSet = (ref: string): string => `hairpin${ref[0] as string}`;
const hairpinKey = (ref: string): string => { const a = ref.slice(1); return `${a} . ${a}`; };

/** Every element the VIPs need, per map or set. Validates first. Pure. */
export function desiredState(entries: readonly VipEntry[]): VipState {
  const index = new VipIndex();
  index.replaceAll(entries);
  return index.state();
}

/** The bytes of an address (network order). */
function addrBytes(ip: Ip, out: Uint8Array, at: number): void {
  if (ip.family === 4) {
    const v = Number(ip.value);
    out[at] = v >>> 24; out[at + 1] = (v >>> 16) & 255; out[at + 2] = (v >>> 8) & 255; out[at + 3] = v & 255;
    return;
  }
  let v = ip.value;
  for (let i = 15; i >= 0; i--) { out[at + i] = Number(v & 255n); v >>= 8n; }
}

/** A VIP's key into `out` (ADDR . PROTO . PORT, each field padded to 4 bytes); its length (12 or 24). */
function keyInto(e: VipRef, out: Uint8Array): number {
  const n = e.ip.family === 4 ? 4 : 16;
  addrBytes(e.ip, out, 0);
  out[n] = e.protocol === 'tcp' ? 6 : 17; out[n + 1] = 0; out[n + 2] = 0; out[n + 3] = 0;
  out[n + 4] = e.port >> 8; out[n + 5] = e.port & 255; out[n + 6] = 0; out[n + 7] = 0;
  return n + 8;
}

/** One set's elements, packed: keys (and values, or verdict indexes) in growing byte arrays. */
class Pack {
  count = 0;
  keys: Uint8Array;
  values: Uint8Array | undefined;
  gotoOf: Uint8Array | undefined;
  private cap = 256;

  constructor(readonly keyLen: number, readonly valueLen: number, readonly verdict: boolean) {
    this.keys = new Uint8Array(this.cap * keyLen);
    this.values = valueLen ? new Uint8Array(this.cap * valueLen) : undefined;
    this.gotoOf = verdict ? new Uint8Array(this.cap) : undefined;
  }

  /** Adds an element with the first keyLen bytes of `key` (its value, if any, is written by the caller). */
  add(key: Uint8Array): void {
    if (this.count === this.cap) {
      this.cap *= 2;
      const grow = (a: Uint8Array, per: number): Uint8Array => { const b = new Uint8Array(this.cap * per); b.set(a); return b; };
      this.keys = grow(this.keys, this.keyLen);
      if (this.values) this.values = grow(this.values, this.valueLen);
      if (this.gotoOf) this.gotoOf = grow(this.gotoOf, 1);
    }
    const at = this.count * this.keyLen;
    for (let i = 0; i < this.keyLen; i++) this.keys[at + i] = key[i] as number;
    this.count++;
  }

  packed(): NftPacked {
    return {
      count: this.count, keyLen: this.keyLen, keys: this.keys,
      ...(this.values ? { valueLen: this.valueLen, values: this.values } : {}),
      ...(this.gotoOf ? { gotos: PICK_CHAINS, gotoOf: this.gotoOf } : {}),
    };
  }
}

/** Verdict targets by slot count: pick0 (unused) .. pick64. */
const PICK_CHAINS = Array.from({ length: MAX_SLOTS + 1 }, (_, n) => `pick${n}`);

/**
 * The desired table kept per VIP, so that a change to a few VIPs costs those VIPs' elements,
 * not the table's: `change` swaps some VIPs and returns the element diff (shared hairpin
 * elements counted by reference). Each VIP is kept as the entry it was handed (entries are
 * read-only), so a full load of 10,000 VIPs makes no per-element objects: the whole table's
 * elements are rendered or encoded straight from the entries. Pure (in-memory state only).
 */
export class VipIndex {
  private readonly vips = new Map<string, VipEntry>();
  /** Per backend address (hairpinRef): how many VIPs have it as a backend. */
  private readonly hairpinRefs = new Map<string, number>();

  get size(): number { return this.vips.size; }

  /**
   * Removes the VIPs of `remove` (unknown ones are ignored), then puts those of `put` (a VIP
   * already there is replaced). Validates `put` first and changes nothing when it throws.
   */
  change(put: readonly VipEntry[], remove: readonly VipRef[], wantDiff = true): VipDiff {
    const keys = validatedKeys(put);
    return this.changeKeys(put, keys, remove.map(vipKeyOf), wantDiff);
  }

  /** Makes `entries` the whole state: the VIPs not among them are removed. */
  replaceAll(entries: readonly VipEntry[], wantDiff = true): VipDiff {
    const keys = validatedKeys(entries);
    const keep = new Set(keys);
    const remove: string[] = [];
    for (const k of this.vips.keys()) if (!keep.has(k)) remove.push(k);
    return this.changeKeys(entries, keys, remove, wantDiff);
  }

  /** wantDiff false: the state changes, the diff is not worked out (a full replace follows; at a start that is 40,000 elements). */
  private changeKeys(put: readonly VipEntry[], putKeys: readonly string[], remove: readonly string[], wantDiff: boolean): VipDiff {
    const deletes = new Map<string, string[]>();
    const adds = new Map<string, Array<readonly [string, string]>>();
    let added = 0;
    let removed = 0;
    if (!wantDiff) {
      for (const k of remove) { const old = this.vips.get(k); if (old) { this.refs(old, -1); this.vips.delete(k); } }
      put.forEach((e, i) => {
        const k = putKeys[i] as string;
        const old = this.vips.get(k);
        if (old) this.refs(old, -1);
        this.refs(e, 1);
        this.vips.set(k, e);
      });
      for (const [h, n] of this.hairpinRefs) if (n <= 0) this.hairpinRefs.delete(h);
      return { deletes, adds, added, removed };
    }
    const touched = new Map<string, VipEntry | undefined>();
    for (const k of remove) touched.set(k, undefined);
    put.forEach((e, i) => touched.set(putKeys[i] as string, e));
    const push = <T>(m: Map<string, T[]>, k: string, v: T): void => { let a = m.get(k); if (!a) m.set(k, (a = [])); a.push(v); };
    const refDelta = new Map<string, number>();
    for (const [key, nextEntry] of touched) {
      const oldEntry = this.vips.get(key);
      if (oldEntry === undefined && nextEntry === undefined) continue;
      const old = oldEntry && elementsOf(oldEntry);
      const next = nextEntry && elementsOf(nextEntry);
      if (old === undefined || next === undefined) {
        // A VIP added or removed: its elements as they are, no pairing.
        if (old) for (const [map, k] of old.own) { push(deletes, map, k); removed++; }
        if (next) for (const [map, k, v] of next.own) { push(adds, map, [k, v] as const); added++; }
      } else {
        const was = new Map<string, readonly [string, string, string]>();
        for (const el of old.own) was.set(`${el[0]}\0${el[1]}`, el);
        const now = new Map<string, readonly [string, string, string]>();
        for (const el of next.own) now.set(`${el[0]}\0${el[1]}`, el);
        for (const [mk, [map, k, v]] of was) if (now.get(mk)?.[2] !== v) { push(deletes, map, k); removed++; }
        for (const [mk, [map, k, v]] of now) if (was.get(mk)?.[2] !== v) { push(adds, map, [k, v] as const); added++; }
      }
      for (const h of old?.hairpins ?? []) refDelta.set(h, (refDelta.get(h) ?? 0) - 1);
      for (const h of next?.hairpins ?? []) refDelta.set(h, (refDelta.get(h) ?? 0) + 1);
      if (nextEntry) this.vips.set(key, nextEntry); else this.vips.delete(key);
    }
    for (const [h, d] of refDelta) {
      if (d === 0) continue;
      const before = this.hairpinRefs.get(h) ?? 0;
      const after = before + d;
      if (after > 0) this.hairpinRefs.set(h, after); else this.hairpinRefs.delete(h);
      if (before === 0 && after > 0) { push(adds, hairpinSet(h), [hairpinKey(h), ''] as const); added++; }
      if (before > 0 && after === 0) { push(deletes, hairpinSet(h), hairpinKey(h)); removed++; }
    }
    return { deletes, adds, added, removed };
  }

  /** Counts (d = 1) or uncounts (-1) a VIP's backends in the hairpin references; a count may reach 0 (removed after). */
  private refs(e: VipEntry, d: number): void {
    const f = fam(e.ip);
    for (const b of e.backends) { const h = hairpinRef(f, addrText(b.ip)); this.hairpinRefs.set(h, (this.hairpinRefs.get(h) ?? 0) + d); }
  }

  /** Number of elements. */
  get elements(): number {
    let n = this.hairpinRefs.size;
    for (const e of this.vips.values()) n += e.backends.length === 0 ? 1 : 1 + slotsOf(e.backends).length;
    return n;
  }

  /** renderFull of this state, straight from the entries (one string per element, no intermediate state or diff). */
  renderFull(table: string): string {
    const byMap = new Map<string, string[]>();
    const add = (map: string, el: string): void => { let a = byMap.get(map); if (!a) byMap.set(map, (a = [])); a.push(el); };
    for (const e of this.vips.values()) {
      const f = fam(e.ip);
      const key = vipKeyOf(e);
      if (e.backends.length === 0) { add(`noep${f}`, key); continue; }
      const slots = slotsOf(e.backends);
      add(`services${f}`, `${key} : goto pick${slots.length}`);
      slots.forEach((bi, k) => { const b = e.backends[bi] as VipBackend; add(`slot${k}_${f}`, `${key} : ${addrText(b.ip)} . ${b.port}`); });
    }
    for (const h of this.hairpinRefs.keys()) add(hairpinSet(h), hairpinKey(h));
    const lines: string[] = [];
    for (const [map, els] of byMap) lines.push(`add element inet ${table} ${map} { ${els.join(', ')} }`);
    return `add table inet ${table}\ndelete table inet ${table}\n${renderSkeleton(table)}${lines.join('\n')}${lines.length ? '\n' : ''}`;
  }

  /**
   * Every element in the kernel's binary form, per map or set, for one netlink transaction
   * (net/nft-netlink.ts) that empties every map and set of the skeleton and fills them: the
   * same as renderFull's elements, without nft's parsing. The skeleton must be in place.
   */
  encodeFull(): NftSetOps[] {
    // Packed per set (keys and values back to back in growing byte arrays): no object per
    // element (10,000 VIPs are 40,000 elements).
    const packs = new Map<string, Pack>();
    const pack = (set: string, keyLen: number, valueLen: number, verdict: boolean): Pack => {
      let p = packs.get(set);
      if (!p) packs.set(set, (p = new Pack(keyLen, valueLen, verdict)));
      return p;
    };
    const key = new Uint8Array(32); // the longest key: an IPv6 hairpin element (ADDR . ADDR)
    for (const e of this.vips.values()) {
      const f = fam(e.ip);
      const kl = keyInto(e, key);
      if (e.backends.length === 0) { pack(`noep${f}`, kl, 0, false).add(key); continue; }
      const slots = slotsOf(e.backends);
      const sp = pack(`services${f}`, kl, 0, true);
      sp.add(key);
      (sp.gotoOf as Uint8Array)[sp.count - 1] = slots.length;
      const vl = f === '4' ? 8 : 20;
      for (let k = 0; k < slots.length; k++) {
        const b = e.backends[slots[k] as number] as VipBackend;
        const p = pack(`slot${k}_${f}`, kl, vl, false);
        p.add(key);
        const at = (p.count - 1) * vl;
        const values = p.values as Uint8Array;
        addrBytes(b.ip, values, at);
        values[at + vl - 4] = b.port >> 8;
        values[at + vl - 3] = b.port & 255;
      }
    }
    for (const h of this.hairpinRefs.keys()) {
      const ip = parseAddrText(h.slice(1));
      const n = ip.family === 4 ? 4 : 16;
      addrBytes(ip, key, 0);
      addrBytes(ip, key, n);
      pack(hairpinSet(h), 2 * n, 0, false).add(key);
    }
    const sets: string[] = ['services4', 'services6', 'hairpin4', 'hairpin6', 'noep4', 'noep6'];
    for (let k = 0; k < MAX_SLOTS; k++) sets.push(`slot${k}_4`, `slot${k}_6`);
    return sets.map((set) => {
      const p = packs.get(set);
      return p ? { set, flush: true, packed: p.packed() } : { set, flush: true };
    });
  }

  /** Every element, per map or set. */
  state(): VipState {
    const state = new Map<string, Map<string, string>>();
    const put = (map: string, key: string, value: string): void => {
      let m = state.get(map);
      if (!m) state.set(map, (m = new Map()));
      m.set(key, value);
    };
    for (const e of this.vips.values()) for (const [map, k, val] of elementsOf(e).own) put(map, k, val);
    for (const h of this.hairpinRefs.keys()) put(hairpinSet(h), hairpinKey(h), '');
    return state;
  }
}

/** An address text of addrText back (hairpin references keep the text). */
function parseAddrText(text: string): Ip {
  const ip = parseIp(text);
  if (!ip) throw new InvalidNetworkConfig(`"${text}" is not an address`);
  return ip;
}

/** What turns `from` into `to`: a changed element is deleted and added again. Pure. */
export function diffStates(from: VipState, to: VipState): VipDiff {
  const deletes = new Map<string, string[]>();
  const adds = new Map<string, Array<readonly [string, string]>>();
  let added = 0;
  let removed = 0;
  const push = <T>(m: Map<string, T[]>, k: string, v: T): void => { let a = m.get(k); if (!a) m.set(k, (a = [])); a.push(v); };
  for (const [map, old] of from) {
    const next = to.get(map);
    for (const [k, v] of old) {
      const nv = next?.get(k);
      if (nv === undefined || nv !== v) { push(deletes, map, k); removed++; }
    }
  }
  for (const [map, next] of to) {
    const old = from.get(map);
    for (const [k, v] of next) {
      if (old?.get(k) !== v) { push(adds, map, [k, v] as const); added++; }
    }
  }
  return { deletes, adds, added, removed };
}

const element = ([k, v]: readonly [string, string]): string => (v === '' ? k : `${k} : ${v}`);

/** One nft transaction applying a diff: every delete before every add. Pure. */
export function renderDiff(table: string, diff: VipDiff): string {
  const lines: string[] = [];
  for (const [map, keys] of diff.deletes) lines.push(`delete element inet ${table} ${map} { ${keys.join(', ')} }`);
  for (const [map, els] of diff.adds) lines.push(`add element inet ${table} ${map} { ${els.map(element).join(', ')} }`);
  return lines.length ? lines.join('\n') + '\n' : '';
}

const KEY4 = 'ipv4_addr . inet_proto . inet_service';
const KEY6 = 'ipv6_addr . inet_proto . inet_service';

/**
 * The table's maps, sets, chains and rules, without elements. Every statement is an `add`
 * (a no-op for what exists) and every chain is flushed before its rules are added, so the
 * script can run on an existing table: it rewrites the rules and keeps the elements. Pure.
 */
export function renderSkeleton(table: string): string {
  const t = `inet ${table}`;
  const l: string[] = [`add table ${t}`];
  l.push(`add map ${t} services4 { type ${KEY4} : verdict; }`, `add map ${t} services6 { type ${KEY6} : verdict; }`);
  for (let k = 0; k < MAX_SLOTS; k++) {
    l.push(`add map ${t} slot${k}_4 { type ${KEY4} : ipv4_addr . inet_service; }`, `add map ${t} slot${k}_6 { type ${KEY6} : ipv6_addr . inet_service; }`);
  }
  l.push(`add set ${t} hairpin4 { type ipv4_addr . ipv4_addr; }`, `add set ${t} hairpin6 { type ipv6_addr . ipv6_addr; }`);
  l.push(`add set ${t} noep4 { type ${KEY4}; }`, `add set ${t} noep6 { type ${KEY6}; }`);
  const chain = (name: string, spec: string | undefined, rules: readonly string[]): void => {
    l.push(spec ? `add chain ${t} ${name} { ${spec} }` : `add chain ${t} ${name}`, `flush chain ${t} ${name}`);
    for (const r of rules) l.push(`add rule ${t} ${name} ${r}`);
  };
  for (let k = 0; k < MAX_SLOTS; k++) {
    chain(`slot${k}`, undefined, [
      `dnat ip to ip daddr . meta l4proto . th dport map @slot${k}_4`,
      `dnat ip6 to ip6 daddr . meta l4proto . th dport map @slot${k}_6`,
    ]);
  }
  chain('pick1', undefined, ['goto slot0']);
  for (let n = 2; n <= MAX_SLOTS; n++) {
    const arms = Array.from({ length: n }, (_, k) => `${k} : goto slot${k}`).join(', ');
    chain(`pick${n}`, undefined, [`numgen random mod ${n} vmap { ${arms} }`]);
  }
  chain('services', undefined, [
    'ip daddr . meta l4proto . th dport vmap @services4',
    'ip6 daddr . meta l4proto . th dport vmap @services6',
  ]);
  // Containers' traffic arrives at the host (prerouting); host processes' leaves it (output).
  chain('nat-prerouting', 'type nat hook prerouting priority dstnat; policy accept;', ['jump services']);
  chain('nat-output', 'type nat hook output priority -100; policy accept;', ['jump services']);
  // Only a client that was balanced onto itself is masqueraded: its reply must come back
  // through the host to be un-DNATed. Nothing else is.
  chain('nat-postrouting', 'type nat hook postrouting priority srcnat; policy accept;', [
    'ct status dnat ip saddr . ip daddr @hairpin4 masquerade',
    'ct status dnat ip6 saddr . ip6 daddr @hairpin6 masquerade',
  ]);
  // A VIP without backends refuses at once instead of letting the SYN wander off unanswered.
  // The filter hooks see every packet (the nat ones only a connection's first): one test of
  // the connection's state there, the lookups only for new connections.
  chain('noep', undefined, [
    'ip daddr . meta l4proto . th dport @noep4 meta l4proto tcp reject with tcp reset',
    'ip daddr . meta l4proto . th dport @noep4 reject with icmpx port-unreachable',
    'ip6 daddr . meta l4proto . th dport @noep6 meta l4proto tcp reject with tcp reset',
    'ip6 daddr . meta l4proto . th dport @noep6 reject with icmpx port-unreachable',
  ]);
  chain('filter-prerouting', 'type filter hook prerouting priority -90; policy accept;', ['ct state new jump noep']);
  chain('filter-output', 'type filter hook output priority -90; policy accept;', ['ct state new jump noep']);
  return l.join('\n') + '\n';
}

/**
 * One transaction replacing the whole table with `state`: the old table (if any) is deleted
 * and rebuilt. Established connections keep their NAT binding: conntrack holds it, not the
 * ruleset. Pure.
 */
export function renderFull(table: string, state: VipState): string {
  const head = `add table inet ${table}\ndelete table inet ${table}\n`;
  return head + renderSkeleton(table) + renderDiff(table, diffStates(new Map(), state));
}

/** Number of elements in a state. */
export const stateSize = (s: VipState): number => [...s.values()].reduce((n, m) => n + m.size, 0);
