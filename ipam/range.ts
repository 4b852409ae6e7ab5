// Canonical address ranges, with host-local's semantics: a range set yields one address per
// attachment, its ranges are walked in order, the gateway and the subnet's network and
// broadcast addresses are never handed out. Pure: no I/O.
import { InvalidNetworkConfig } from '../lib/errors';
import {
  Cidr, Family, Ip, contains, defaultGatewayOf, familyBits, formatCidr, formatIp, lastOf, networkOf, offsetIp, parseCidr, parseIp,
} from './addr';

export interface RangeInput {
  subnet?: unknown;
  rangeStart?: unknown;
  rangeEnd?: unknown;
  gateway?: unknown;
}

export interface IpRange {
  readonly subnet: Cidr;
  readonly rangeStart: Ip;
  readonly rangeEnd: Ip;
  readonly gateway: Ip;
}

export type RangeSet = readonly IpRange[];

function optionalIp(value: unknown, field: string): Ip | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const ip = typeof value === 'string' ? parseIp(value) : undefined;
  if (!ip) throw new InvalidNetworkConfig(`${field}: ${JSON.stringify(value)} is not an IP address`);
  return ip;
}

/** Fills in host-local's defaults and rejects what host-local rejects, naming the field. */
export function canonicalRange(input: RangeInput, field: string): IpRange {
  if (input === null || typeof input !== 'object') throw new InvalidNetworkConfig(`${field}: must be an object with a "subnet"`);
  if (typeof input.subnet !== 'string' || input.subnet === '') {
    throw new InvalidNetworkConfig(`${field}.subnet: missing (a CIDR such as "10.22.0.0/16" is required)`);
  }
  const parsed = parseCidr(input.subnet);
  if (!parsed) throw new InvalidNetworkConfig(`${field}.subnet: ${JSON.stringify(input.subnet)} is not a valid CIDR`);
  const subnet = networkOf(parsed);
  if (subnet.ip.value !== parsed.ip.value) {
    throw new InvalidNetworkConfig(`${field}.subnet: ${input.subnet} has host bits set; network is ${formatCidr(subnet)}`);
  }
  const family = subnet.ip.family;
  if (subnet.prefix > familyBits(family) - 2) {
    throw new InvalidNetworkConfig(`${field}.subnet: ${input.subnet} is too small to allocate from (at most /${familyBits(family) - 2})`);
  }
  const rangeStart = optionalIp(input.rangeStart, `${field}.rangeStart`);
  const rangeEnd = optionalIp(input.rangeEnd, `${field}.rangeEnd`);
  const gateway = optionalIp(input.gateway, `${field}.gateway`);
  return hostRange(subnet, { ...(rangeStart ? { rangeStart } : {}), ...(rangeEnd ? { rangeEnd } : {}), ...(gateway ? { gateway } : {}) }, field);
}

export interface RangeBounds {
  readonly rangeStart?: Ip;
  readonly rangeEnd?: Ip;
  readonly gateway?: Ip;
}

/**
 * A range from typed values, with host-local's defaults (the subnet's host addresses, the
 * gateway its first) and checks; for callers that hold parsed addresses (the Docker driver's
 * pools, an overlay host's blocks), so nothing is formatted only to be parsed again.
 */
export function hostRange(cidr: Cidr, bounds: RangeBounds, field = 'range'): IpRange {
  const subnet = networkOf(cidr);
  const family = subnet.ip.family;
  if (subnet.ip.value !== cidr.ip.value) throw new InvalidNetworkConfig(`${field}.subnet: ${formatCidr(cidr)} has host bits set; network is ${formatCidr(subnet)}`);
  if (subnet.prefix > familyBits(family) - 2) {
    throw new InvalidNetworkConfig(`${field}.subnet: ${formatCidr(cidr)} is too small to allocate from (at most /${familyBits(family) - 2})`);
  }
  const last = lastOf(subnet);
  const inside = (ip: Ip, name: string): Ip => {
    if (!contains(subnet, ip)) throw new InvalidNetworkConfig(`${field}.${name}: ${formatIp(ip)} is outside subnet ${formatCidr(subnet)}`);
    return ip;
  };
  const firstHost = defaultGatewayOf(subnet);
  const lastHost = family === 4 ? offsetIp(last, -1n) : last;
  const rangeStart = bounds.rangeStart ? inside(bounds.rangeStart, 'rangeStart') : firstHost;
  const rangeEnd = bounds.rangeEnd ? inside(bounds.rangeEnd, 'rangeEnd') : lastHost;
  for (const [name, ip] of [['rangeStart', rangeStart], ['rangeEnd', rangeEnd]] as const) {
    if (ip.value === subnet.ip.value || (family === 4 && ip.value === last.value)) {
      throw new InvalidNetworkConfig(`${field}.${name}: ${formatIp(ip)} is the subnet's ${ip.value === subnet.ip.value ? 'network' : 'broadcast'} address`);
    }
  }
  if (rangeStart.value > rangeEnd.value) {
    throw new InvalidNetworkConfig(`${field}: rangeStart ${formatIp(rangeStart)} is after rangeEnd ${formatIp(rangeEnd)}`);
  }
  const gateway = bounds.gateway ? inside(bounds.gateway, 'gateway') : firstHost;
  return { subnet, rangeStart, rangeEnd, gateway };
}

