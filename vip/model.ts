// Catalog endpoints -> VIPs -> the kernel's entries. Pure: the named VIPs' addresses come in
// through `addressesOf` (./address.ts has claimed them), nothing is read or written here.
//
// A VIP is (name or address, protocol, port), as DC/OS keyed them: `/web:80/tcp` and
// `/web:443/tcp` are two VIPs at one address. Its backends: every endpoint with a label asking
// for it, at each of the endpoint's addresses of the VIP's family (a named VIP has an IPv4
// address and, with an IPv6 range, an IPv6 one: each family's addresses back its own), on the
// endpoint's port n. A backend whose container Docker reports unhealthy (or still starting its
// health checks) stays listed with its state and is left out of the kernel; a VIP whose
// backends are all out keeps its entry with none, which the kernel answers with a reject.
import type { Endpoint } from '../catalog/endpoint';
import { type Family, type Ip, formatIp, parseIp } from '../ipam/addr';
import type { VipAddressesOf } from './address';
import type { VipEntry } from './kernel';
import { type VipProtocol, vipKey, vipRefsOf } from './labels';

export const WEIGHT_LABEL = 'vxnet.weight';
export const MAX_WEIGHT = 100;

export type BackendState = 'up' | 'unhealthy' | 'starting';

export interface VipBackendView {
  /** The endpoint's catalog id. */
  readonly endpoint: string;
  readonly name: string;
  readonly host: string;
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
  readonly state: BackendState;
}

export interface VipView {
  /** `/web:80/tcp`, `10.0.0.1:80/udp`. */
  readonly vip: string;
  /** A named VIP's name, else undefined. */
  readonly name?: string;
  /** The VIP's addresses: the given one, or a named VIP's claimed ones (none while its claim is pending). */
  readonly addresses: readonly string[];
  readonly protocol: VipProtocol;
  readonly port: number;
  readonly backends: readonly VipBackendView[];
}

export interface VipProblem {
  readonly endpoint: string;
  /** The label key at fault (`VIP_1`, `vxnet.weight`). */
  readonly label: string;
  readonly problem: string;
}

export interface VipModel {
  readonly vips: VipView[];
  readonly problems: VipProblem[];
  /** Names of named VIPs whose addresses are not known yet (to be claimed). */
  readonly unplaced: string[];
}

/** The endpoint's weight: `vxnet.weight` (1-100), else 1. */
export function weightOf(e: Endpoint): { weight: number; problem?: string } {
  const text = e.labels[WEIGHT_LABEL];
  if (text === undefined) return { weight: 1 };
  const n = /^\d{1,3}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (n >= 1 && n <= MAX_WEIGHT) return { weight: n };
  return { weight: 1, problem: `${WEIGHT_LABEL}=${text}: not a whole number 1-${MAX_WEIGHT}; weight 1 used` };
}

/** Docker's health state as a backend state: unhealthy and starting are kept out of the kernel. */
export const stateOf = (e: Endpoint): BackendState => (e.health === 'unhealthy' ? 'unhealthy' : e.health === 'starting' ? 'starting' : 'up');

