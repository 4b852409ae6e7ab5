// vxnet's authoritative zone (default domain `vxnet`), built incrementally from endpoints.
// Pure: no I/O, no clock; the server asks it, the endpoint catalog feeds it.
//
// Records of an endpoint NAME on NETWORK, with SERVICE (else NAME), addresses and ports:
//   NAME.DOMAIN, NAME.NETWORK.DOMAIN, SERVICE.DOMAIN      A / AAAA of its addresses
//   _SERVICE._tcp.DOMAIN / _SERVICE._udp.DOMAIN           SRV per port: 0 1 PORT NAME.DOMAIN
//   _PORTNAME._tcp.SERVICE.DOMAIN (named ports)           SRV: 0 1 PORT NAME.DOMAIN
//   the reverse name of each address                     PTR NAME.DOMAIN
//   DOMAIN                                                SOA, NS ns.DOMAIN
//   ns.DOMAIN                                             A / AAAA of the server (if given)
// and of a named VIP NAME (vip/, set with setVip):
//   NAME.l4lb.DOMAIN                                      A / AAAA of the VIP's addresses
//   _NAME._tcp.l4lb.DOMAIN / _NAME._udp.l4lb.DOMAIN       SRV per VIP port: 0 1 PORT NAME.l4lb.DOMAIN
// (`l4lb` is therefore refused as an endpoint, network or service name.)
//
// Design: each endpoint id owns the records it contributed, grouped by owner name; an owner
// name's node holds the contributions of every id (so two endpoints with one name, or a
// service with many endpoints, answer with every address), and the RRsets are built on the
// first query after a change. `set` and `delete` touch only the owner names of that endpoint:
// no rebuild of the zone per change, which is what made Mesos-DNS stale between polls.
// Empty non-terminals (a name that exists only as the parent of others, such as
// NETWORK.DOMAIN or _tcp.SERVICE.DOMAIN) are reference-counted, so they answer NODATA rather
// than NXDOMAIN (RFC 8020: NXDOMAIN means nothing exists at or below the name).
import type { Answer, SoaAnswer } from 'dns-packet';
import { Ip, formatIp } from '../ipam/addr';
import { InvalidName } from '../lib/errors';
import { checkLabel, checkName, inZone, nameProblem, parentOf, reverseName } from './names';

export interface EndpointPort {
  readonly port: number;
  readonly protocol: 'tcp' | 'udp';
  /** `vxnet.ports` entries like `http=8080` name a port; named ports get their own SRV name. */
  readonly name?: string;
}

export interface Endpoint {
  readonly name: string;
  readonly network: string;
  readonly service?: string;
  readonly addresses: readonly Ip[];
  /** Ordered: index n is the endpoint's port n (VIP_<n>, HAPROXY_<n>_*). */
  readonly ports: readonly EndpointPort[];
  /** The host the endpoint runs on; not served in DNS (the catalog and the HTTP API show it). */
  readonly host?: string;
}

/** A named VIP's records: its addresses, and each (port, protocol) it serves. */
export interface VipRecords {
  readonly name: string;
  readonly addresses: readonly Ip[];
  readonly ports: readonly { readonly port: number; readonly protocol: 'tcp' | 'udp' }[];
}

/** The label under DOMAIN holding the VIPs' names (DC/OS: NAME.FRAMEWORK.l4lb.thisdcos.directory). */
export const VIP_LABEL = 'l4lb';
const VIP_ID = '\0vip:';

export interface ZoneOptions {
  /** Default `vxnet`. */
  readonly domain?: string;
  /** TTL of every record, seconds; default 5 (Spartan's). */
  readonly ttl?: number;
  /** How long resolvers may cache a negative answer (SOA minimum, RFC 2308); default `ttl`. */
  readonly negativeTtl?: number;
  /** Addresses the zone's name server (ns.DOMAIN) answers with; default none. */
  readonly nameserverAddresses?: readonly Ip[];
}

export type ZoneRcode = 'NOERROR' | 'NXDOMAIN';

export interface ZoneAnswer {
  readonly rcode: ZoneRcode;
  readonly answers: Answer[];
  readonly authorities: Answer[];
  readonly additionals: Answer[];
}

interface Rr { readonly key: string; readonly rr: Answer }

interface Node {
  /** Endpoint id -> the records it contributed at this owner name. */
  readonly byId: Map<string, Rr[]>;
  /** Deduplicated RRsets by type; dropped when a contribution changes. */
  rrsets: Map<string, Answer[]> | undefined;
}

