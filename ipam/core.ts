// The IPAM core's operations, shared by the in-process path of the vxnet plugin, the
// vxnet-ipam binary, the Docker driver and vxnetctl: one implementation of each.
import { AttachmentDrifted, NetworkConflict } from '../lib/errors';
import { trace } from '../lib/trace';
import { Cidr, Ip, parseIp, sameIp } from './addr';
import { allocate } from './allocator';
import { IpamConf, Route, poolDefinition, subnetsOf } from './config';
import { rangeHolding } from './range';
import type { Allocation, IpamStore, IpamTx, Owner } from './store/types';

/** An allocated address, typed: strings again only where a result is printed or stored. */
export interface IpamIp {
  /** The address with the prefix of the subnet it came from. */
  readonly cidr: Cidr;
  readonly gateway: Ip;
}

export interface IpamAddResult {
  readonly ips: IpamIp[];
  readonly routes: readonly Route[];
  readonly allocations: Allocation[];
}

export interface Attachment {
  readonly containerId: string;
  readonly ifname: string;
}

/** Registers (or checks) the network's pool definition; a network keeps one set of subnets while it has allocations. */
export async function ensurePool(tx: IpamTx, conf: IpamConf): Promise<void> {
  const definition = poolDefinition(conf);
  const existing = await tx.getPool(conf.network);
  if (existing?.definition === definition) return;
  if (existing) {
    const before = subnetsOf(existing.definition).join(', ');
    const after = subnetsOf(definition).join(', ');
    const live = await tx.countByNetwork(conf.network);
    if (before !== after && live > 0) {
      throw new NetworkConflict(`network "${conf.network}" is defined with subnet ${before} and has ${live} live allocation(s); this config says ${after}`);
    }
  }
  await tx.putPool(conf.network, definition);
}

/** ensurePool in a transaction of its own: a network's definition registered before anything is allocated. */
export function registerPool(store: IpamStore, conf: IpamConf): Promise<void> {
  return store.withLock((tx) => ensurePool(tx, conf));
}

export function ipamIpFor(conf: IpamConf, allocation: Allocation): IpamIp {
  const ip = parseIp(allocation.address) as Ip;
  const range = rangeHolding(conf.rangeSets[allocation.rangeSet] ?? [], ip)
    ?? conf.rangeSets.flat().find((r) => r.subnet.ip.family === ip.family && ip.value >= r.rangeStart.value && ip.value <= r.rangeEnd.value);
  if (!range) throw new AttachmentDrifted(`allocation ${allocation.address} of ${allocation.containerId} is outside the configured ranges of "${conf.network}"`);
  return { cidr: { ip, prefix: range.subnet.prefix }, gateway: range.gateway };
}

export async function ipamAdd(store: IpamStore, conf: IpamConf, owner: Owner, requested: readonly Ip[] = [], sets?: readonly number[]): Promise<IpamAddResult> {
  trace('ipam:start');
  const allocations = await store.withLock(async (tx) => {
    trace('ipam:locked');
    await ensurePool(tx, conf);
    trace('ipam:pool');
    const r = await allocate(tx, { owner, rangeSets: conf.rangeSets, requested, ...(sets ? { sets } : {}) });
    trace('ipam:allocated');
    return r;
  });
  trace('ipam:committed');
  return { ips: allocations.map((a) => ipamIpFor(conf, a)), routes: conf.routes, allocations };
}

export function ipamDel(store: IpamStore, network: string, attachment: Attachment, reason = 'del'): Promise<Allocation[]> {
  return store.withLock((tx) => tx.releaseByOwner(network, attachment.containerId, attachment.ifname, reason));
}

/** CHECK: the attachment must hold one address per range set, and those must be the ones expected. */
export async function ipamCheck(store: IpamStore, conf: IpamConf, attachment: Attachment, expected?: readonly string[]): Promise<Allocation[]> {
  const held = await store.view((tx) => tx.listByOwner(conf.network, attachment.containerId, attachment.ifname));
  if (held.length === 0) {
    throw new AttachmentDrifted(`no address of network "${conf.network}" is allocated to container ${attachment.containerId} ${attachment.ifname}`);
  }
  for (const address of expected ?? []) {
    const bare = address.split('/')[0];
    // Compare addresses, not text: a runtime may hand back "2001:DB8:0::5" for our "2001:db8::5".
    const want = parseIp(bare);
    if (!held.some((a) => (want ? sameIp(parseIp(a.address) as Ip, want) : a.address === bare))) {
      throw new AttachmentDrifted(`address ${bare} is not allocated to container ${attachment.containerId} ${attachment.ifname} (it holds ${held.map((a) => a.address).join(', ')})`);
    }
  }
  return held;
}

/** GC: releases every allocation of the network whose (container, ifname) is not in valid. */
/**
 * Attachments one GC transaction releases at most: etcd bounds the keys one transaction writes
 * (--max-txn-ops, default 128) and a release writes a few per address. Each batch lists again
 * inside its transaction, so what another process changed meanwhile is seen.
 */
export const GC_BATCH = 16;

export async function ipamGc(store: IpamStore, network: string, valid: readonly Attachment[], reason = 'gc'): Promise<Allocation[]> {
  const keep = new Set(valid.map((a) => `${a.containerId}\u0000${a.ifname}`));
  const released: Allocation[] = [];
  for (;;) {
    const more = await store.withLock(async (tx) => {
      const stale = new Map<string, Allocation>();
      for (const a of await tx.list({ network })) {
        const key = `${a.containerId}\u0000${a.ifname}`;
        if (!keep.has(key) && !stale.has(key)) stale.set(key, a);
      }
      for (const a of [...stale.values()].slice(0, GC_BATCH)) released.push(...(await tx.releaseByOwner(network, a.containerId, a.ifname, reason)));
      return stale.size > GC_BATCH;
    });
    if (!more) return released;
  }
}
