// The Docker driver's ownership and release policy, as operations of the IPAM core: Docker
// asks for an address (RequestAddress) before it says which endpoint it is for
// (CreateEndpoint), names the container later still, and releases by address. So an address
// is first reserved under a pending owner, then claimed by the endpoint; releases only ever
// touch runtime "docker" allocations (Docker releases the gateway on `network rm`, which may be
// a CNI container's address). The driver (cnm/) calls these and never opens a transaction.
import { randomBytes } from 'node:crypto';
import { AddressUnavailable, AttachmentDrifted, PoolExhausted } from '../lib/errors';
import { Ip, formatIp, parseIp, sameIp } from './addr';
import type { IpamConf } from './config';
import { allocate } from './allocator';
import { IpamIp, ensurePool, ipamIpFor } from './core';
import { describeSet, rangeHolding } from './range';
import type { Allocation, IpamStore, Owner } from './store/types';

/** Runtime recorded on Docker allocations. */
export const DOCKER_RUNTIME = 'docker';
/** The ifname recorded for Docker attachments (Docker picks eth0, eth1, ... itself). */
export const DOCKER_IFNAME = 'docker';
/** containerId of an address Docker asked for and has not yet tied to an endpoint. */
export const PENDING_PREFIX = 'docker-pending-';

export const isPending = (a: { readonly containerId: string }): boolean => a.containerId.startsWith(PENDING_PREFIX);

/** The owner an endpoint's address is recorded under. */
export const endpointOwner = (network: string, endpointId: string): Owner =>
  ({ network, containerId: endpointId, ifname: DOCKER_IFNAME, runtime: DOCKER_RUNTIME });

/** The owner part of an allocation. */
export function ownerOfAllocation(a: Allocation): Owner {
  return {
    network: a.network, containerId: a.containerId, ifname: a.ifname, runtime: a.runtime,
    ...(a.name ? { name: a.name } : {}), ...(a.aliases ? { aliases: a.aliases } : {}), ...(a.netns ? { netns: a.netns } : {}),
    ...(a.labels ? { labels: a.labels } : {}), ...(a.ports ? { ports: a.ports } : {}),
  };
}

const held = (a: Allocation): Ip | undefined => parseIp(a.address);

export interface PendingRequest {
  /** A static address (--ip, --gateway of another driver's network); else the next free one. */
  readonly requested?: Ip;
  /**
   * Range sets the address may come from, in order of preference (an overlay pool has one per
   * block of this host, and the CNI side's IPv6 sets); default every set.
   */
  readonly sets?: readonly number[];
}

/**
 * RequestAddress: reserves one address under a fresh pending owner, from the set holding the
 * requested address, else from the first set with a free one. Docker takes one address per
 * endpoint, where a CNI ADD takes one per set: an overlay host with two blocks would
 * otherwise reserve one in each and hand Docker only the first.
 */
export async function reservePending(store: IpamStore, conf: IpamConf, request: PendingRequest = {}): Promise<IpamIp & { readonly allocation: Allocation }> {
  const owner: Owner = { network: conf.network, containerId: PENDING_PREFIX + randomBytes(8).toString('hex'), ifname: DOCKER_IFNAME, runtime: DOCKER_RUNTIME };
  const { requested } = request;
  let candidates = request.sets ?? conf.rangeSets.map((_, i) => i);
  if (requested) {
    const holding = candidates.find((i) => rangeHolding(conf.rangeSets[i] ?? [], requested) !== undefined);
    if (holding === undefined) {
      throw new AddressUnavailable(`requested IP ${formatIp(requested)} is outside every range of network "${conf.network}" (${candidates.map((i) => describeSet(conf.rangeSets[i] ?? [])).join('; ')})`);
    }
    candidates = [holding];
  }
  const allocation = await store.withLock(async (tx) => {
    await ensurePool(tx, conf);
    for (const i of candidates) {
      try {
        const [a] = await allocate(tx, { owner, rangeSets: conf.rangeSets, requested: requested ? [requested] : [], sets: [i] });
        return a;
      } catch (err) {
        // A full set wrote nothing: try the next (an overlay host's next block).
        if (!(err instanceof PoolExhausted) || candidates.length === 1) throw err;
      }
    }
    throw new PoolExhausted(`no free address in network "${conf.network}": every range is in use (${candidates.map((i) => describeSet(conf.rangeSets[i] ?? [])).join('; ')})`);
  });
  return { ...ipamIpFor(conf, allocation), allocation };
}

