// A named VIP's address: derived from its name, so every host computes the same one with no
// round trip, and settled the same way everywhere when two names collide. Pure: the claim
// store (./claims.ts: in memory on one host, etcd in a cluster) is passed in.
//
// The rule: candidate k of NAME in RANGE is the usable address number (h(NAME) + k) mod usable,
// h = the first 8 bytes of SHA-256(NAME). A name claims candidate 0, 1, 2, ... in that order and
// keeps the first one that is free or already its own: the first claim of an address wins, a
// later name that hashes onto it probes on, and an existing VIP never moves. (DC/OS hashed
// names into 11.0.0.0/8 with linear probing computed on each node alone, so two nodes seeing
// two colliding names in a different order gave them different addresses; here the claims are
// shared through etcd.) Claims are never released: a name keeps its address for the cluster's
// life, so clients caching an old DNS answer still reach it when it comes back.
import { createHash } from 'node:crypto';
import { type Cidr, type Family, type Ip, familyBits, formatCidr, formatIp, networkOf, parseCidr } from '../ipam/addr';
import { InvalidVip } from '../lib/errors';

/**
 * RFC 2544's benchmarking block (198.18.0.0/15): special-purpose, "not globally reachable"
 * (IANA), so it names nobody's public service the way DC/OS's 11.0.0.0/8 did, it is rarely a
 * site's own RFC 1918 or CGNAT (100.64/10) space, and it holds 131,070 VIPs. Not
 * 198.51.100.0/24: vxnetd's DNS lives there.
 */
export const DEFAULT_VIP_RANGE = '198.18.0.0/15';
/** A ULA /64 spelling "vxnet" (fd76:786e:6574 = "vxnet" in ASCII hex). */
export const DEFAULT_VIP_RANGE6 = 'fd76:786e:6574::/64';
/** How many candidates a name tries before it gives up (a range this full needs a bigger one). */
export const MAX_PROBES = 64;

/** Parses a VIP range: a CIDR of the given family with room for at least 2 VIPs; throws InvalidVip. */
export function parseVipRange(text: string, family: Family, flag: string): Cidr {
  const cidr = parseCidr(text);
  if (!cidr) throw new InvalidVip(`${flag} ${JSON.stringify(text)}: not a CIDR such as ${family === 4 ? DEFAULT_VIP_RANGE : DEFAULT_VIP_RANGE6}`);
  if (cidr.ip.family !== family) throw new InvalidVip(`${flag} ${JSON.stringify(text)}: expected an IPv${family} range`);
  if (cidr.prefix > familyBits(family) - 2) throw new InvalidVip(`${flag} ${JSON.stringify(text)}: too small (a /${familyBits(family) - 2} at least)`);
  return networkOf(cidr);
}

/** Addresses of the range a VIP may take: not the network address, not IPv4's broadcast. */
export function usableCount(range: Cidr): bigint {
  const size = 1n << BigInt(familyBits(range.ip.family) - range.prefix);
  return range.ip.family === 4 ? size - 2n : size - 1n;
}

const hashOf = (name: string): bigint => createHash('sha256').update(name).digest().readBigUInt64BE(0);

/** Candidate `attempt` (0, 1, ...) of `name` in `range`. */
export function candidate(range: Cidr, name: string, attempt: number): Ip {
  const n = (hashOf(name) + BigInt(attempt)) % usableCount(range);
  return { family: range.ip.family, value: networkOf(range).ip.value + 1n + n };
}

/** Where claims are settled: `claim` makes `address` NAME's if nobody holds it, and says who holds it after. */
export interface ClaimStore {
  /** The name holding `address` after the call: `name` when it was free (now claimed) or already its. */
  claim(address: string, name: string): Promise<string>;
  /** Every claim known now (address -> name), to skip round trips for names already placed. */
  list(): Promise<ReadonlyMap<string, string>>;
  readonly description: string;
}

export interface VipAddressesOf {
  readonly v4: Ip;
  readonly v6?: Ip;
}

/**
 * Named VIPs' addresses, claimed through a ClaimStore and remembered: `known(name)` answers
 * without I/O once `assign(name)` has resolved for it.
 */
export class VipAddresses {
  /** name -> its addresses. */
  private readonly byName = new Map<string, VipAddressesOf>();
  /** address text -> holder, as learned from the store (claims are never released). */
  private readonly holders = new Map<string, string>();
  private readonly pending = new Map<string, Promise<VipAddressesOf>>();

  constructor(private readonly store: ClaimStore, readonly range: Cidr, readonly range6: Cidr | undefined, private readonly maxProbes = MAX_PROBES) {}

  /** Reads every claim once (a restart then places known names with no round trip). */
  async load(): Promise<number> {
    const all = await this.store.list();
    for (const [address, name] of all) this.holders.set(address, name);
    return all.size;
  }

  known(name: string): VipAddressesOf | undefined {
    return this.byName.get(name);
  }

  /** The name's addresses, claiming them when needed; concurrent calls for one name share one claim. */
  assign(name: string): Promise<VipAddressesOf> {
    const done = this.byName.get(name);
    if (done) return Promise.resolve(done);
    let p = this.pending.get(name);
    if (!p) {
      p = (async () => {
        const v4 = await this.place(this.range, name);
        const v6 = this.range6 ? await this.place(this.range6, name) : undefined;
        const a = { v4, ...(v6 ? { v6 } : {}) };
        this.byName.set(name, a);
        return a;
      })().finally(() => this.pending.delete(name));
      this.pending.set(name, p);
    }
    return p;
  }

  private async place(range: Cidr, name: string): Promise<Ip> {
    for (let k = 0; k < this.maxProbes; k++) {
      const ip = candidate(range, name, k);
      const text = addressText(ip);
      const seen = this.holders.get(text);
      if (seen !== undefined && seen !== name) continue;
      if (seen === name) return ip;
      const holder = await this.store.claim(text, name);
      this.holders.set(text, holder);
      if (holder === name) return ip;
    }
    throw new InvalidVip(`no address for VIP /${name} in ${formatCidr(range)} after ${this.maxProbes} tries (${this.store.description}): the range is too full; use a larger --vip-range`);
  }
}

/** An address's text; IPv4 by hand (ip-num's formatter costs ~10 us and its objects: 10,000 names at a start). */
function addressText(ip: Ip): string {
  if (ip.family === 6) return formatIp(ip);
  const v = Number(ip.value);
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** One host's claims, in this process: the same first-claim-wins rule as etcd's, without the sharing. */
export class MemoryClaims implements ClaimStore {
  readonly description = 'claims in memory';
  private readonly claims = new Map<string, string>();
  async claim(address: string, name: string): Promise<string> {
    const holder = this.claims.get(address);
    if (holder !== undefined) return holder;
    this.claims.set(address, name);
    return name;
  }
  async list(): Promise<ReadonlyMap<string, string>> {
    return new Map(this.claims);
  }
}
