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
import { formatIp, type Ip } from '../ipam/addr';

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
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.protocol !== 'tcp' && e.protocol !== 'udp') throw new InvalidNetworkConfig(`VIP ${formatIp(e.ip)}: protocol must be tcp or udp, not "${String(e.protocol)}"`);
    if (!isPort(e.port)) throw new InvalidNetworkConfig(`VIP ${formatIp(e.ip)}: port ${e.port} is not a port (1-65535)`);
    const key = vipKeyOf(e);
    if (seen.has(key)) throw new InvalidNetworkConfig(`VIP ${vipName(e)} is given twice`);
    seen.add(key);
    if (e.backends.length > MAX_SLOTS) throw new InvalidNetworkConfig(`VIP ${vipName(e)} has ${e.backends.length} backends; at most ${MAX_SLOTS} are supported`);
    for (const b of e.backends) {
      // Texts only for the error: formatting every backend costs ~10 us each at 30,000 backends.
      const bn = (): string => `${formatIp(b.ip)}:${b.port}`;
      if (b.ip.family !== e.ip.family) throw new InvalidNetworkConfig(`VIP ${vipName(e)}: backend ${bn()} is not of the VIP's address family (IPv${e.ip.family})`);
      if (!isPort(b.port)) throw new InvalidNetworkConfig(`VIP ${vipName(e)}: backend port ${b.port} is not a port (1-65535)`);
      if (!Number.isInteger(b.weight) || b.weight < 1) throw new InvalidNetworkConfig(`VIP ${vipName(e)}: backend ${bn()} has weight ${b.weight}; a weight is an integer >= 1`);
    }
  }
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

function elementsOf(e: VipEntry): VipElements {
  const f = fam(e.ip);
  const key = vipKeyOf(e);
  if (e.backends.length === 0) return { own: [[`noep${f}`, key, '']], hairpins: [] };
  const slots = slotsFor(e.backends.map((b) => b.weight));
  const own: Array<readonly [string, string, string]> = [[`services${f}`, key, `goto pick${slots.length}`]];
  const texts = e.backends.map((b) => addrText(b.ip));
  slots.forEach((bi, k) => own.push([`slot${k}_${f}`, key, `${texts[bi] as string} . ${(e.backends[bi] as VipBackend).port}`]));
  return { own, hairpins: texts.map((a) => `hairpin${f}\0${a} . ${a}`) };
}

/** Every element the VIPs need, per map or set. Validates first. Pure. */
export function desiredState(entries: readonly VipEntry[]): VipState {
  const index = new VipIndex();
  index.replaceAll(entries);
  return index.state();
}

/**
 * The desired table kept per VIP, so that a change to a few VIPs costs those VIPs' elements,
 * not the table's: `change` swaps some VIPs' elements and returns the element diff (shared
 * hairpin elements counted by reference). Pure (in-memory state only).
 */
export class VipIndex {
  private readonly vips = new Map<string, VipElements>();
  private readonly hairpinRefs = new Map<string, number>();

  get size(): number { return this.vips.size; }

  /**
   * Removes the VIPs of `remove` (unknown ones are ignored), then puts those of `put` (a VIP
   * already there is replaced). Validates `put` first and changes nothing when it throws.
   */
  change(put: readonly VipEntry[], remove: readonly VipRef[], wantDiff = true): VipDiff {
    return this.changeKeys(put, remove.map(vipKeyOf), wantDiff);
  }

  /** Makes `entries` the whole state: the VIPs not among them are removed. */
  replaceAll(entries: readonly VipEntry[], wantDiff = true): VipDiff {
    const keep = new Set(entries.map(vipKeyOf));
    return this.changeKeys(entries, [...this.vips.keys()].filter((k) => !keep.has(k)), wantDiff);
  }