/**
 * Releases ip if the pending owner that reserved it still holds it (no endpoint claimed it);
 * returns what went. Guarded in one transaction, so a claim made meanwhile is kept.
 */
export function releaseIfStillPending(store: IpamStore, network: string, ip: Ip, pendingId: string, reason: string): Promise<Allocation | undefined> {
  return store.withLock(async (tx) => {
    const holder = await tx.ownerOf(network, ip);
    if (holder?.containerId !== pendingId || holder.runtime !== DOCKER_RUNTIME) return undefined;
    return tx.releaseAddress(network, ip, reason);
  });
}

/** What claimForEndpoint found: the address was free, pending, or the endpoint's already. */
export type Claim = 'reserved' | 'claimed' | 'held';

/**
 * CreateEndpoint: the endpoint takes ip. A pending reservation passes to it; a free address
 * (its reservation released meanwhile) is reserved for it; a repeat is a no-op. An address
 * anyone else holds is AddressUnavailable, naming the holder.
 */
export async function claimForEndpoint(store: IpamStore, conf: IpamConf, endpointId: string, ip: Ip): Promise<Claim> {
  const network = conf.network;
  const owner = endpointOwner(network, endpointId);
  // The range set holding the address (an overlay network has one per block).
  const setIndex = Math.max(0, conf.rangeSets.findIndex((set) => rangeHolding(set, ip) !== undefined));
  return store.withLock(async (tx): Promise<Claim> => {
    const holder = await tx.ownerOf(network, ip);
    if (!holder) {
      if (!(await tx.reserve(owner, ip, setIndex))) throw new AddressUnavailable(`${formatIp(ip)} was taken meanwhile in network "${network}"`);
      return 'reserved';
    }
    if (holder.containerId === endpointId && holder.ifname === DOCKER_IFNAME) return 'held';
    if (holder.runtime === DOCKER_RUNTIME && isPending(holder)) {
      await tx.updateOwner(network, ip, owner);
      return 'claimed';
    }
    throw new AddressUnavailable(`${formatIp(ip)} in network "${network}" is held by ${holder.runtime} container ${holder.containerId.slice(0, 12)}${holder.name ? ` (${holder.name})` : ''}`);
  });
}

/** Join: the addresses the endpoint holds, one per family on a dual-stack network; AttachmentDrifted when it holds none. */
export async function endpointAllocations(store: IpamStore, network: string, endpointId: string): Promise<Allocation[]> {
  const all = (await store.view((tx) => tx.listByOwner(network, endpointId, DOCKER_IFNAME))).filter((a) => held(a) !== undefined);
  if (all.length === 0) throw new AttachmentDrifted(`endpoint ${endpointId.slice(0, 12)} holds no address in network "${network}" (was it released?)`);
  return all;
}

/** Join: records the sandbox on what the endpoint holds; false when it holds nothing any more. */
export function recordSandbox(store: IpamStore, network: string, endpointId: string, netns: string): Promise<boolean> {
  return store.withLock(async (tx) => {
    let changed = false;
    for (const a of await tx.listByOwner(network, endpointId, DOCKER_IFNAME)) {
      const ip = held(a);
      if (ip && (await tx.updateOwner(network, ip, { ...ownerOfAllocation(a), netns }))) changed = true;
    }
    return changed;
  });
}

/**
 * ReleaseAddress: releases ip where Docker holds it, in `network`, or when the network is not
 * known (vxnetd lost its record), in every network where a Docker allocation has it. Another
 * runtime's holding is left alone; nothing held is no error (Docker repeats releases).
 */
