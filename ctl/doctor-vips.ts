// `vxnetctl doctor`'s VIP rules: what vxnetd's VIPs should be (its API's /v1/vips, the model it
// handed the kernel) against what the kernel's VIP table holds (`nft -j list table inet NAME`),
// per VIP, both ways. Pure: doctor.ts reads both sides.
//
// A VIP in the table (datapath/vip-plan.ts) is one element keyed `ADDR . PROTO . PORT` in
// services4/6 (`goto pickN`: N slots) and one in each of slot0_F..slot(N-1)_F (the backend
// `ADDR . PORT` of that slot), or, without backends, one in noep4/6. The kernel's VIP is read
// back as that key with the multiset of its slots' backends; the desired one is the same from
// vip/model.ts entriesOf and vip-plan.ts slotsFor. Slots are compared as multisets (which slot
// holds which backend does not change the balancing), so weights count.
//
// Nothing here is safe for --fix: vxnetd is the table's only writer (a second one would race
// its diffs and its guard), and vxnetd rewrites the whole table on its own at start (the first
// sync replaces it in one transaction) and whenever its guard sees a hand edit.
import { type Ip, formatIp, parseIp } from '../ipam/addr';
import { MAX_SLOTS, slotsFor, vipKeyOf } from '../datapath/vip-plan';
import { type VipView, entriesOf } from '../vip/model';
import type { Finding } from './doctor-rules';

/** The table's parts vxnetd's start adds (vip-plan.ts renderSkeleton); base chains must hold rules. */
const BASE_CHAINS = ['nat-prerouting', 'nat-output', 'nat-postrouting', 'filter-prerouting', 'filter-output', 'services'] as const;
const MAPS = ['services4', 'services6', 'noep4', 'noep6', 'hairpin4', 'hairpin6'] as const;

/** One VIP as the kernel holds it, or as it should: its backends (`10.1.0.2:8080`, `[fd00::2]:53`) one per slot, sorted; [] = no backends (noep). */
export type VipSlots = readonly string[];

export interface KernelVipTable {
  /** Map, set and chain names present. */
  readonly maps: ReadonlySet<string>;
  readonly chains: ReadonlySet<string>;
  /** Rules per chain. */
  readonly rules: ReadonlyMap<string, number>;
  /** Per VIP key (`198.18.0.5 . tcp . 80`): the slots the services element sends to (pickN), sorted; noep: []. */
  readonly vips: ReadonlyMap<string, VipSlots>;
  /** What does not hold together: a services element whose pick chain's slots are not all filled, slot elements of no VIP. */
  readonly broken: ReadonlyMap<string, string>;
  /** hairpin4/6 elements (`10.1.0.2 . 10.1.0.2`). */
  readonly hairpins: ReadonlySet<string>;
}

export interface DesiredVip {
  /** What the operator calls it: `/web:80/tcp at 198.18.0.5`. */
  readonly label: string;
  readonly slots: VipSlots;
}

const backendText = (ip: Ip, port: number): string => (ip.family === 6 ? `[${formatIp(ip)}]:${port}` : `${formatIp(ip)}:${port}`);
const canonIp = (text: string): Ip | undefined => parseIp(text);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The desired VIPs, by table key, from the API's VIP views (what vxnetd gave its kernel). */
export function desiredVips(views: readonly VipView[]): Map<string, DesiredVip> {
  const labels = new Map<string, string[]>();
  for (const v of views) {
    for (const a of v.addresses) {
      const ip = canonIp(a);
      if (!ip) continue;
      const key = vipKeyOf({ ip, protocol: v.protocol, port: v.port });
      const l = labels.get(key) ?? [];
      l.push(v.vip);
      labels.set(key, l);
    }
  }
  const out = new Map<string, DesiredVip>();
  for (const e of entriesOf(views)) {
    const key = vipKeyOf(e);
    const slots = slotsFor(e.backends.map((b) => b.weight)).map((i) => backendText(e.backends[i].ip, e.backends[i].port)).sort();
    const addr = e.ip.family === 6 ? `[${formatIp(e.ip)}]` : formatIp(e.ip);
    out.set(key, { label: `${[...new Set(labels.get(key) ?? [])].join(', ') || key} at ${addr}`, slots });
  }
  return out;
}

/** The hairpin elements the desired VIPs need: each backend address of a VIP with backends, `A . A`. */
export function desiredHairpins(views: readonly VipView[]): Set<string> {
  const out = new Set<string>();
  for (const e of entriesOf(views)) for (const b of e.backends) out.add(`${formatIp(b.ip)} . ${formatIp(b.ip)}`);
  return out;
}