export const DEFAULT_DOMAIN = 'vxnet';
export const DEFAULT_TTL = 5;
const ZONE_ID = '\0zone';
const MAX_TTL = 0x7fffffff;

export class Zone {
  readonly domain: string;
  readonly ttl: number;
  readonly negativeTtl: number;
  readonly nameserver: string;
  private readonly nodes = new Map<string, Node>();
  /** Names strictly between an owner name and the apex, with how many owner names are below. */
  private readonly nonTerminals = new Map<string, number>();
  /** Endpoint id -> the owner names it contributed to (what `delete` removes). */
  private readonly owners = new Map<string, string[]>();
  private serialNumber = 1;
  private turn = 0;

  constructor(options: ZoneOptions = {}) {
    this.domain = checkName(options.domain ?? DEFAULT_DOMAIN, 'DNS domain');
    this.ttl = checkTtl(options.ttl ?? DEFAULT_TTL, 'DNS TTL');
    this.negativeTtl = checkTtl(options.negativeTtl ?? this.ttl, 'DNS negative TTL');
    this.nameserver = `ns.${this.domain}`;
    const apex: Array<[string, Rr]> = [[this.domain, rr(this.domain, 'NS', this.ttl, this.nameserver)]];
    for (const ip of options.nameserverAddresses ?? []) apex.push([this.nameserver, addressRr(this.nameserver, ip, this.ttl)]);
    this.add(ZONE_ID, apex);
  }

  /** Bumped on every change (the SOA serial; RFC 1982 arithmetic, so it wraps). */
  get serial(): number { return this.serialNumber; }

  /** Number of endpoints in the zone (named VIPs not counted). */
  get size(): number { return this.owners.size - 1 - this.vipCount(); }

  private vipCount(): number {
    let n = 0;
    for (const id of this.owners.keys()) if (id.startsWith(VIP_ID)) n++;
    return n;
  }

  /**
   * Adds or replaces endpoint `id`. Throws InvalidName (naming the field and the reason) for a
   * name that cannot be served; the zone is then left as it was.
   */
  set(id: string, endpoint: Endpoint): void {
    if (id === ZONE_ID || id.startsWith(VIP_ID)) throw new InvalidName('endpoint id is reserved');
    const records = this.recordsOf(endpoint);
    this.remove(id);
    this.add(id, records);
    this.bump();
  }

  /** Adds or replaces named VIP `vip.name`'s records; throws InvalidName (the zone is then left as it was). */
  setVip(vip: VipRecords): void {
    const records = this.recordsOfVip(vip);
    const id = VIP_ID + vip.name;
    this.remove(id);
    this.add(id, records);
    this.bump();
  }

  /** Removes named VIP `name`'s records; false when there were none. */
  deleteVip(name: string): boolean {
    const id = VIP_ID + name;
    if (!this.owners.has(id)) return false;
    this.remove(id);
    this.bump();
    return true;
  }

  /** Removes endpoint `id`; false when it was not there. */
  delete(id: string): boolean {
    if (id === ZONE_ID || id.startsWith(VIP_ID) || !this.owners.has(id)) return false;
    this.remove(id);
    this.bump();
    return true;
  }

  /**
   * The authoritative answer for (qname, qtype), qname normalised (lower-case, no trailing
   * dot); undefined when the name is not this zone's (the caller forwards it). Reverse names
   * are this zone's only where an endpoint address has one: other reverse lookups go upstream.
   */
  lookup(qname: string, qtype: string): ZoneAnswer | undefined {
    const node = this.nodes.get(qname);
    if (!inZone(qname, this.domain)) {
      // A PTR node outside the domain: answer it (NODATA for other types), else not ours.
      return node ? this.answerAt(node, qname, qtype) : undefined;
    }
    if (node) return this.answerAt(node, qname, qtype);
    if (this.nonTerminals.has(qname)) return this.negative('NOERROR');
    return this.negative('NXDOMAIN');
  }

