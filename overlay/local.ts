// What the CNI plugin needs of the overlay, kept on the host so no ADD waits on etcd: per
// overlay network, this host's blocks, the VNI, the device and the overlay MTU. The agent
// writes it (atomically: temp file + rename) whenever its blocks or the MTU change; the
// plugin reads it. If etcd is down, ADDs keep working from the last file. A host that found
// every block of the network taken writes the file with no block and the reason (`noBlock`),
// so the plugin's error says what is true without asking etcd.
//
// File: <dir>/<network>.json (dir default /run/vxnet/overlay), the network name URI-encoded.
// blockRanges() turns the blocks into IPAM ranges: the block's first address is the VTEP
// (on the VXLAN device), the second the containers' gateway (on the VXLAN device too), so
// allocation starts at the third.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Cidr, formatCidr, formatIp, parseCidr } from '../ipam/addr';
import { BlockShortage, gatewayOf, shortageFromJson, shortageToJson } from './plan';
import type { RoutedNetworkSpec } from '../datapath/routed';

export const DEFAULT_LOCAL_DIR = '/run/vxnet/overlay';

export interface LocalOverlayState {
  readonly network: string;
  readonly hostId: string;
  readonly vni: number;
  readonly device: string;
  readonly mtu: number;
  readonly blocks: readonly Cidr[];
  /**
   * The network's whole subnets (the blocks are carved from these): what the plugin
   * masquerades, so traffic between overlay addresses on different hosts is not NATed.
   * Optional: files written before the field existed lack it.
   */
  readonly subnets?: readonly Cidr[];
  /**
   * Set while the host waits for a block (blocks is empty): the subnet it found full, who holds
   * its blocks, when the first may be reclaimed. mtu is the network's, or 0 (unknown) then.
   */
  readonly noBlock?: BlockShortage;
  /** Epoch ms of the write. */
  readonly updated: number;
}

const fileOf = (dir: string, network: string): string => path.join(dir, `${encodeURIComponent(network)}.json`);

export function encodeLocalState(s: LocalOverlayState): string {
  return `${JSON.stringify({
    ...s, blocks: s.blocks.map(formatCidr), ...(s.subnets ? { subnets: s.subnets.map(formatCidr) } : {}), ...(s.noBlock ? { noBlock: shortageToJson(s.noBlock) } : {}),
  }, null, 2)}\n`;
}

export function decodeLocalState(text: string): LocalOverlayState | undefined {
  let v: unknown;
  try { v = JSON.parse(text); } catch { return undefined; }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.network !== 'string' || typeof o.hostId !== 'string' || typeof o.vni !== 'number' || typeof o.device !== 'string'
    || typeof o.mtu !== 'number' || typeof o.updated !== 'number' || !Array.isArray(o.blocks)) return undefined;
  const blocks = o.blocks.map((b) => (typeof b === 'string' ? parseCidr(b) : undefined));
  if (blocks.some((b) => !b)) return undefined;
  let subnets: Cidr[] | undefined;
  if (o.subnets !== undefined) {
    if (!Array.isArray(o.subnets)) return undefined;
    const parsed = o.subnets.map((b) => (typeof b === 'string' ? parseCidr(b) : undefined));
    if (parsed.some((b) => !b)) return undefined;
    subnets = parsed as Cidr[];
  }
  const noBlock = o.noBlock === undefined ? undefined : shortageFromJson(o.noBlock);
  if (o.noBlock !== undefined && !noBlock) return undefined;
  return {
    network: o.network, hostId: o.hostId, vni: o.vni, device: o.device, mtu: o.mtu, updated: o.updated, blocks: blocks as Cidr[],
    ...(subnets ? { subnets } : {}), ...(noBlock ? { noBlock } : {}),
  };
}

/** Writes the state atomically (readers see the old file or the new one, never half). */
export function writeLocalState(dir: string, s: LocalOverlayState): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = fileOf(dir, s.network);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, encodeLocalState(s), { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** The state the agent last wrote for a network; undefined when there is none (not an overlay host yet). */
export function readLocalState(dir: string, network: string): LocalOverlayState | undefined {
  let text: string;
  try { text = fs.readFileSync(fileOf(dir, network), 'utf8'); } catch { return undefined; }
  return decodeLocalState(text);
}

/** Every network's state in the directory ([] when there is none). */
export function listLocalStates(dir: string): LocalOverlayState[] {
  let files: string[];
  try { files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')); } catch { return []; }
  const out: LocalOverlayState[] = [];
  for (const f of files) {
    let text: string;
    try { text = fs.readFileSync(path.join(dir, f), 'utf8'); } catch { continue; }
    const s = decodeLocalState(text);
    if (s) out.push(s);
  }
  return out;
}

/** The state of the overlay network one of whose subnets is exactly `subnet` (Docker's --subnet). */
export function localStateForSubnet(dir: string, subnet: Cidr): LocalOverlayState | undefined {
  const want = formatCidr(subnet);
  return listLocalStates(dir).find((s) => (s.subnets ?? []).some((x) => formatCidr(x) === want));
}

/** The network's whole subnets from the state, else (files from before the field) its blocks. */
export const subnetsOf = (s: LocalOverlayState): Cidr[] => [...(s.subnets?.length ? s.subnets : s.blocks)];

/** IPAM ranges (host-local's form) for a host's blocks: one range set per block, from the third address. */
export function blockRanges(blocks: readonly Cidr[]): Array<Array<{ subnet: string; rangeStart: string; gateway: string }>> {
  return blocks.map((b) => {
    const gw = gatewayOf(b);
    return [{ subnet: formatCidr(b), rangeStart: formatIp({ family: gw.family, value: gw.value + 1n }), gateway: formatIp(gw) }];
  });
}

/** The routed setup of an overlay network from the agent's local state. Pure. */
export function routedSpecOf(state: LocalOverlayState, o: { ipMasq: boolean; natTable: string }): RoutedNetworkSpec {
  return { network: state.network, device: state.device, subnets: subnetsOf(state), ipMasq: o.ipMasq, natTable: o.natTable };
}