interface Building {
  readonly name?: string;
  readonly ip?: Ip;
  readonly protocol: VipProtocol;
  readonly port: number;
  readonly backends: Map<string, VipBackendView>;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * A catalog address (canonical text) as an Ip. IPv4 by hand: ip-num's parser costs tens of
 * microseconds and ipam/addr.ts's memo holds 4,096, so 10,000 backends per pass took ~150 ms.
 */
const ipMemo = new Map<string, Ip | undefined>();

/** The text of a VIP's address (IPv4 by hand, for the same reason). */
export function textOf(ip: Ip): string {
  if (ip.family === 6) return formatIp(ip);
  const v = Number(ip.value);
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** A catalog address's Ip, memoised. */
export function ipOf(text: string): Ip | undefined {
  let ip = ipMemo.get(text);
  if (ip === undefined && !ipMemo.has(text)) {
    if (ipMemo.size >= 65_536) ipMemo.clear();
    ipMemo.set(text, (ip = parseText(text)));
  }
  return ip;
}

function parseText(text: string): Ip | undefined {
  const m = V4.exec(text);
  if (!m) return text.includes(':') ? parseIp(text) : undefined;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    v = (v << 8n) | BigInt(o);
  }
  return { family: 4, value: v };
}

const familyOfText = (text: string): Family | undefined => (V4.test(text) ? 4 : text.includes(':') ? 6 : undefined);

/** What one endpoint contributes: its problems and, per VIP it backs, the VIP and its backends. */
export interface Contribution {
  readonly problems: VipProblem[];
  readonly items: Array<{ key: string; vip: Omit<Building, 'backends'>; backends: Array<[string, VipBackendView]> }>;
}

/**
 * Per endpoint object and IPv6 setting: the catalog keeps an unchanged endpoint's object, so a
 * pass over 10,000 endpoints re-reads only the labels of those that changed.
 */
const contributions: Record<'v4' | 'v46', WeakMap<Endpoint, Contribution>> = { v4: new WeakMap(), v46: new WeakMap() };

export function contributionOf(e: Endpoint, ipv6: boolean): Contribution {
  const memo = contributions[ipv6 ? 'v46' : 'v4'];
  const known = memo.get(e);
  if (known) return known;
  const c: Contribution = { problems: [], items: [] };
  memo.set(e, c);
  const { refs, problems: labelProblems } = vipRefsOf(e);
  for (const [label, problem] of labelProblems) c.problems.push({ endpoint: e.id, label, problem });
  if (refs.length === 0) return c;
  const { weight, problem } = weightOf(e);
  if (problem) c.problems.push({ endpoint: e.id, label: WEIGHT_LABEL, problem });
  const state = stateOf(e);
  // Catalog addresses are canonical text already: kept as text, only their family looked at.
  // Plain loops, no spreads: this runs for every endpoint at a start (30,000), before the JIT warmed up.
  const texts: string[] = [];
  const fams: Family[] = [];
  for (const a of e.addresses) { const f = familyOfText(a); if (f) { texts.push(a); fams.push(f); } }
  for (const ref of refs) {
    const only: Family | undefined = ref.ip ? ref.ip.family : ipv6 ? undefined : 4;
    const backends: Array<[string, VipBackendView]> = [];
    for (let i = 0; i < texts.length; i++) {
      if (only !== undefined && fams[i] !== only) continue;
      const text = texts[i] as string;
      // One endpoint asking twice for one VIP (two labels) is one backend per address and port.
      backends.push([`${e.id}\0${text}\0${ref.targetPort}`, { endpoint: e.id, name: e.name, host: e.host, ip: text, port: ref.targetPort, weight, state }]);
    }
    if (backends.length === 0) {
      const families: Family[] = only !== undefined ? [only] : [4, 6];
      c.problems.push({ endpoint: e.id, label: ref.key, problem: `${ref.key}: the endpoint has no IPv${families.join('/IPv')} address to back ${vipKey(ref)}` });
      continue;
    }
    const vip: { name?: string; ip?: Ip; protocol: VipProtocol; port: number } = { protocol: ref.protocol, port: ref.port };
    if (ref.name !== undefined) vip.name = ref.name;
    if (ref.ip) vip.ip = ref.ip;
    c.items.push({ key: vipKey(ref), vip, backends });
  }
  return c;
}

/** The VIPs the endpoints' labels define, sorted by their key text. */
export function buildVips(endpoints: Iterable<Endpoint>, addressesOf: (name: string) => VipAddressesOf | undefined, ipv6 = true): VipModel {
  const vips = new Map<string, Building>();
  const problems: VipProblem[] = [];
  for (const e of endpoints) {
    const c = contributionOf(e, ipv6);
    for (const p of c.problems) problems.push(p);
    for (const item of c.items) {
      let v = vips.get(item.key);
      if (!v) vips.set(item.key, (v = { ...item.vip, backends: new Map() }));
      for (const [k, b] of item.backends) v.backends.set(k, b);
    }
  }
  const unplaced = new Set<string>();
  const out: VipView[] = [];
  for (const [key, v] of [...vips].sort(([a], [b]) => byText(a, b))) {
    let addresses: string[];
    if (v.ip) addresses = [textOf(v.ip)];
    else {
      const placed = addressesOf(v.name as string);
      if (!placed) unplaced.add(v.name as string);
      addresses = placed ? [textOf(placed.v4), ...(placed.v6 && ipv6 ? [textOf(placed.v6)] : [])] : [];
    }
    const backends = [...v.backends.values()].sort((a, b) => byText(a.endpoint, b.endpoint) || byText(a.ip, b.ip) || a.port - b.port);
    out.push({ vip: key, ...(v.name !== undefined ? { name: v.name } : {}), addresses, protocol: v.protocol, port: v.port, backends });
  }
  return { vips: out, problems, unplaced: [...unplaced].sort() };
}

/**
 * The kernel's entries: one per VIP address (a named VIP: one per family), its backends those
 * of that family that are up. Two VIPs landing on one (address, protocol, port) (an operator's
 * address inside the named range) share one entry with both sets of backends.
 */
export function entriesOf(vips: readonly VipView[]): VipEntry[] {
  const entries = new Map<string, { ip: Ip; protocol: VipProtocol; port: number; backends: Map<string, { ip: Ip; port: number; weight: number }> }>();
  for (const v of vips) {
    for (const text of v.addresses) {
      const ip = ipOf(text);
      if (!ip) continue;
      const key = `${text}\0${v.protocol}\0${v.port}`;
      let entry = entries.get(key);
      if (!entry) entries.set(key, (entry = { ip, protocol: v.protocol, port: v.port, backends: new Map() }));
      for (const b of v.backends) {
        const bip = ipOf(b.ip);
        if (!bip || bip.family !== ip.family || b.state !== 'up') continue;
        const bkey = `${b.ip}\0${b.port}`;
        const prev = entry.backends.get(bkey);
        // The same address and port from two VIPs' lists: one backend, the larger weight.
        if (!prev || prev.weight < b.weight) entry.backends.set(bkey, { ip: bip, port: b.port, weight: b.weight });
      }
    }
  }
  return [...entries.values()].map((e) => ({ ip: e.ip, protocol: e.protocol, port: e.port, backends: [...e.backends.values()] }));
}

/** One line per difference between two models, for the log: VIPs added and removed, backends in, out, and changing state. */
export function describeChanges(before: readonly VipView[], after: readonly VipView[]): string[] {
  const lines: string[] = [];
  const old = new Map(before.map((v) => [v.vip, v]));
  for (const v of after) lines.push(...describeVip(old.get(v.vip), v));
  const now = new Set(after.map((v) => v.vip));
  for (const v of before) if (!now.has(v.vip)) lines.push(...describeVip(v, undefined));
  return lines;
}

/** The lines for one VIP that was `was` and is `now` (undefined: absent). */
export function describeVip(was: VipView | undefined, now: VipView | undefined): string[] {
  const lines: string[] = [];
  const backendKey = (b: VipBackendView): string => `${b.ip}:${b.port}`;
  const show = (b: VipBackendView): string => `${b.name || b.endpoint} ${b.ip.includes(':') ? `[${b.ip}]` : b.ip}:${b.port} on ${b.host}`;
  if (!now) return was ? [`VIP ${was.vip} removed (no endpoint asks for it)`] : [];
  const key = now.vip;
  if (!was) return [`VIP ${key} added at ${now.addresses.join(', ') || '(address pending)'} with ${now.backends.length} backend(s)`];
  if (was.addresses.join() !== now.addresses.join()) lines.push(`VIP ${key} at ${now.addresses.join(', ')}`);
  const wb = new Map(was.backends.map((b) => [backendKey(b), b]));
  const nb = new Map(now.backends.map((b) => [backendKey(b), b]));
  for (const [k, b] of nb) {
    const p = wb.get(k);
    if (!p) lines.push(`VIP ${key}: backend ${show(b)} in (${b.state})`);
    else if (p.state !== b.state || p.weight !== b.weight) lines.push(`VIP ${key}: backend ${show(b)} ${p.state} -> ${b.state}${p.weight !== b.weight ? `, weight ${p.weight} -> ${b.weight}` : ''}`);
  }
  for (const [k, b] of wb) if (!nb.has(k)) lines.push(`VIP ${key}: backend ${show(b)} out`);
  return lines;
}