export function releaseDockerAddress(store: IpamStore, ip: Ip, network: string | undefined, reason = 'docker release'): Promise<Allocation[]> {
  return store.withLock(async (tx) => {
    const networks = network !== undefined ? [network]
      : [...new Set((await tx.list({ runtime: DOCKER_RUNTIME })).filter((a) => { const x = held(a); return x !== undefined && sameIp(x, ip); }).map((a) => a.network))];
    const out: Allocation[] = [];
    for (const n of networks) {
      const holder = await tx.ownerOf(n, ip);
      if (holder?.runtime !== DOCKER_RUNTIME) continue;
      const a = await tx.releaseAddress(n, ip, reason);
      if (a) out.push(a);
    }
    return out;
  });
}

/**
 * DeleteNetwork: releases the network's Docker allocations, and forgets its pool when no runtime
 * holds an address in it any more. `remaining` counts the other runtimes' addresses left.
 */
export function releaseDockerNetwork(store: IpamStore, network: string, reason: string): Promise<{ released: Allocation[]; remaining: number }> {
  return store.withLock(async (tx) => {
    const released: Allocation[] = [];
    for (const a of await tx.list({ network, runtime: DOCKER_RUNTIME })) {
      released.push(...(await tx.releaseByOwner(network, a.containerId, a.ifname, reason)));
    }
    const remaining = await tx.countByNetwork(network);
    if (remaining === 0) await tx.deletePool(network);
    return { released, remaining };
  });
}

/** Docker's allocations, of one network or all. */
export const dockerAllocations = (store: IpamStore, network?: string): Promise<Allocation[]> =>
  store.view((tx) => tx.list({ runtime: DOCKER_RUNTIME, ...(network !== undefined ? { network } : {}) }));

/**
 * Fills in container names from Docker's endpoint listing (endpoint id -> container name), for
 * one network or all; returns how many changed. One transaction per change, each checking the
 * holder again, so an address released meanwhile is not resurrected.
 */
export async function nameEndpoints(store: IpamStore, names: ReadonlyMap<string, string>, network?: string): Promise<number> {
  let n = 0;
  for (const a of await dockerAllocations(store, network)) {
    const name = names.get(a.containerId);
    const ip = held(a);
    if (name === undefined || !ip || a.name === name) continue;
    const changed = await store.withLock(async (tx) => {
      const cur = await tx.ownerOf(a.network, ip);
      return cur?.containerId === a.containerId && cur.runtime === DOCKER_RUNTIME ? tx.updateOwner(a.network, ip, { ...ownerOfAllocation(cur), name }) : false;
    });
    if (changed) n += 1;
  }
  return n;
}

export interface ForgottenPolicy {
  readonly now: number;
  /** An endpoint's address goes when Docker has not listed the endpoint for this long. */
  readonly endpointGraceMs: number;
  /** A reservation no CreateEndpoint claimed goes after this long. */
  readonly pendingGraceMs: number;
}

/**
 * Reconcile: releases Docker allocations whose endpoint Docker does not list (`live`), once they
 * are older than their grace. Returns how many Docker allocations were checked and what went.
 */
export async function releaseForgotten(store: IpamStore, live: (endpointId: string) => boolean, policy: ForgottenPolicy): Promise<{ checked: number; released: Allocation[] }> {
  const all = await dockerAllocations(store);
  const released: Allocation[] = [];
  for (const a of all) {
    const ip = held(a);
    if (!ip || live(a.containerId)) continue;
    const pending = isPending(a);
    if (policy.now - a.since < (pending ? policy.pendingGraceMs : policy.endpointGraceMs)) continue;
    const r = await store.withLock(async (tx) => {
      const cur = await tx.ownerOf(a.network, ip);
      if (cur?.containerId !== a.containerId || cur.runtime !== DOCKER_RUNTIME) return undefined;
      return tx.releaseAddress(a.network, ip, pending ? 'docker reconcile: never attached' : 'docker reconcile: endpoint gone');
    });
    if (r) released.push(r);
  }
  return { checked: all.length, released };
}
