// The overlay's records in the cluster store: key layout and JSON codecs. Pure (no etcd here):
// overlay/registry.ts does the reads, writes and transactions.
//
// Key layout (prefix P, default "/vxnet/overlay/"; host ids and network names URI-encoded):
//   P networks/<net>            the network's definition (overlayNetworkToJson); written once,
//                               by the first host or an operator; every host reads it.
//   P hosts/<host>              {underlay, since, networks}             under the host's lease
//   P members/<net>/<host>      {underlay, mac, blocks}                 under the host's lease:
//                               what peers program; it vanishes when the lease expires, so a
//                               dead host's entries leave every peer at the TTL.
//   P blocks/<net>/<ipKey>      {block, hostId, since, orphanedAt?}     NOT under a lease: a
//                               block outlives its host's lease by the grace period, so a host
//                               that comes back with the same identity gets it back.
//   P usage/<net>/<host>        {blocks: [{block, used}], at}           under the host's lease:
//                               addresses in use per block, rewritten when a count changes.
import { Cidr, Ip, formatCidr, formatIp, ipKey, networkOf, parseCidr, parseIp } from '../ipam/addr';
import type { BlockLease, Peer } from './plan';
import { isObject } from '../lib/guards';

export const DEFAULT_OVERLAY_PREFIX = '/vxnet/overlay/';

/**
 * How long an expired host's blocks stay reserved for it by default (vxnetd --block-grace): the
 * agent's default, and what `vxnetctl hosts` assumes when not told, so the two cannot disagree.
 */
export const DEFAULT_BLOCK_GRACE_SECONDS = 600;

const enc = encodeURIComponent;

export const keys = (prefix: string) => ({
  network: (net: string): string => `${prefix}networks/${enc(net)}`,
  networks: (): string => `${prefix}networks/`,
  host: (id: string): string => `${prefix}hosts/${enc(id)}`,
  hosts: (): string => `${prefix}hosts/`,
  member: (net: string, id: string): string => `${prefix}members/${enc(net)}/${enc(id)}`,
  members: (net: string): string => `${prefix}members/${enc(net)}/`,
  block: (net: string, block: Cidr): string => `${prefix}blocks/${enc(net)}/${ipKey(networkOf(block).ip)}-${block.prefix}`,
  blocks: (net: string): string => `${prefix}blocks/${enc(net)}/`,
  allBlocks: (): string => `${prefix}blocks/`,
  usage: (net: string, id: string): string => `${prefix}usage/${enc(net)}/${enc(id)}`,
  usages: (net: string): string => `${prefix}usage/${enc(net)}/`,
});

/** The last path segment of a key, decoded (host id or network name). */
export const lastSegment = (key: string): string => decodeURIComponent(key.slice(key.lastIndexOf('/') + 1));

export interface HostRecord {
  readonly id: string;
  readonly underlay: Ip;
  /** Epoch ms of this registration. */
  readonly since: number;
  readonly networks: readonly string[];
}

export interface MemberRecord extends Peer {
  readonly network: string;
}

export interface BlockRecord extends BlockLease {
  readonly network: string;
  readonly since: number;
}

const parseJson = (text: string): unknown => { try { return JSON.parse(text); } catch { return undefined; } };
const strings = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined);

export const encodeHost = (h: HostRecord): string =>
  JSON.stringify({ underlay: formatIp(h.underlay), since: h.since, networks: h.networks });

export function decodeHost(id: string, text: string): HostRecord | undefined {
  const v = parseJson(text);
  if (!isObject(v) || typeof v.underlay !== 'string' || typeof v.since !== 'number') return undefined;
  const underlay = parseIp(v.underlay);
  const networks = strings(v.networks ?? []);
  return underlay && networks ? { id, underlay, since: v.since, networks } : undefined;
}

export const encodeMember = (m: Omit<MemberRecord, 'network' | 'id'>): string =>
  JSON.stringify({ underlay: formatIp(m.underlay), mac: m.mac.toLowerCase(), blocks: m.blocks.map((b) => formatCidr(networkOf(b))) });

export function decodeMember(network: string, id: string, text: string): MemberRecord | undefined {
  const v = parseJson(text);
  if (!isObject(v) || typeof v.underlay !== 'string' || typeof v.mac !== 'string' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(v.mac)) return undefined;
  const underlay = parseIp(v.underlay);
  const blocks = strings(v.blocks)?.map(parseCidr);
  if (!underlay || !blocks || blocks.some((b) => !b)) return undefined;
  return { network, id, underlay, mac: v.mac.toLowerCase(), blocks: blocks as Cidr[] };
}

export const encodeBlock = (b: Omit<BlockRecord, 'network'>): string =>
  JSON.stringify({ block: formatCidr(networkOf(b.block)), hostId: b.hostId, since: b.since, ...(b.orphanedAt !== undefined ? { orphanedAt: b.orphanedAt } : {}) });

export function decodeBlock(network: string, text: string): BlockRecord | undefined {
  const v = parseJson(text);
  if (!isObject(v) || typeof v.block !== 'string' || typeof v.hostId !== 'string' || typeof v.since !== 'number') return undefined;
  if (v.orphanedAt !== undefined && typeof v.orphanedAt !== 'number') return undefined;
  const block = parseCidr(v.block);
  if (!block) return undefined;
  return { network, block, hostId: v.hostId, since: v.since, ...(typeof v.orphanedAt === 'number' ? { orphanedAt: v.orphanedAt } : {}) };
}

/** A host's addresses in use per block of one network, as its agent last published them. */
export interface UsageRecord {
  readonly blocks: ReadonlyArray<{ readonly block: Cidr; readonly used: number }>;
  /** Epoch ms of the count. */
  readonly at: number;
}

export const encodeUsage = (u: UsageRecord): string =>
  JSON.stringify({ blocks: u.blocks.map((b) => ({ block: formatCidr(networkOf(b.block)), used: b.used })), at: u.at });

export function decodeUsage(text: string): UsageRecord | undefined {
  const v = parseJson(text);
  if (!isObject(v) || !Array.isArray(v.blocks) || typeof v.at !== 'number') return undefined;
  const blocks: Array<{ block: Cidr; used: number }> = [];
  for (const b of v.blocks as unknown[]) {
    if (!isObject(b) || typeof b.block !== 'string' || typeof b.used !== 'number' || !Number.isInteger(b.used) || b.used < 0) return undefined;
    const block = parseCidr(b.block);
    if (!block) return undefined;
    blocks.push({ block, used: b.used });
  }
  return { blocks, at: v.at };
}