  private answerAt(node: Node, qname: string, qtype: string): ZoneAnswer {
    const rrsets = node.rrsets ?? (node.rrsets = buildRrsets(node));
    let answers: Answer[];
    if (qtype === 'ANY') {
      answers = [];
      for (const set of rrsets.values()) answers.push(...set);
      if (qname === this.domain) answers.push(this.soa(this.ttl));
    } else if (qtype === 'SOA' && qname === this.domain) {
      answers = [this.soa(this.ttl)];
    } else {
      const set = rrsets.get(qtype);
      if (!set) return this.negative('NOERROR');
      answers = this.rotate(set);
    }
    const additionals: Answer[] = [];
    if (qtype === 'SRV') {
      // The targets' addresses, so a client needs no second query (Mesos-DNS does the same).
      const seen = new Set<string>();
      for (const a of answers) {
        const target = a.type === 'SRV' ? a.data.target : undefined;
        if (target === undefined || seen.has(target)) continue;
        seen.add(target);
        const t = this.nodes.get(target);
        if (!t) continue;
        const sets = t.rrsets ?? (t.rrsets = buildRrsets(t));
        additionals.push(...(sets.get('A') ?? []), ...(sets.get('AAAA') ?? []));
      }
    }
    return { rcode: 'NOERROR', answers, authorities: [], additionals };
  }

  /** NXDOMAIN, or NODATA (NOERROR, no answers), with the SOA for negative caching (RFC 2308). */
  private negative(rcode: ZoneRcode): ZoneAnswer {
    return { rcode, answers: [], authorities: [this.soa(Math.min(this.ttl, this.negativeTtl))], additionals: [] };
  }

  private soa(ttl: number): SoaAnswer {
    return {
      name: this.domain, type: 'SOA', class: 'IN', ttl,
      data: {
        mname: this.nameserver, rname: `hostmaster.${this.domain}`, serial: this.serialNumber,
        refresh: 60, retry: 10, expire: 3600, minimum: this.negativeTtl,
      },
    };
  }

  private rotate(set: Answer[]): Answer[] {
    if (set.length < 2) return set;
    const k = this.turn++ % set.length;
    if (this.turn >= 0x40000000) this.turn = 0;
    return k === 0 ? set.slice() : set.slice(k).concat(set.slice(0, k));
  }

  private bump(): void {
    this.serialNumber = (this.serialNumber + 1) >>> 0 || 1;
  }

  /** Every record of an endpoint, validated; throws InvalidName. */
  private recordsOf(e: Endpoint): Array<[string, Rr]> {
    const name = checkLabel(String(e.name ?? ''), 'endpoint name');
    const network = checkLabel(String(e.network ?? ''), 'network name');
    const service = e.service === undefined ? name : checkLabel(e.service, 'service name');
    for (const [what, label] of [['endpoint name', name], ['network name', network], ['service name', service]]) {
      // Leading underscores are the SRV owners' (_SERVICE._tcp): an endpoint "_web" on network
      // "_tcp" would otherwise share a name with service web's SRV records.
      if (label.startsWith('_')) throw new InvalidName(`${what} "${label}" must not start with "_" (reserved for SRV names)`);
    }
    if (name === 'ns') throw new InvalidName(`endpoint name "ns" is reserved for the zone's name server (${this.nameserver})`);
    for (const [what, label] of [['endpoint name', name], ['network name', network], ['service name', service]]) {
      if (label === VIP_LABEL) throw new InvalidName(`${what} "${VIP_LABEL}" is reserved for VIP names (NAME.${VIP_LABEL}.${this.domain})`);
    }
    const d = this.domain;
    const target = fits(`${name}.${d}`);
    const out: Array<[string, Rr]> = [];
    const addressOwners = [target, fits(`${name}.${network}.${d}`)];
    if (service !== name) addressOwners.push(fits(`${service}.${d}`));
    for (const ip of e.addresses) {
      for (const owner of addressOwners) out.push([owner, addressRr(owner, ip, this.ttl)]);
      const ptr = reverseName(ip);
      out.push([ptr, rr(ptr, 'PTR', this.ttl, target)]);
    }
    for (const [i, p] of e.ports.entries()) {
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new InvalidName(`port ${i} of ${name}: ${p.port} is not a port number (1-65535)`);
      if (p.protocol !== 'tcp' && p.protocol !== 'udp') throw new InvalidName(`port ${i} of ${name}: protocol "${String(p.protocol)}" is neither tcp nor udp`);
      const srv = { priority: 0, weight: 1, port: p.port, target };
      const owner = fits(`_${service}._${p.protocol}.${d}`);
      out.push([owner, rr(owner, 'SRV', this.ttl, srv)]);
      if (p.name !== undefined) {
        const portName = checkLabel(p.name, `port ${i} name`);
        const named = fits(`_${portName}._${p.protocol}.${service}.${d}`);
        out.push([named, rr(named, 'SRV', this.ttl, srv)]);
      }
    }
    return out;
  }

