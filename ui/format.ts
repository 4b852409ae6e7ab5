// Pure helpers of the web view: numbers, times, searching, ordering. No DOM here, so the
// unit tests (test/unit/ui-format.test.ts) run them under Node.
import type { Allocation, Big, Block, HistoryEvent } from './types';

/** A count the API may send as a decimal string, as a number (approximate past 2^53: for bars). */
export function num(n: Big | null | undefined): number {
  return typeof n === 'number' ? n : typeof n === 'string' && /^\d+$/.test(n) ? Number(n) : NaN;
}

/** "37%" of used/size; "0%" of an empty pool. */
export function percent(used: Big, size: Big): string {
  const u = num(used);
  const z = num(size);
  if (!(z > 0) || !Number.isFinite(u)) return '0%';
  const p = (100 * u) / z;
  return `${p > 0 && p < 1 ? '<1' : p > 99 && p < 100 ? '>99' : Math.round(p)}%`;
}

/** 65534 -> "65,534", exact also for a decimal string past 2^53 (a fixed style on every machine). */
export function count(n: Big | null | undefined): string {
  const digits = typeof n === 'number' ? (Number.isFinite(n) ? String(Math.round(n)) : '') : typeof n === 'string' && /^\d+$/.test(n) ? n : '';
  if (digits === '') return '-';
  const neg = digits.startsWith('-');
  const d = neg ? digits.slice(1) : digits;
  return `${neg ? '-' : ''}${d.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}`;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** An ISO time as "2026-12-05 14:02:07" in the browser's time zone; the input when not a time. */
export function clock(iso: string | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "12s ago", "5m ago", "3h ago", "2d ago"; "in 20s" for a time ahead (a lease's expiry). */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return '';
  const s = Math.round((now - t) / 1000);
  const a = Math.abs(s);
  const text = a < 60 ? `${a}s` : a < 3600 ? `${Math.floor(a / 60)}m` : a < 86400 ? `${Math.floor(a / 3600)}h` : `${Math.floor(a / 86400)}d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

/** A container id as people read it: its first 12 characters. */
export function shortId(id: string): string {
  return id.length > 12 ? id.slice(0, 12) : id;
}

/** The allocations matching a search: every word a substring of address, name, container, network or host. */
export function searchAllocations(all: readonly Allocation[], query: string): Allocation[] {
  const words = query.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...all];
  return all.filter((a) => {
    const hay = [a.address, a.name ?? '', a.containerId, a.network, a.host ?? ''].join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** Numeric order of addresses (IPv4 before IPv6; 10.0.0.9 before 10.0.0.10). */
export function compareAddresses(a: string, b: string): number {
  const ka = addressKey(a);
  const kb = addressKey(b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? -1) - (kb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

function addressKey(addr: string): number[] {
  const bare = addr.split('/')[0] ?? addr;
  if (bare.includes(':')) {
    const [head = '', tail = ''] = bare.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = bare.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
    return [6, ...groups.map((g) => parseInt(g, 16) || 0)];
  }
  return [4, ...bare.split('.').map((p) => Number(p) || 0)];
}

/** Allocations in table order: network, then address. */
export function sortAllocations(list: readonly Allocation[]): Allocation[] {
  return [...list].sort((a, b) => a.network.localeCompare(b.network) || compareAddresses(a.address, b.address));
}

/** The blocks of each host, in address order. */
export function blocksByHost(blocks: readonly Block[]): Map<string, Block[]> {
  const m = new Map<string, Block[]>();
  for (const b of [...blocks].sort((x, y) => x.network.localeCompare(y.network) || compareAddresses(x.cidr, y.cidr))) {
    const list = m.get(b.host) ?? [];
    list.push(b);
    m.set(b.host, list);
  }
  return m;
}

/** History events newest first (the timeline reads down into the past). */
export function timeline(events: readonly HistoryEvent[]): HistoryEvent[] {
  return [...events].sort((a, b) => new Date(b.at).getTime() - new Date(a.at).getTime());
}

/** Does the search look like an address (for the history panel): IPv4, or IPv6 with a colon. */
export function looksLikeAddress(q: string): boolean {
  const s = q.trim();
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || (/^[0-9a-f:]+$/i.test(s) && s.includes(':') && s.length >= 3);
}
