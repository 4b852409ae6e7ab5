// Names vxnet gives kernel objects, derived so that any process (ADD, DEL, GC, vxnetctl) finds
// the same object again from the attachment alone. Pure.
import { createHash } from 'node:crypto';

/** Prefix of every host-side veth vxnet creates. */
export const VETH_PREFIX = 'vx';

/** Host side of an attachment's veth pair: "vx" + 12 hex of sha256(containerId/ifname), 14 chars. */
export function hostVethName(containerId: string, ifname: string): string {
  return VETH_PREFIX + createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 12);
}

/** The bridge a network uses when its config names none: "vx-<name>", hashed when too long. */
export function defaultBridgeName(network: string): string {
  const direct = `vx-${network}`;
  return direct.length <= 15 ? direct : `vx-${createHash('sha256').update(network).digest('hex').slice(0, 12)}`;
}