/** An element's key and value out of nft's JSON (`[key, value]`, or `{"elem": {"val": ...}}` when it carries extras). */
function elementParts(el: unknown): { key: unknown; value: unknown } {
  if (Array.isArray(el) && el.length === 2) return { key: unwrap(el[0]), value: el[1] };
  return { key: unwrap(el), value: undefined };
}
const unwrap = (v: unknown): unknown => (isRecord(v) && isRecord(v.elem) ? v.elem.val : v);
const concat = (v: unknown): unknown[] | undefined => (isRecord(v) && Array.isArray(v.concat) ? v.concat : undefined);

/** `ADDR . PROTO . PORT` of a VIP key in nft's JSON, canonical; undefined when it is not one. */
function vipKeyText(v: unknown): string | undefined {
  const c = concat(v);
  if (!c || c.length !== 3 || typeof c[0] !== 'string' || (c[1] !== 'tcp' && c[1] !== 'udp') || typeof c[2] !== 'number') return undefined;
  const ip = canonIp(c[0]);
  return ip ? vipKeyOf({ ip, protocol: c[1], port: c[2] }) : undefined;
}

/**
 * The VIP table out of `nft -j list table inet NAME`'s JSON. Throws nothing: what it cannot
 * read is left out (a foreign table reads as one without vxnet's maps). Pure.
 */
export function parseVipTable(json: unknown): KernelVipTable {
  const items = isRecord(json) && Array.isArray(json.nftables) ? json.nftables : [];
  const maps = new Set<string>();
  const chains = new Set<string>();
  const rules = new Map<string, number>();
  const services = new Map<string, number>();
  const noep = new Set<string>();
  const slotOf = new Map<string, Map<number, string>>();
  const hairpins = new Set<string>();
  for (const item of items) {
    if (!isRecord(item)) continue;
    if (isRecord(item.chain) && typeof item.chain.name === 'string') chains.add(item.chain.name);
    if (isRecord(item.rule) && typeof item.rule.chain === 'string') rules.set(item.rule.chain, (rules.get(item.rule.chain) ?? 0) + 1);
    const m = isRecord(item.map) ? item.map : isRecord(item.set) ? item.set : undefined;
    if (!m || typeof m.name !== 'string') continue;
    const name = m.name;
    maps.add(name);
    const elems = Array.isArray(m.elem) ? m.elem : [];
    const slot = /^slot(\d+)_[46]$/.exec(name);
    for (const el of elems) {
      const { key, value } = elementParts(el);
      if (name === 'services4' || name === 'services6') {
        const k = vipKeyText(key);
        const target = isRecord(value) && isRecord(value.goto) ? value.goto.target : undefined;
        const n = typeof target === 'string' ? /^pick(\d+)$/.exec(target) : null;
        if (k) services.set(k, n ? Number(n[1]) : -1);
      } else if (name === 'noep4' || name === 'noep6') {
        const k = vipKeyText(key);
        if (k) noep.add(k);
      } else if (name === 'hairpin4' || name === 'hairpin6') {
        const c = concat(key);
        const a = c && typeof c[0] === 'string' ? canonIp(c[0]) : undefined;
        const b = c && typeof c[1] === 'string' ? canonIp(c[1]) : undefined;
        if (a && b) hairpins.add(`${formatIp(a)} . ${formatIp(b)}`);
      } else if (slot) {
        const k = vipKeyText(key);
        const c = concat(value);
        const ip = c && typeof c[0] === 'string' ? canonIp(c[0]) : undefined;
        if (!k || !ip || typeof c?.[1] !== 'number') continue;
        const per = slotOf.get(k) ?? new Map<number, string>();
        per.set(Number(slot[1]), backendText(ip, c[1]));
        slotOf.set(k, per);
      }
    }
  }
  const vips = new Map<string, VipSlots>();
  const broken = new Map<string, string>();
  for (const [k, n] of services) {
    const per = slotOf.get(k) ?? new Map<number, string>();
    if (n < 1 || n > MAX_SLOTS) {
      broken.set(k, 'its services element does not jump to a pick chain');
      vips.set(k, [...per.values()].sort());
      continue;
    }
    const filled: string[] = [];
    const empty: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = per.get(i);
      if (b === undefined) empty.push(i); else filled.push(b);
    }
    const beyond = [...per.keys()].filter((i) => i >= n);
    if (empty.length) broken.set(k, `${empty.length} of its ${n} slots ${empty.length === 1 ? 'is' : 'are'} empty (slot ${empty.join(', ')}): ${Math.round((100 * empty.length) / n)}% of its new connections go nowhere`);
    else if (beyond.length) broken.set(k, `slot elements beyond its ${n} slots (slot ${beyond.join(', ')})`);
    vips.set(k, filled.sort());
  }
  for (const k of noep) if (!vips.has(k)) vips.set(k, []);
  for (const k of slotOf.keys()) if (!vips.has(k)) broken.set(k, 'slot elements of a VIP the services map does not hold');
  return { maps, chains, rules, vips, broken, hairpins };
}

