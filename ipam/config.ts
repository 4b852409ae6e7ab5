// The IPAM section of a network config, canonicalized once: ranges (host-local's form, with
// the legacy top-level subnet and runtimeConfig.ipRanges prepended as host-local does),
// routes, the store's data directory, and the static addresses a runtime asked for.
import { InvalidNetworkConfig } from '../lib/errors';
import { Ip, parseCidr, parseIp } from './addr';
import { RangeSet, canonicalRangeSets, setToJson } from './range';
import { isObject } from '../lib/guards';

export interface Route {
  readonly dst: string;
  readonly gw?: string;
}

export interface IpamConf {
  /** The network name (the config's `name`): the pool's identity. */
  readonly network: string;
  readonly rangeSets: readonly RangeSet[];
  readonly routes: readonly Route[];
  /** Directory of the embedded store, when ipam.dataDir sets one. */
  readonly dataDir?: string;
}


function parseRoutes(input: unknown, field: string): Route[] {
  if (input === undefined || input === null) return [];
  if (!Array.isArray(input)) throw new InvalidNetworkConfig(`${field}: must be a list of {"dst": CIDR, "gw"?: IP}`);
  return input.map((r, i) => {
    if (!isObject(r) || typeof r.dst !== 'string' || !parseCidr(r.dst)) {
      throw new InvalidNetworkConfig(`${field}[${i}].dst: ${JSON.stringify(isObject(r) ? r.dst : r)} is not a valid CIDR`);
    }
    if (r.gw !== undefined && (typeof r.gw !== 'string' || !parseIp(r.gw))) {
      throw new InvalidNetworkConfig(`${field}[${i}].gw: ${JSON.stringify(r.gw)} is not an IP address`);
    }
    return r.gw === undefined ? { dst: r.dst } : { dst: r.dst, gw: r.gw as string };
  });
}

/** Canonicalizes `netconf.ipam`; `name` is the network's name, runtimeConfig its capabilities. */
export function parseIpamConf(name: string, ipam: unknown, runtimeConfig?: Record<string, unknown>): IpamConf {
  if (!isObject(ipam)) throw new InvalidNetworkConfig('ipam: must be an object with "ranges" (or "subnet")');
  const sets: unknown[] = [];
  if (runtimeConfig && Array.isArray(runtimeConfig.ipRanges)) sets.push(...runtimeConfig.ipRanges);
  if (ipam.subnet !== undefined) {
    sets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  }
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges)) throw new InvalidNetworkConfig('ipam.ranges: must be a list of range sets, e.g. [[{"subnet":"10.22.0.0/16"}]]');
    sets.push(...ipam.ranges);
  }
  if (sets.length === 0) throw new InvalidNetworkConfig('ipam.ranges: missing; give at least one range set, e.g. [[{"subnet":"10.22.0.0/16"}]]');
  const rangeSets = canonicalRangeSets(sets, ipam.ranges !== undefined && ipam.subnet === undefined && !runtimeConfig?.ipRanges ? 'ipam.ranges' : 'ipam ranges');
  const routes = parseRoutes(ipam.routes, 'ipam.routes');
  if (ipam.dataDir !== undefined && (typeof ipam.dataDir !== 'string' || !ipam.dataDir.startsWith('/'))) {
    throw new InvalidNetworkConfig(`ipam.dataDir: ${JSON.stringify(ipam.dataDir)} must be an absolute path`);
  }
  return { network: name, rangeSets, routes, ...(typeof ipam.dataDir === 'string' ? { dataDir: ipam.dataDir } : {}) };
}

/**
 * The IPAM config of ranges already typed and checked (range.ts hostRange), without routes:
 * what the Docker driver builds from its parsed pools and an overlay host's blocks.
 */
export const ipamConfOf = (network: string, rangeSets: readonly RangeSet[]): IpamConf => ({ network, rangeSets, routes: [] });

/** The pool definition stored for a network; two definitions conflict when their subnets differ. */
export const poolDefinition = (conf: IpamConf): string => JSON.stringify(conf.rangeSets.map(setToJson));

export function subnetsOf(definition: string): string[] {
  const sets = JSON.parse(definition) as Array<Array<{ subnet: string }>>;
  return sets.flatMap((set) => set.map((r) => r.subnet)).sort();
}

/**
 * Static addresses asked for, in the order the conventions give precedence: runtimeConfig.ips
 * (capability), args.cni.ips, CNI_ARGS IP= (comma separated). Entries may carry a prefix.
 */
export function requestedIps(netconf: Record<string, unknown>, cniArgs: ReadonlyMap<string, string>): Ip[] {
  const sources: Array<[string, unknown]> = [];
  const rc = netconf.runtimeConfig;
  if (isObject(rc) && rc.ips !== undefined) sources.push(['runtimeConfig.ips', rc.ips]);
  const args = netconf.args;
  if (isObject(args) && isObject(args.cni) && args.cni.ips !== undefined) sources.push(['args.cni.ips', args.cni.ips]);
  const ipArg = cniArgs.get('IP');
  if (ipArg !== undefined) sources.push(['CNI_ARGS IP', ipArg.split(',')]);
  for (const [field, value] of sources) {
    if (!Array.isArray(value)) throw new InvalidNetworkConfig(`${field}: must be a list of addresses`);
    if (value.length === 0) continue;
    return value.map((v) => {
      const text = typeof v === 'string' ? v.split('/')[0] : '';
      const ip = parseIp(text);
      if (!ip) throw new InvalidNetworkConfig(`${field}: ${JSON.stringify(v)} is not an IP address`);
      return ip;
    });
  }
  return [];
}

