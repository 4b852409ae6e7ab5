// Names vxnet gives kernel objects, derived so that any process (ADD, DEL, GC, vxnetctl) finds
// the same object again from the attachment alone. Pure.
import { createHash, randomBytes } from 'node:crypto';

/** Prefix of every host-side veth vxnet creates. */
export const VETH_PREFIX = 'vx';

/** Host side of an attachment's veth pair: "vx" + 12 hex of sha256(containerId/ifname), 14 chars. */
export function hostVethName(containerId: string, ifname: string): string {
  return VETH_PREFIX + createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 12);
}

/**
 * Prefix of a detached host veth waiting for deletion in the background (see Rtnl.retireLink).
 * "z" is not a hex digit, so no hostVethName starts with it.
 */
export const RETIRED_PREFIX = 'vxz';

export const retiredName = (): string => RETIRED_PREFIX + randomBytes(6).toString('hex');

/**
 * A random locally administered unicast MAC (what the kernel would give a veth end): chosen by
 * vxnet so that the container end's MAC is known without looking the link up.
 */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Whether a link name is one vxnet gave a host veth (attached or retired). */
export const isVxnetVethName = (name: string): boolean => /^vxz?[0-9a-f]{12}$/.test(name);

/** The bridge a network uses when its config names none: "vx-<name>", hashed when too long. */
export function defaultBridgeName(network: string): string {
  const direct = `vx-${network}`;
  return direct.length <= 15 ? direct : `vx-${createHash('sha256').update(network).digest('hex').slice(0, 12)}`;
}

/**
 * A fixed, locally administered MAC for a network's bridge. Without one the kernel gives the
 * bridge the lowest MAC of its ports, so the gateway's MAC would change (and containers' ARP
 * entries go stale) as containers come and go.
 */
export function bridgeMac(network: string): string {
  const h = createHash('sha256').update(`bridge/${network}`).digest();
  h[0] = (h[0] & 0xfe) | 0x02;
  return [...h.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** What every setup record (a bridge's or VXLAN device's alias) of a network starts with. */
export const setupAliasPrefix = (network: string): string => `vxnet network=${network} setup=`;

/**
 * The alias recording that a network's host-wide setup was applied: the network and a hash of
 * everything the setup depends on, so a changed configuration applies it again.
 */
export function setupAlias(network: string, dependsOn: unknown): string {
  return setupAliasPrefix(network) + createHash('sha256').update(JSON.stringify(dependsOn)).digest('hex').slice(0, 16);
}