/** Multiset difference a - b, as "X" or "X x2". */
function minus(a: readonly string[], b: readonly string[]): string[] {
  const count = new Map<string, number>();
  for (const x of b) count.set(x, (count.get(x) ?? 0) + 1);
  const left = new Map<string, number>();
  for (const x of a) {
    const c = count.get(x) ?? 0;
    if (c > 0) count.set(x, c - 1); else left.set(x, (left.get(x) ?? 0) + 1);
  }
  return [...left].map(([x, n]) => (n > 1 ? `${x} x${n}` : x));
}

const FIX = 'restart vxnetd (systemctl restart vxnetd): its first sync replaces the whole table in one transaction (established connections keep their NAT in conntrack)';
const MAX_PER_KIND = 10;

/**
 * Findings of the VIP table: missing, foreign or incomplete; per VIP missing, stale, with other
 * backends; hairpin elements. `table` is the table's name; `kernel` undefined: the table is missing. Pure.
 */
export function vipFindings(table: string, views: readonly VipView[], kernel: KernelVipTable | undefined): Finding[] {
  const desired = desiredVips(views);
  const subjectTable = `nftables table inet ${table}`;
  if (!kernel) {
    if (desired.size === 0) return [];
    return [{
      kind: 'vip-table-missing', subject: subjectTable,
      what: `vxnetd balances ${desired.size} VIP address${desired.size === 1 ? '' : 'es'} but its nftables table is missing: connections to them go nowhere`,
      why: 'the table was deleted (nft flush ruleset, a firewall reload) while vxnetd was not running, or --vip-table is not vxnetd\'s',
      fix: FIX, safe: false, actions: [],
    }];
  }
  if (!kernel.maps.has('services4') && !kernel.maps.has('services6') && !kernel.chains.has('services')) {
    return [{
      kind: 'vip-table-foreign', subject: subjectTable,
      what: 'the table exists but is not a vxnet VIP table (no services maps or chain)',
      why: 'another tool made a table of that name, or --vip-table names the wrong table',
      fix: `check vxnetd's --vip-table; a table that is not vxnet's: rename vxnet's (--vip-table) or remove the other (nft delete table inet ${table}), then ${FIX}`,
      safe: false, actions: [],
    }];
  }
  const findings: Finding[] = [];
  const missingParts = [
    ...MAPS.filter((m) => !kernel.maps.has(m)).map((m) => `map ${m}`),
    ...Array.from({ length: MAX_SLOTS }, (_, k) => [`slot${k}_4`, `slot${k}_6`]).flat().filter((m) => !kernel.maps.has(m)).map((m) => `map ${m}`),
    ...[...BASE_CHAINS, ...Array.from({ length: MAX_SLOTS }, (_, k) => `slot${k}`), ...Array.from({ length: MAX_SLOTS }, (_, k) => `pick${k + 1}`)]
      .filter((c) => !kernel.chains.has(c)).map((c) => `chain ${c}`),
    ...BASE_CHAINS.filter((c) => kernel.chains.has(c) && (kernel.rules.get(c) ?? 0) === 0).map((c) => `chain ${c}'s rules`),
  ];
  if (missingParts.length) {
    findings.push({
      kind: 'vip-table-incomplete', subject: subjectTable,
      what: `the table lacks ${missingParts.length > 8 ? `${missingParts.slice(0, 8).join(', ')} and ${missingParts.length - 8} more` : missingParts.join(', ')}: its VIPs are not (all) balanced`,
      why: 'parts deleted or flushed by hand while vxnetd\'s guard was not watching (vxnetd stopped), or a table left by an older vxnet',
      fix: FIX, safe: false, actions: [],
    });
  }
  const perVip: Finding[] = [];
  const push = (f: Finding): void => { perVip.push(f); };
  for (const [key, want] of desired) {
    const have = kernel.vips.get(key);
    if (have === undefined) {
      push({
        kind: 'vip-missing', subject: `VIP ${want.label}`,
        what: `vxnetd balances it (${want.slots.length ? `${want.slots.length} slot${want.slots.length === 1 ? '' : 's'}: ${[...new Set(want.slots)].join(', ')}` : 'no backend up: rejected'}) but the kernel's table has no element for ${key}: connections to it are not balanced`,
        why: 'the element was deleted by hand while vxnetd was stopped or its guard was not running, or a sync failed (vxnetd logs "VIP table ... failed")',
        fix: FIX, safe: false, actions: [],
      });
      continue;
    }
    const lacking = minus(want.slots, have);
    const extra = minus(have, want.slots);
    const broken = kernel.broken.get(key);
    if (lacking.length === 0 && extra.length === 0 && !broken) continue;
    const parts = [
      broken ?? '',
      lacking.length ? `lacks ${lacking.join(', ')}` : '',
      extra.length ? `also sends to ${extra.join(', ')}` : '',
      have.length === 0 && want.slots.length > 0 ? 'rejects new connections (no backends in the kernel)' : '',
    ].filter(Boolean);
    push({
      kind: 'vip-backends-differ', subject: `VIP ${want.label}`,
      what: `the kernel's backends differ from vxnetd's (${want.slots.length ? [...new Set(want.slots)].join(', ') : 'none up'}): ${parts.join('; ')}`,
      why: 'elements changed by hand while vxnetd\'s guard was not watching (vxnetd stopped), or a sync failed (vxnetd logs "VIP table ... failed")',
      fix: FIX, safe: false, actions: [],
    });
  }
  for (const [key, have] of kernel.vips) {
    if (desired.has(key)) continue;
    push({
      kind: 'vip-stale', subject: `VIP ${key} in table inet ${table}`,
      what: `the kernel balances it (${have.length ? [...new Set(have)].join(', ') : 'rejecting: no backends'}) but vxnetd has no such VIP`,
      why: 'left from before vxnetd restarted with a changed catalog (its first sync removes it), or added by hand',
      fix: FIX, safe: false, actions: [],
    });
  }
  for (const [key, why] of kernel.broken) {
    if (desired.has(key) || kernel.vips.has(key)) continue;
    push({
      kind: 'vip-stale', subject: `VIP ${key} in table inet ${table}`,
      what: `${why}; vxnetd has no such VIP`,
      why: 'a partial hand edit, or left from an interrupted transaction',
      fix: FIX, safe: false, actions: [],
    });
  }
  const wantHair = desiredHairpins(views);
  const lackHair = [...wantHair].filter((h) => !kernel.hairpins.has(h));
  const extraHair = [...kernel.hairpins].filter((h) => !wantHair.has(h));
  if (lackHair.length || extraHair.length) {
    const list = (xs: string[]): string => (xs.length > 5 ? `${xs.slice(0, 5).join(', ')} and ${xs.length - 5} more` : xs.join(', '));
    push({
      kind: 'vip-hairpin', subject: `${subjectTable} sets hairpin4/hairpin6`,
      what: [lackHair.length ? `missing ${list(lackHair)} (a backend balanced onto itself gets no reply)` : '', extraHair.length ? `not needed ${list(extraHair)}` : ''].filter(Boolean).join('; '),
      why: 'elements changed by hand while vxnetd\'s guard was not watching (vxnetd stopped)',
      fix: FIX, safe: false, actions: [],
    });
  }
  return [...findings, ...capPerKind(perVip, 'VIPs')];
}

/**
 * At most MAX_PER_KIND findings of each kind, in order; the rest of a kind folded into one
 * finding naming them (a thousand VIPs missing after a flush are one problem, not a thousand).
 */
export function capPerKind(findings: readonly Finding[], things: string): Finding[] {
  const byKind = new Map<string, Finding[]>();
  for (const f of findings) {
    const list = byKind.get(f.kind) ?? [];
    list.push(f);
    byKind.set(f.kind, list);
  }
  const out: Finding[] = [];
  for (const [kind, list] of byKind) {
    out.push(...list.slice(0, MAX_PER_KIND));
    if (list.length <= MAX_PER_KIND) continue;
    const rest = list.slice(MAX_PER_KIND);
    out.push({
      ...rest[0], subject: `${rest.length} more ${things} (${kind})`,
      what: `the same for ${rest.slice(0, 20).map((f) => f.subject).join('; ')}${rest.length > 20 ? '; ...' : ''}`,
    });
  }
  return out;
}

/** Keys of findings, to keep only those seen on two reads (a sync in flight is not a problem). */
export const findingKey = (f: Finding): string => `${f.kind}\0${f.subject}\0${f.what}`;