  /** A named VIP's records, validated; throws InvalidName. */
  private recordsOfVip(v: VipRecords): Array<[string, Rr]> {
    const name = checkLabel(String(v.name ?? ''), 'VIP name');
    if (name.startsWith('_')) throw new InvalidName(`VIP name "${name}" must not start with "_" (reserved for SRV names)`);
    const d = `${VIP_LABEL}.${this.domain}`;
    const target = fits(`${name}.${d}`);
    const out: Array<[string, Rr]> = v.addresses.map((ip) => [target, addressRr(target, ip, this.ttl)]);
    for (const p of v.ports) {
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new InvalidName(`VIP /${name}: ${p.port} is not a port number (1-65535)`);
      if (p.protocol !== 'tcp' && p.protocol !== 'udp') throw new InvalidName(`VIP /${name}: protocol "${String(p.protocol)}" is neither tcp nor udp`);
      const owner = fits(`_${name}._${p.protocol}.${d}`);
      out.push([owner, rr(owner, 'SRV', this.ttl, { priority: 0, weight: 1, port: p.port, target })]);
    }
    return out;
  }

  private add(id: string, records: Array<[string, Rr]>): void {
    const owned: string[] = [];
    for (const [owner, record] of records) {
      let node = this.nodes.get(owner);
      if (!node) {
        node = { byId: new Map(), rrsets: undefined };
        this.nodes.set(owner, node);
        this.countNonTerminals(owner, +1);
      }
      let mine = node.byId.get(id);
      if (!mine) {
        mine = [];
        node.byId.set(id, mine);
        owned.push(owner);
      }
      mine.push(record);
      node.rrsets = undefined;
    }
    this.owners.set(id, owned);
  }

  private remove(id: string): void {
    const owned = this.owners.get(id);
    if (!owned) return;
    for (const owner of owned) {
      const node = this.nodes.get(owner);
      if (!node) continue;
      node.byId.delete(id);
      node.rrsets = undefined;
      if (node.byId.size === 0) {
        this.nodes.delete(owner);
        this.countNonTerminals(owner, -1);
      }
    }
    this.owners.delete(id);
  }

  /** Counts `owner` in each name strictly between it and the apex (none for reverse names). */
  private countNonTerminals(owner: string, delta: 1 | -1): void {
    if (!inZone(owner, this.domain)) return;
    for (let n = parentOf(owner); n.length > this.domain.length; n = parentOf(n)) {
      const count = (this.nonTerminals.get(n) ?? 0) + delta;
      if (count > 0) this.nonTerminals.set(n, count);
      else this.nonTerminals.delete(n);
    }
  }
}

function fits(name: string): string {
  const problem = nameProblem(name);
  if (problem) throw new InvalidName(`DNS name "${name}" cannot be served: ${problem}`);
  return name;
}

function checkTtl(ttl: number, what: string): number {
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL) throw new InvalidName(`${what} ${ttl}: not a whole number of seconds (0-${MAX_TTL})`);
  return ttl;
}

function rr(name: string, type: 'NS' | 'PTR', ttl: number, data: string): Rr;
function rr(name: string, type: 'SRV', ttl: number, data: { priority: number; weight: number; port: number; target: string }): Rr;
function rr(name: string, type: 'NS' | 'PTR' | 'SRV', ttl: number, data: string | { priority: number; weight: number; port: number; target: string }): Rr {
  const record = (typeof data === 'string'
    ? { name, type, class: 'IN', ttl, data }
    : { name, type: 'SRV', class: 'IN', ttl, data }) as Answer;
  return { key: `${type} ${typeof data === 'string' ? data : `${data.port} ${data.target}`}`, rr: record };
}

function addressRr(name: string, ip: Ip, ttl: number): Rr {
  const text = formatIp(ip);
  const type = ip.family === 4 ? 'A' : 'AAAA';
  return { key: `${type} ${text}`, rr: { name, type, class: 'IN', ttl, data: text } };
}

/** RRsets by type, each record once (two endpoints may contribute the same one). */
function buildRrsets(node: Node): Map<string, Answer[]> {
  const sets = new Map<string, Answer[]>();
  const seen = new Set<string>();
  for (const records of node.byId.values()) {
    for (const { key, rr: record } of records) {
      if (seen.has(key)) continue;
      seen.add(key);
      const set = sets.get(record.type);
      if (set) set.push(record);
      else sets.set(record.type, [record]);
    }
  }
  return sets;
}
