// How containers attach to an overlay network on a host: routed, with no bridge, the way
// Calico attaches them. Each container has its own veth pair; the host end carries a host route
// (/32 or /128) to each of the container's addresses, and the container sends everything to its
// block's gateway, an address on the host's VXLAN device (overlay/apply.ts). A packet from
// another host goes VXLAN device -> route -> the container's veth, one routing decision and no
// bridge to pass; the bench measured the bridge's pass-up and forward as the gap to a plain
// bridged VXLAN (README, "Overlay throughput").
//
// The CNI plugin programs both ends completely: the container's addresses without a prefix
// route, a permanent neighbour entry for each gateway (the host veth's MAC) and the routes via
// the gateway `onlink`; on the host, the host routes and a permanent neighbour entry per
// address (the container's MAC), so no ARP or ND is needed either way (IPv6 needs none of the
// host veth's link-local address, which would wait for duplicate address detection). Docker
// configures the container end itself (address with its prefix route, default via the
// gateway): the host end answers ARP for the rest of the subnet by proxy_arp, and for the
// gateway because it is a local address.
//
// Host-wide setup (forwarding, masquerading, FORWARD accept rules by address) runs when the
// VXLAN device's alias does not carry the current setup's fingerprint: once per network and
// configuration, and again after the agent re-creates the device.
import { DatapathFailure, TryAgainLater } from '../lib/errors';
import { Cidr, Ip, contains, formatCidr } from '../ipam/addr';
import { ensureForwardRules, ensureMasquerade, forwardRulesPresent, masqueradePresent, removeForwardAccept, removeMasquerade, routedForwardRules } from '../net/nat';
import { LinkInfo, Rtnl } from '../net/rtnl';
import { enableForwarding } from '../net/sysctl';
import { setupAlias, setupAliasPrefix } from './names';

export interface RoutedNetworkSpec {
  readonly network: string;
  /** The network's VXLAN device on this host (the agent's): it holds the gateways and the setup's fingerprint. */
  readonly device: string;
  /** The network's whole subnets: not masqueraded among themselves, accepted through FORWARD. */
  readonly subnets: readonly Cidr[];
  readonly ipMasq: boolean;
  readonly natTable: string;
}

/** The device alias recording which setup was applied. Pure. */
export function routedFingerprint(spec: RoutedNetworkSpec): string {
  return setupAlias(spec.network, ['routed', spec.network, spec.subnets.map(formatCidr), spec.ipMasq, spec.natTable]);
}

const familiesOf = (subnets: readonly Cidr[]): Array<4 | 6> => [...new Set(subnets.map((s) => s.ip.family))];

/** Host-wide setup: forwarding, masquerading, the FORWARD accept rules (anchored on the device's name). */
function applyHostSetup(spec: RoutedNetworkSpec): void {
  const families = familiesOf(spec.subnets);
  enableForwarding(families);
  if (spec.ipMasq) ensureMasquerade(spec.natTable, spec.network, spec.subnets);
  ensureForwardRules(`overlay network ${spec.network}`, families, (family) => routedForwardRules(spec.device, family, spec.subnets));
}

export function missingDevice(spec: RoutedNetworkSpec): TryAgainLater {
  return new TryAgainLater(`network ${spec.network}: the overlay's VXLAN device ${spec.device} is missing on this host; is vxnetd's overlay agent running?`);
}

/**
 * Ensures the host-wide setup of the network; returns its VXLAN device. `lookup`: the device's
 * lookup, already sent. TryAgainLater when the agent has not made the device (yet).
 */
export async function ensureRoutedNetwork(host: Rtnl, spec: RoutedNetworkSpec, lookup?: Promise<LinkInfo | undefined>): Promise<LinkInfo> {
  const device = await (lookup ?? host.link(spec.device));
  if (!device) throw missingDevice(spec);
  if (device.kind !== 'vxlan') throw new DatapathFailure(`${spec.device} is a ${device.kind ?? 'plain'} device, not network ${spec.network}'s VXLAN device`);
  const fingerprint = routedFingerprint(spec);
  if (device.alias !== fingerprint) {
    applyHostSetup(spec);
    await host.setLink(device.index, { alias: fingerprint });
  }
  return device;
}

/** What of the host-wide setup is missing (CHECK); undefined when all of it is there. */
export function routedSetupDrift(spec: RoutedNetworkSpec, device: LinkInfo | undefined): string | undefined {
  if (!device) return `the overlay's VXLAN device ${spec.device} is missing`;
  if (spec.ipMasq && !masqueradePresent(spec.natTable, spec.subnets)) {
    return `masquerading for ${spec.subnets.map(formatCidr).join(', ')} is missing from nftables table ${spec.natTable}`;
  }
  for (const family of familiesOf(spec.subnets)) {
    if (!forwardRulesPresent(family, routedForwardRules(spec.device, family, spec.subnets))) {
      return `the FORWARD accept rules of overlay network ${spec.network} (comment vxnet:${spec.device}) are missing (IPv${family})`;
    }
  }
  return undefined;
}

/** Removes the host-wide setup (the network's last container here is gone); the device stays the agent's. */
export async function teardownRoutedNetwork(spec: RoutedNetworkSpec): Promise<void> {
  removeForwardAccept(spec.device);
  removeMasquerade(spec.natTable, spec.subnets);
  const host = Rtnl.open();
  try {
    const device = await host.link(spec.device);
    if (device?.alias?.startsWith(setupAliasPrefix(spec.network))) await host.setLink(device.index, { alias: '' });
  } finally {
    host.close();
  }
}

/** The host route to a container address: the address alone. Pure. */
export const hostRouteOf = (ip: Ip): Cidr => ({ ip, prefix: ip.family === 4 ? 32 : 128 });

/**
 * The host end's requests: a host route per container address, and, when the container's MAC
 * is known, a permanent neighbour entry per address. Sent together.
 */
export function programHostEnd(host: Rtnl, vethIndex: number, ips: readonly Ip[], containerMac?: string): Promise<unknown> {
  return Promise.all([
    ...ips.map((ip) => host.addRoute({ dst: hostRouteOf(ip), oif: vethIndex })),
    ...(containerMac ? ips.map((ip) => host.setNeighbour(vethIndex, ip, containerMac)) : []),
  ]);
}

/** The container addresses the link carries no host route to (CHECK). */
export async function missingHostRoutes(host: Rtnl, vethIndex: number, ips: readonly Ip[]): Promise<Ip[]> {
  const missing: Ip[] = [];
  for (const family of [4, 6] as const) {
    const mine = ips.filter((ip) => ip.family === family);
    if (mine.length === 0) continue;
    const routes = (await host.routes(family)).filter((r) => r.oif === vethIndex && r.gw === undefined);
    for (const ip of mine) {
      if (!routes.some((r) => r.dst.prefix === hostRouteOf(ip).prefix && r.dst.ip.value === ip.value)) missing.push(ip);
    }
  }
  return missing;
}

/** Indexes of links holding a host route into one of the subnets (GC: a routed veth of this network). */
export async function linksRoutingInto(host: Rtnl, subnets: readonly Cidr[]): Promise<Set<number>> {
  const out = new Set<number>();
  for (const family of familiesOf(subnets)) {
    for (const r of await host.routes(family)) {
      if (r.oif === undefined || r.gw !== undefined || r.dst.prefix !== (family === 4 ? 32 : 128)) continue;
      if (subnets.some((s) => contains(s, r.dst.ip))) out.add(r.oif);
    }
  }
  return out;
}
