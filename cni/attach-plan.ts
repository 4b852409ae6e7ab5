// What the vxnet plugin attaches, computed from the configuration and IPAM's answer: typed
// addresses and routes (parsed once, where IPAM's answer comes in; printed again only in the
// result), the bridge's setup, the container's routes, and the result itself. Pure.
import { InvalidNetworkConfig } from '../lib/errors';
import { Cidr, Ip, defaultGatewayOf, formatCidr, formatIp, networkOf, parseCidr, parseIp } from '../ipam/addr';
import type { BridgeSpec } from '../datapath/bridge';
import type { AttachedIp, ContainerRoute } from '../datapath/attach';
import type { RoutedNetworkSpec } from '../datapath/routed';
import { routedSpecOf } from '../overlay/local';
import { VxnetNetConf, missingOverlayState } from './netconf';
import { CniDns, CniInterface, CniResult, CniRoute } from './result';

/** An address as IPAM gave it: the gateway only when IPAM named one. */
export interface ParsedIp {
  readonly cidr: Cidr;
  readonly gateway: Ip | undefined;
}

/** A route with the fields vxnet does not act on but reports (mtu, advmss, ...). */
export interface PlannedRoute extends ContainerRoute {
  readonly extra: Omit<CniRoute, 'dst' | 'gw'>;
}

/** IPAM's answer, typed. */
export interface Allocated {
  readonly ips: readonly ParsedIp[];
  readonly routes: readonly PlannedRoute[];
  readonly dns: CniDns | undefined;
}

const DEFAULT_DST: Record<4 | 6, Cidr> = { 4: { ip: { family: 4, value: 0n }, prefix: 0 }, 6: { ip: { family: 6, value: 0n }, prefix: 0 } };

/** ADD and CHECK need the host's blocks in overlay mode; DEL and GC do not. */
export function requireOverlayState(conf: VxnetNetConf): void {
  if (conf.overlay && !conf.overlay.state?.blocks.length) throw missingOverlayState(conf);
}

/** Overlay mode with the host's state: the routed setup; bridge mode: undefined. */
export function routedSpecFor(conf: VxnetNetConf): RoutedNetworkSpec | undefined {
  return conf.overlay?.state ? routedSpecOf(conf.overlay.state, conf) : undefined;
}

/** The addresses of a result (IPAM's, or a prevResult). */
export function parseIps(result: CniResult): ParsedIp[] {
  return (result.ips ?? []).map((ip) => {
    const cidr = parseCidr(ip.address);
    if (!cidr) throw new InvalidNetworkConfig(`IPAM returned an invalid address ${JSON.stringify(ip.address)}`);
    return { cidr, gateway: ip.gateway ? parseIp(ip.gateway) : undefined };
  });
}

/** Routes as IPAM (or its configuration) names them; one whose destination does not parse is dropped, as before. */
export function parseRoutes(input: readonly CniRoute[]): PlannedRoute[] {
  const routes: PlannedRoute[] = [];
  for (const r of input) {
    const dst = parseCidr(r.dst);
    if (!dst) continue;
    const { dst: _dst, gw, ...extra } = r;
    routes.push({ dst, gw: gw ? parseIp(gw) : undefined, extra });
  }
  return routes;
}

/** The answer of an IPAM plugin run as a separate executable, typed. */
export function parseAllocated(result: CniResult): Allocated {
  return { ips: parseIps(result), routes: parseRoutes(result.routes ?? []), dns: result.dns };
}

/** Addresses as a result prints them. */
export const formatIps = (ips: readonly ParsedIp[]): Array<{ address: string; gateway?: string }> =>
  ips.map((ip) => ({ address: formatCidr(ip.cidr), ...(ip.gateway ? { gateway: formatIp(ip.gateway) } : {}) }));

/** Gateway per address: IPAM's, else network+1 as the bridge plugin does. */
export function gatewayOf(ip: ParsedIp): Ip {
  return ip.gateway ?? defaultGatewayOf(ip.cidr);
}