  /** wantDiff false: the state changes, the diff is not worked out (a full replace follows; at a start that is 40,000 elements). */
  private changeKeys(put: readonly VipEntry[], remove: readonly string[], wantDiff: boolean): VipDiff {
    validateVips(put);
    const touched = new Map<string, VipElements | undefined>();
    for (const k of remove) touched.set(k, undefined);
    for (const e of put) touched.set(vipKeyOf(e), elementsOf(e));
    const deletes = new Map<string, string[]>();
    const adds = new Map<string, Array<readonly [string, string]>>();
    let added = 0;
    let removed = 0;
    const push = <T>(m: Map<string, T[]>, k: string, v: T): void => { let a = m.get(k); if (!a) m.set(k, (a = [])); a.push(v); };
    const refDelta = new Map<string, number>();
    for (const [key, next] of touched) {
      const old = this.vips.get(key);
      if (old === undefined && next === undefined) continue;
      if (!wantDiff) {
        // The state only: no element pairing.
      } else if (old === undefined || next === undefined) {
        // A VIP added or removed (the bulk of a start): its elements as they are, no pairing.
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
      if (next) this.vips.set(key, next); else this.vips.delete(key);
    }
    for (const [h, d] of refDelta) {
      if (d === 0) continue;
      const before = this.hairpinRefs.get(h) ?? 0;
      const after = before + d;
      const [map, k] = h.split('\0') as [string, string];
      if (after > 0) this.hairpinRefs.set(h, after); else this.hairpinRefs.delete(h);
      if (wantDiff && before === 0 && after > 0) { push(adds, map, [k, ''] as const); added++; }
      if (wantDiff && before > 0 && after === 0) { push(deletes, map, k); removed++; }
    }
    return { deletes, adds, added, removed };
  }

  /** Number of elements. */
  get elements(): number {
    let n = this.hairpinRefs.size;
    for (const v of this.vips.values()) n += v.own.length;
    return n;
  }

  /** renderFull of this state, straight from the index (no intermediate state or diff: 10,000 VIPs are 40,000 elements). */
  renderFull(table: string): string {
    const byMap = new Map<string, string[]>();
    const add = (map: string, el: string): void => { let a = byMap.get(map); if (!a) byMap.set(map, (a = [])); a.push(el); };
    for (const v of this.vips.values()) for (const [map, k, val] of v.own) add(map, val === '' ? k : `${k} : ${val}`);
    for (const h of this.hairpinRefs.keys()) { const i = h.indexOf('\0'); add(h.slice(0, i), h.slice(i + 1)); }
    const lines = [`add table inet ${table}`, `delete table inet ${table}`];
    for (const [map, els] of byMap) lines.push(`add element inet ${table} ${map} { ${els.join(', ')} }`);
    return `${lines[0]}\n${lines[1]}\n${renderSkeleton(table)}${lines.slice(2).join('\n')}${lines.length > 2 ? '\n' : ''}`;
  }

  /** Every element, per map or set. */
  state(): VipState {
    const state = new Map<string, Map<string, string>>();
    const put = (map: string, key: string, value: string): void => {
      let m = state.get(map);
      if (!m) state.set(map, (m = new Map()));
      m.set(key, value);
    };
    for (const v of this.vips.values()) for (const [map, k, val] of v.own) put(map, k, val);
    for (const h of this.hairpinRefs.keys()) { const [map, k] = h.split('\0') as [string, string]; put(map, k, ''); }
    return state;
  }
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
  const reject = [
    'ct state new ip daddr . meta l4proto . th dport @noep4 meta l4proto tcp reject with tcp reset',
    'ct state new ip daddr . meta l4proto . th dport @noep4 reject with icmpx port-unreachable',
    'ct state new ip6 daddr . meta l4proto . th dport @noep6 meta l4proto tcp reject with tcp reset',
    'ct state new ip6 daddr . meta l4proto . th dport @noep6 reject with icmpx port-unreachable',
  ];
  chain('filter-prerouting', 'type filter hook prerouting priority -90; policy accept;', reject);
  chain('filter-output', 'type filter hook output priority -90; policy accept;', reject);
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