const overlaps = (a: IpRange, b: IpRange): boolean =>
  a.subnet.ip.family === b.subnet.ip.family && a.rangeStart.value <= b.rangeEnd.value && b.rangeStart.value <= a.rangeEnd.value;

/** Canonicalizes `ranges` (a list of range sets); sets and ranges must not overlap. */
export function canonicalRangeSets(input: unknown, field = 'ipam.ranges'): RangeSet[] {
  if (!Array.isArray(input) || input.length === 0) {
    throw new InvalidNetworkConfig(`${field}: must be a non-empty list of range sets, e.g. [[{"subnet":"10.22.0.0/16"}]]`);
  }
  const sets = input.map((set, i): RangeSet => {
    if (!Array.isArray(set) || set.length === 0) throw new InvalidNetworkConfig(`${field}[${i}]: must be a non-empty list of ranges`);
    const ranges = set.map((r, j) => canonicalRange(r as RangeInput, `${field}[${i}][${j}]`));
    const family = ranges[0].subnet.ip.family;
    ranges.forEach((r, j) => {
      if (r.subnet.ip.family !== family) throw new InvalidNetworkConfig(`${field}[${i}][${j}]: mixes IPv${r.subnet.ip.family} into an IPv${family} range set`);
      for (let k = 0; k < j; k++) {
        if (overlaps(ranges[k], r)) throw new InvalidNetworkConfig(`${field}[${i}][${j}]: overlaps ${field}[${i}][${k}]`);
      }
    });
    return ranges;
  });
  sets.forEach((set, i) => {
    for (let k = 0; k < i; k++) {
      if (set.some((a) => sets[k].some((b) => overlaps(a, b)))) throw new InvalidNetworkConfig(`${field}: range set ${i} overlaps with ${k}`);
    }
  });
  return sets;
}

export const setFamily = (set: RangeSet): Family => set[0].subnet.ip.family;

/** The range of the set that may hand out ip (inside rangeStart..rangeEnd), if any. */
export function rangeHolding(set: RangeSet, ip: Ip): IpRange | undefined {
  return set.find((r) => r.subnet.ip.family === ip.family && ip.value >= r.rangeStart.value && ip.value <= r.rangeEnd.value);
}

/** Whether ip is a gateway of any range of the set (never handed out). */
export const isGateway = (set: RangeSet, ip: Ip): boolean => set.some((r) => r.gateway.family === ip.family && r.gateway.value === ip.value);

/** Human form of a set, as errors and vxnetctl show it: "10.1.0.2-10.1.0.254,10.2.0.2-10.2.0.254". */
export const describeSet = (set: RangeSet): string =>
  set.map((r) => `${formatIp(r.rangeStart)}-${formatIp(r.rangeEnd)}`).join(',');

/** Number of addresses the set can hand out (ranges minus gateways inside them). */
export function setCapacity(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set) {
    n += r.rangeEnd.value - r.rangeStart.value + 1n;
    if (r.gateway.value >= r.rangeStart.value && r.gateway.value <= r.rangeEnd.value) n -= 1n;
  }
  return n;
}

/** Plain JSON of a set, for storage and comparison across definitions of one network. */
export const setToJson = (set: RangeSet): Array<{ subnet: string; rangeStart: string; rangeEnd: string; gateway: string }> =>
  set.map((r) => ({ subnet: formatCidr(r.subnet), rangeStart: formatIp(r.rangeStart), rangeEnd: formatIp(r.rangeEnd), gateway: formatIp(r.gateway) }));
