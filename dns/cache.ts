// The forwarder's answer cache. Pure: the clock is injected, nothing else is touched.
//
// Spartan had no cache (erldns' packet cache was off), so every lookup of a name outside the
// zone crossed to an upstream. This one keeps an upstream's answer for as long as its records
// say (RFC 1035), capped, and keeps negative answers (NXDOMAIN and NODATA) for the SOA's
// minimum or the SOA's TTL, whichever is lower (RFC 2308 5); a negative answer without an SOA
// is not cached, nor is SERVFAIL. Entries are bounded in number and in bytes, the least
// recently used going first.
import type { Answer } from 'dns-packet';
import type { Question, Reply } from './wire';

export interface CacheOptions {
  /** Milliseconds; default Date.now. */
  readonly now?: () => number;
  readonly maxEntries?: number;
  /** Bytes of wire-format answers kept in all (as the caller measured them). */
  readonly maxBytes?: number;
  /** Seconds: no answer is kept longer, whatever its TTL says. */
  readonly maxTtl?: number;
  /** Seconds: no negative answer is kept longer. */
  readonly maxNegativeTtl?: number;
}

interface Entry {
  readonly reply: Reply;
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly bytes: number;
}

export const CACHE_DEFAULTS = { maxEntries: 10_000, maxBytes: 16 << 20, maxTtl: 3600, maxNegativeTtl: 300 } as const;

/**
 * The cache key: the question, and the bits that change what an upstream answers. A name that
 * is not plain (a dot inside a label, other bytes) is keyed by its wire bytes, lower-cased: its
 * text would equal that of another name ("a.b" + "example" reads like "a" + "b" + "example").
 */
export function cacheKey(question: Question, questionBytes: Buffer, dnssecOk: boolean, checkingDisabled: boolean): string {
  const name = question.plain ? question.name : `#${Buffer.from(questionBytes.subarray(0, -4).toString('latin1').toLowerCase(), 'latin1').toString('hex')}`;
  return `${name}|${question.typeCode}|${dnssecOk ? 1 : 0}${checkingDisabled ? 1 : 0}`;
}

export class ReplyCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly now: () => number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxTtl: number;
  private readonly maxNegativeTtl: number;

  constructor(options: CacheOptions = {}) {
    this.now = options.now ?? Date.now;
    this.maxEntries = options.maxEntries ?? CACHE_DEFAULTS.maxEntries;
    this.maxBytes = options.maxBytes ?? CACHE_DEFAULTS.maxBytes;
    this.maxTtl = options.maxTtl ?? CACHE_DEFAULTS.maxTtl;
    this.maxNegativeTtl = options.maxNegativeTtl ?? CACHE_DEFAULTS.maxNegativeTtl;
  }

  get size(): number { return this.entries.size; }

  /** The reply with its TTLs counted down by its age; undefined when absent or expired. */
  get(key: string): Reply | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const now = this.now();
    if (now >= entry.expiresAt) {
      this.drop(key, entry);
      return undefined;
    }
    // Most recently used last: Map keeps insertion order, so the first key is the eviction victim.
    this.entries.delete(key);
    this.entries.set(key, entry);
    const age = Math.floor((now - entry.storedAt) / 1000);
    const left = Math.ceil((entry.expiresAt - now) / 1000);
    const aged = (list: readonly Answer[]): Answer[] =>
      list.map((a) => ({ ...a, ttl: Math.max(0, Math.min((a as { ttl?: number }).ttl ?? 0, left + age) - age) }) as Answer);
    const r = entry.reply;
    return { rcode: r.rcode, aa: false, answers: aged(r.answers), authorities: aged(r.authorities), additionals: aged(r.additionals) };
  }

  /**
   * Keeps `reply` (OPT records left out) for as long as RFC 1035 / 2308 allow, capped; `bytes`
   * is its wire size. Returns how many seconds it will be kept; 0 when it is not cacheable.
   */
  put(key: string, reply: Reply, bytes: number): number {
    const ttl = this.ttlOf(reply);
    if (ttl <= 0 || bytes > this.maxBytes) return 0;
    const old = this.entries.get(key);
    if (old) this.drop(key, old);
    const now = this.now();
    const strip = (list: readonly Answer[]): Answer[] => list.filter((a) => a.type !== 'OPT');
    const entry: Entry = {
      reply: { rcode: reply.rcode, aa: false, answers: strip(reply.answers), authorities: strip(reply.authorities), additionals: strip(reply.additionals) },
      storedAt: now, expiresAt: now + ttl * 1000, bytes,
    };
    this.entries.set(key, entry);
    this.bytes += bytes;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.drop(oldestKey, oldest);
    }
    return ttl;
  }

  /** Seconds a reply may be kept: 0 for what must not be cached. */
  private ttlOf(reply: Reply): number {
    const ttlOfRecord = (a: Answer): number => (a as { ttl?: number }).ttl ?? 0;
    if (reply.rcode === 'NOERROR' && reply.answers.length > 0) {
      let min = this.maxTtl;
      for (const list of [reply.answers, reply.authorities, reply.additionals]) {
        for (const a of list) if (a.type !== 'OPT') min = Math.min(min, ttlOfRecord(a));
      }
      return min;
    }
    if (reply.rcode === 'NOERROR' || reply.rcode === 'NXDOMAIN') {
      const soa = reply.authorities.find((a) => a.type === 'SOA');
      if (!soa || soa.type !== 'SOA') return 0;
      return Math.min(ttlOfRecord(soa), soa.data.minimum ?? 0, this.maxNegativeTtl);
    }
    return 0;
  }

  private drop(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}
