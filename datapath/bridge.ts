// The host side of a bridge network: the bridge, its gateway addresses, forwarding and NAT.
// Host-wide setup (nft, iptables, sysctls) runs when the bridge's alias does not carry the
// current setup's fingerprint, so it runs once per bridge and configuration, not once per
// container, and a bridge whose setup was interrupted gets it on the next ADD.
import * as fs from 'node:fs';
import { DatapathFailure } from '../lib/errors';
import { Cidr, formatCidr } from '../ipam/addr';
import { enableBridgeNetfilter, ensureForwardAccept, ensureMasquerade } from '../net/nat';
import { enableForwarding } from '../net/sysctl';
import { LinkInfo, Rtnl } from '../net/rtnl';
import { bridgeMac, setupAlias } from './names';

export interface BridgeSpec {
  readonly network: string;
  readonly name: string;
  readonly mtu: number | undefined;
  /** Gateway address/prefix per subnet, when the bridge is the gateway. */
  readonly gateways: readonly Cidr[];
  readonly subnets: readonly Cidr[];
  readonly ipMasq: boolean;
  readonly natTable: string;
}

/** The bridge alias recording which setup was applied. Pure. */
export function setupFingerprint(spec: BridgeSpec): string {
  return setupAlias(spec.network, [spec.network, spec.subnets.map(formatCidr), spec.gateways.map(formatCidr), spec.ipMasq, spec.natTable]);
}

/** Applies host-wide setup for the bridge: forwarding, masquerading, FORWARD accept rules. */
export function applyHostSetup(spec: BridgeSpec): void {
  const families = [...new Set(spec.subnets.map((s) => s.ip.family))];
  if (spec.gateways.length > 0) enableForwarding(families);
  if (spec.ipMasq) ensureMasquerade(spec.natTable, spec.network, spec.subnets);
  ensureForwardAccept(spec.name, families);
  // VIP clients and backends on this one bridge: replies bridged between them must meet
  // conntrack to be un-DNATed, whatever the global bridge-nf-call-* sysctls say.
  enableBridgeNetfilter(spec.name);
}

/**
 * Bridges this process has set up (or found set up), by name, with the setup they carry: a
 * long-lived process (vxnetd serving CNI calls) skips the bridge's lookup on the next ADD. A
 * bridge deleted or replaced since shows when a veth naming its index fails to be created: the
 * caller then forgets it and ensures it again. Someone setting it down or removing its gateway
 * address by hand is not noticed this way (as before, when the setup record matched); CHECK
 * reports the address.
 */
const readyBridges = new Map<string, { readonly link: LinkInfo; readonly fingerprint: string }>();

/** The bridge of this name as this process last set it up (with some setup), if it did. */
export const knownBridge = (name: string): LinkInfo | undefined => readyBridges.get(name)?.link;

/** The bridge as this process last set it up, if with exactly this spec's setup. */
export function readyBridge(spec: BridgeSpec): LinkInfo | undefined {
  const known = readyBridges.get(spec.name);
  return known?.fingerprint === setupFingerprint(spec) ? known.link : undefined;
}

export const forgetBridge = (name: string): boolean => readyBridges.delete(name);

/** Ensures the bridge exists, is up, and carries its gateway addresses; returns it. `lookup`: the bridge's lookup, already sent. */
export async function ensureBridge(host: Rtnl, spec: BridgeSpec, lookup?: Promise<LinkInfo | undefined>): Promise<LinkInfo> {
  let link = await (lookup ?? host.link(spec.name));
  if (link && link.kind !== 'bridge') {
    throw new DatapathFailure(`${spec.name} exists and is a ${link.kind ?? 'plain'} device, not a bridge; choose another "bridge" name`);
  }
  if (!link) {
    await host.createBridge(spec.name, spec.mtu, bridgeMac(spec.network));
    link = await host.link(spec.name);
    if (!link) throw new DatapathFailure(`bridge ${spec.name} vanished right after it was created`);
    // A bridge must not autoconfigure IPv6 from router advertisements of its own containers.
    try { fs.writeFileSync(`/proc/sys/net/ipv6/conf/${spec.name}/accept_ra`, '0'); } catch { /* IPv6 disabled */ }
  }
  // The alias records that this exact setup (gateways included) was completed; CHECK reports
  // a gateway address removed since.
  const fingerprint = setupFingerprint(spec);
  if (link.alias !== fingerprint) {
    for (const gw of spec.gateways) await host.addAddress(link.index, gw);
    applyHostSetup(spec);
    await host.setLink(link.index, { alias: fingerprint });
  }
  if (!link.up) await host.setLink(link.index, { up: true });
  const ready = { ...link, up: true, alias: fingerprint };
  readyBridges.set(spec.name, { link: ready, fingerprint });
  return ready;
}