/** The addresses with their effective gateways, as the datapath takes them. */
export const attachedIps = (ips: readonly ParsedIp[]): AttachedIp[] => ips.map((ip) => ({ cidr: ip.cidr, gateway: gatewayOf(ip) }));

export function bridgeSpecFor(conf: VxnetNetConf, ips: readonly ParsedIp[]): BridgeSpec {
  const base = { network: conf.name, name: conf.bridge, mtu: conf.mtu, ipMasq: conf.ipMasq, natTable: conf.natTable };
  const subnets = conf.ipam ? conf.ipam.rangeSets.flat().map((r) => r.subnet) : ips.map((ip) => networkOf(ip.cidr));
  const gateways = conf.isGateway ? ips.map((ip) => ({ ip: gatewayOf(ip), prefix: ip.cidr.prefix })) : [];
  return { ...base, gateways, subnets };
}

/** The routes to program in the container: IPAM's (a gateway filled in when the bridge is one), then a default via the gateway per family. */
export function containerRoutes(conf: VxnetNetConf, ips: readonly ParsedIp[], ipamRoutes: readonly PlannedRoute[]): PlannedRoute[] {
  const routes: PlannedRoute[] = [];
  const seen = new Set<string>();
  const push = (r: PlannedRoute): void => {
    const key = `${r.dst.ip.family}/${r.dst.ip.value}/${r.dst.prefix}|${r.gw?.value ?? ''}`;
    if (!seen.has(key)) { seen.add(key); routes.push(r); }
  };
  const gwFor = (family: 4 | 6): Ip | undefined => {
    const ip = ips.find((i) => i.cidr.ip.family === family);
    return ip ? gatewayOf(ip) : undefined;
  };
  const defaults = new Set<number>();
  for (const r of ipamRoutes) {
    const gw = r.gw ?? (conf.isGateway ? gwFor(r.dst.ip.family) : undefined);
    if (r.dst.prefix === 0) defaults.add(r.dst.ip.family);
    push({ ...r, gw });
  }
  if (conf.isGateway) {
    for (const family of [4, 6] as const) {
      const gw = gwFor(family);
      if (gw && !defaults.has(family)) push({ dst: DEFAULT_DST[family], gw, extra: {} });
    }
  }
  return routes;
}

/** A route as the kernel takes it: the destination's network. */
export const kernelRoute = (r: ContainerRoute): ContainerRoute => ({ dst: networkOf(r.dst), gw: r.gw });

/** The interfaces an attachment reports: bridge (bridge mode), host veth, the container's. */
export interface ResultInterfaces {
  readonly bridge: { readonly name: string; readonly mac: string } | undefined;
  readonly hostVeth: { readonly name: string; readonly mac: string };
  readonly container: { readonly name: string; readonly mac: string; readonly sandbox: string; readonly mtu: number | undefined };
}

/** The ADD's result (internal shape): where the typed addresses become strings again. */
export function addResult(ifs: ResultInterfaces, allocated: Allocated, routes: readonly PlannedRoute[], dns: CniDns | undefined): CniResult {
  const c = ifs.container;
  const interfaces: CniInterface[] = [
    ...(ifs.bridge ? [{ name: ifs.bridge.name, mac: ifs.bridge.mac }] : []),
    { name: ifs.hostVeth.name, mac: ifs.hostVeth.mac },
    { name: c.name, mac: c.mac, sandbox: c.sandbox, ...(c.mtu ? { mtu: c.mtu } : {}) },
  ];
  return {
    interfaces,
    ips: formatIps(allocated.ips).map((ip) => ({ ...ip, interface: interfaces.length - 1 })),
    routes: routes.map((r) => ({ dst: formatCidr(r.dst), ...(r.gw ? { gw: formatIp(r.gw) } : {}), ...r.extra })),
    dns: dns ?? allocated.dns ?? {},
  };
}
