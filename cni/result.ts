// CNI results: one internal shape (the 1.1.0 one), converted to the config's cniVersion on
// output and parsed from any supported version on input (prevResult). Pure.
import { DecodingFailure } from '../lib/errors';
import { CniVersion, compareVersions } from './version';
import { isObject } from '../lib/guards';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface CniIpConfig {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}


function compactDns(dns: CniDns | undefined): CniDns | undefined {
  if (!dns) return undefined;
  const out: CniDns = {};
  if (dns.nameservers?.length) out.nameservers = dns.nameservers;
  if (dns.domain) out.domain = dns.domain;
  if (dns.search?.length) out.search = dns.search;
  if (dns.options?.length) out.options = dns.options;
  return out;
}

/** The result as the runtime expects it in `version` (0.3.x and 0.4.0 add ips[].version; 1.0.0 lacks 1.1.0's fields). */
export function formatResult(result: CniResult, version: CniVersion): Record<string, unknown> {
  const pre1 = compareVersions(version, '1.0.0') < 0;
  const has11 = compareVersions(version, '1.1.0') >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i) => {
      const { socketPath, pciID, ...rest } = i;
      return has11 ? { ...rest, ...(socketPath ? { socketPath } : {}), ...(pciID ? { pciID } : {}) } : rest;
    });
  }
  out.ips = (result.ips ?? []).map((ip) => (pre1 ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : { ...ip }));
  if (result.routes) {
    out.routes = result.routes.map((r) => (has11 ? { ...r } : { dst: r.dst, ...(r.gw ? { gw: r.gw } : {}) }));
  }
  out.dns = compactDns(result.dns) ?? {};
  return out;
}

/** Parses a prevResult (or a delegated plugin's result) of any version vxnet speaks into the internal shape. */
export function parseResult(input: unknown, what = 'prevResult'): CniResult {
  if (!isObject(input)) throw new DecodingFailure(`${what}: must be a CNI result object`);
  const result: CniResult = {};
  if (input.interfaces !== undefined) {
    if (!Array.isArray(input.interfaces)) throw new DecodingFailure(`${what}.interfaces: must be a list`);
    result.interfaces = input.interfaces.map((i, n) => {
      if (!isObject(i) || typeof i.name !== 'string') throw new DecodingFailure(`${what}.interfaces[${n}]: must have a "name"`);
      return i as unknown as CniInterface;
    });
  }
  if (input.ips !== undefined) {
    if (!Array.isArray(input.ips)) throw new DecodingFailure(`${what}.ips: must be a list`);
    result.ips = input.ips.map((ip, n) => {
      if (!isObject(ip) || typeof ip.address !== 'string') throw new DecodingFailure(`${what}.ips[${n}]: must have an "address"`);
      const out: CniIpConfig = { address: ip.address };
      if (typeof ip.gateway === 'string') out.gateway = ip.gateway;
      if (typeof ip.interface === 'number') out.interface = ip.interface;
      return out;
    });
  } else if (isObject(input.ip4) || isObject(input.ip6)) {
    throw new DecodingFailure(`${what}: results older than CNI 0.3.0 (ip4/ip6) are not supported`);
  }
  if (input.routes !== undefined) {
    if (!Array.isArray(input.routes)) throw new DecodingFailure(`${what}.routes: must be a list`);
    result.routes = input.routes.map((r, n) => {
      if (!isObject(r) || typeof r.dst !== 'string') throw new DecodingFailure(`${what}.routes[${n}]: must have a "dst"`);
      return r as unknown as CniRoute;
    });
  }
  if (isObject(input.dns)) result.dns = input.dns as CniDns;
  return result;
}
