// Addresses as (family, bigint): one code path for IPv4 and IPv6. ip-num does the parsing and
// formatting; everything else here is integer arithmetic on the bigint.
import { IPv4, IPv6, Validator, collapseIPv6Number } from 'ip-num';

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

export interface Cidr {
  readonly ip: Ip;
  readonly prefix: number;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

/** Parses a bare IPv4 or IPv6 address; undefined when it is neither. */
// ip-num parses and prints addresses through strings of binary digits (tens of microseconds
// each); a long-lived vxnetd meets the same ones (a network's subnets, gateways, ranges) on every
// call, so both directions are remembered, up to a bound.
const MEMO_MAX = 4096;
const parsedIps = new Map<string, Ip | undefined>();
const printedIps: Record<Family, Map<bigint, string>> = { 4: new Map(), 6: new Map() };
function remember<K, V>(memo: Map<K, V>, key: K, value: V): V {
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, value);
  return value;
}

export function parseIp(text: string): Ip | undefined {
  if (typeof text !== 'string') return undefined;
  return parsedIps.has(text) ? parsedIps.get(text) : remember(parsedIps, text, parseIpText(text));
}

function parseIpText(text: string): Ip | undefined {
  if (text.includes(':')) {
    // ip-num accepts a zone ("fe80::1%eth0") and drops it; a pool address has none.
    if (text.includes('%')) return undefined;
    if (!Validator.isValidIPv6String(text)[0]) return undefined;
    return { family: 6, value: IPv6.fromString(text).getValue() };
  }
  if (!Validator.isValidIPv4String(text)[0]) return undefined;
  return { family: 4, value: IPv4.fromString(text).getValue() };
}

/** Parses "address/prefix"; the address may have host bits set (see networkOf). */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > familyBits(ip.family)) return undefined;
  return { ip, prefix };
}

/** RFC 5952 text ("2001:db8::1"), as Go's net.IP prints it: runtimes hand our results back in this form. */
export function formatIp(ip: Ip): string {
  const memo = printedIps[ip.family];
  return memo.get(ip.value) ?? remember(memo, ip.value,
    ip.family === 4 ? IPv4.fromNumber(ip.value).toString() : collapseIPv6Number(IPv6.fromBigInt(ip.value).toString()));
}

export const formatCidr = (cidr: Cidr): string => `${formatIp(cidr.ip)}/${cidr.prefix}`;

const hostMask = (family: Family, prefix: number): bigint =>
  (1n << BigInt(familyBits(family) - prefix)) - 1n;

export function networkOf(cidr: Cidr): Cidr {
  const value = cidr.ip.value & ~hostMask(cidr.ip.family, cidr.prefix);
  return { ip: { family: cidr.ip.family, value }, prefix: cidr.prefix };
}

/** The last address of the subnet (the IPv4 broadcast address). */
export function lastOf(cidr: Cidr): Ip {
  return { family: cidr.ip.family, value: networkOf(cidr).ip.value | hostMask(cidr.ip.family, cidr.prefix) };
}

export function contains(cidr: Cidr, ip: Ip): boolean {
  return ip.family === cidr.ip.family && networkOf({ ip, prefix: cidr.prefix }).ip.value === networkOf(cidr).ip.value;
}

export const sameIp = (a: Ip, b: Ip): boolean => a.family === b.family && a.value === b.value;

export const offsetIp = (ip: Ip, delta: bigint): Ip => ({ family: ip.family, value: ip.value + delta });

/** The gateway a subnet gets when none is given: its first address after the network's (as the reference bridge plugin and Docker choose). */
export const defaultGatewayOf = (subnet: Cidr): Ip => offsetIp(networkOf(subnet).ip, 1n);

/** A fixed-width hex key that sorts like the address: the stores index and range-scan on it. */
export function ipKey(ip: Ip): string {
  return ip.value.toString(16).padStart(ip.family === 4 ? 8 : 32, '0');
}

export function ipFromKey(key: string): Ip {
  return { family: key.length === 8 ? 4 : 6, value: BigInt('0x' + key) };
}

/** Size of a subnet, as a bigint (IPv6 subnets are larger than any number). */
export const subnetSize = (cidr: Cidr): bigint => 1n << BigInt(familyBits(cidr.ip.family) - cidr.prefix);
