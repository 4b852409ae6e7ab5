// The operator's writes to the IPAM store, shared by vxnetctl (ipam release, ipam gc) and
// vxnetd's operator API (POST /api/v1/allocations/release, /api/v1/gc): what to release is
// decided and released inside one withLock; the host veths of attachments left with no address
// are deleted after the commit (by the caller's VethOps), so nothing is exec'd while CNI
// plugins wait for the store's lock.
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { type Ip, formatIp } from './addr';
import { NotFound } from '../lib/errors';
import { UsageError } from '../lib/usage';
import { attachmentKey, byAddress } from './query';
import type { Allocation, IpamStore, IpamTx } from './store/types';

export const RELEASE_REASON = 'vxnetctl release';
export const GC_REASON = 'vxnetctl gc';

/** An attachment touched by a release: its host veth, and what it still holds (any network). */
export interface VethPlan { name: string; containerId: string; ifname: string; remaining: Allocation[] }

export type VethResultJson = 'deleted' | 'absent' | 'kept' | 'would-delete' | 'error';

export interface VethJson {
  name: string;
  containerId: string;
  ifname: string;
  result: VethResultJson;
  error?: string;
}

/** Host veth lookups and deletion (ctl/veth.ts's, or a test's). */
export interface VethOps {
  exists(name: string): boolean;
  remove(name: string): Promise<'deleted' | 'absent'>;
}

/** The host veth name of an attachment (datapath/names.ts hostVethName, passed in: ipam/ is below datapath/). */
export type VethNamer = (containerId: string, ifname: string) => string;

/** For each attachment touched, its host veth and what the attachment still holds (any network). */
export async function vethPlans(tx: IpamTx, touched: readonly Allocation[], vethName: VethNamer, releasing: ReadonlySet<string> = new Set()): Promise<VethPlan[]> {
  const plans = new Map<string, VethPlan>();
  for (const a of touched) {
    const key = attachmentKey({ containerId: a.containerId, ifname: a.ifname });
    if (plans.has(key)) continue;
    const remaining = (await tx.list({ containerId: a.containerId }))
      .filter((r) => r.ifname === a.ifname && !releasing.has(attachmentKey(r)));
    plans.set(key, { name: vethName(a.containerId, a.ifname), containerId: a.containerId, ifname: a.ifname, remaining });
  }
  return [...plans.values()];
}

/** Deletes the veths of attachments left with no address; never throws (errors are results). */
export async function applyVethPlans(veth: VethOps, plans: readonly VethPlan[], dryRun: boolean): Promise<VethJson[]> {
  const out: VethJson[] = [];
  for (const p of plans) {
    const base = { name: p.name, containerId: p.containerId, ifname: p.ifname };
    if (p.remaining.length > 0) { out.push({ ...base, result: 'kept' }); continue; }
    try {
      if (dryRun) out.push({ ...base, result: veth.exists(p.name) ? 'would-delete' : 'absent' });
      else out.push({ ...base, result: await veth.remove(p.name) });
    } catch (err) {
      out.push({ ...base, result: 'error', error: err instanceof Error ? err.message : String(err) });
    }
  }
  return out;
}

const shortId = (id: string): string => id.slice(0, 12);

/** The full container id a (possibly short) id names among the network's allocations. */
export async function resolveContainer(tx: IpamTx, network: string, id: string, ifname: string | undefined): Promise<string> {
  if ((await tx.listByOwner(network, id, ifname)).length > 0) return id;
  const ids = [...new Set((await tx.list({ network }))
    .filter((a) => a.containerId.startsWith(id) && (ifname === undefined || a.ifname === ifname))
    .map((a) => a.containerId))];
  if (ids.length === 1) return ids[0];
  if (ids.length > 1) throw new UsageError(`container id "${id}" is ambiguous in network "${network}": it matches ${ids.map(shortId).join(', ')}`);
  throw new NotFound(`no address of network "${network}" is allocated to container ${id}${ifname !== undefined ? ` ${ifname}` : ''}`);
}

/** What to release: one address (in a network, or whichever holds it), or an attachment's addresses. */
export type ReleaseTarget =
  | { readonly address: Ip; readonly network?: string }
  | { readonly network: string; readonly containerId: string; readonly ifname?: string };

/**
 * Releases the target in one withLock (NotFound when nothing matches; UsageError when an
 * address is held in several networks and none was named, or a short id is ambiguous), then
 * deletes the host veths of attachments left with no address.
 */
export async function releaseAllocations(store: IpamStore, target: ReleaseTarget, o: { vethName: VethNamer; veth: VethOps; reason?: string }): Promise<{ released: Allocation[]; plans: VethPlan[]; veths: VethJson[] }> {
  const reason = o.reason ?? RELEASE_REASON;
  const { released, plans } = await store.withLock(async (tx) => {
    let out: Allocation[];
    if ('address' in target) {
      const { address: ip, network } = target;
      const address = formatIp(ip);
      const networks = network !== undefined ? [network] : (await tx.listPools()).map((p) => p.network);
      const holders: Allocation[] = [];
      for (const n of networks) {
        const owner = await tx.ownerOf(n, ip);
        if (owner) holders.push(owner);
      }
      if (holders.length === 0) throw new NotFound(network !== undefined ? `${address} is not allocated in network "${network}"` : `${address} is not allocated in any network`);
      if (holders.length > 1) throw new UsageError(`${address} is allocated in networks ${holders.map((h) => `"${h.network}"`).join(', ')}: give --network`);
      out = [await tx.releaseAddress(holders[0].network, ip, reason) as Allocation];
    } else {
      const id = await resolveContainer(tx, target.network, target.containerId, target.ifname);
      out = await tx.releaseByOwner(target.network, id, target.ifname, reason);
    }
    return { released: out, plans: await vethPlans(tx, out, o.vethName) };
  });
  return { released, plans, veths: await applyVethPlans(o.veth, plans, false) };
}

export type NetnsState = 'alive' | 'gone' | 'unknown';

/** Whether a recorded netns path still exists; only a definite ENOENT/ENOTDIR counts as gone. */
export function netnsState(netns: string): NetnsState {
  if (!path.isAbsolute(netns)) return 'unknown';
  try {
    statSync(netns);
    return 'alive';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : 'unknown';
  }
}

export interface GcKept { alive: number; noNetns: number; otherRuntime: number; unknown: number }

export interface GcResult {
  checked: number;
  released: Allocation[];
  kept: GcKept;
  /** Netns paths whose existence could not be told (their allocations were kept). */
  unknown: string[];
  plans: VethPlan[];
  veths: VethJson[];
}

/**
 * Releases the CNI allocations whose recorded netns is gone (of one network, or all), in one
 * withLock (a view with dryRun: what would go), then deletes the host veths left without an
 * address (with dryRun: which would be).
 */
export async function collectGarbage(store: IpamStore, o: { network?: string; dryRun: boolean; vethName: VethNamer; veth: VethOps; netns?: (path: string) => NetnsState; reason?: string }): Promise<GcResult> {
  const stateOf = o.netns ?? netnsState;
  const unknown: string[] = [];
  const run = async (tx: IpamTx): Promise<Omit<GcResult, 'veths' | 'unknown'>> => {
    const all = await tx.list(o.network !== undefined ? { network: o.network } : {});
    const kept: GcKept = { alive: 0, noNetns: 0, otherRuntime: 0, unknown: 0 };
    const stale = new Map<string, Allocation>();
    const states = new Map<string, NetnsState>();
    for (const a of all) {
      if (a.runtime !== 'cni') { kept.otherRuntime += 1; continue; }
      if (a.netns === undefined) { kept.noNetns += 1; continue; }
      let state = states.get(a.netns);
      if (state === undefined) { state = stateOf(a.netns); states.set(a.netns, state); }
      if (state === 'gone') { if (!stale.has(attachmentKey(a))) stale.set(attachmentKey(a), a); continue; }
      if (state === 'unknown') { kept.unknown += 1; if (!unknown.includes(a.netns)) unknown.push(a.netns); continue; }
      kept.alive += 1;
    }
    let released: Allocation[];
    if (o.dryRun) {
      released = all.filter((a) => stale.has(attachmentKey(a)));
    } else {
      released = [];
      for (const a of stale.values()) released.push(...await tx.releaseByOwner(a.network, a.containerId, a.ifname, o.reason ?? GC_REASON));
    }
    const plans = await vethPlans(tx, released, o.vethName, o.dryRun ? new Set(stale.keys()) : new Set());
    return { checked: all.length, released: released.sort(byAddress), kept, plans };
  };
  const result = await (o.dryRun ? store.view(run) : store.withLock(run));
  return { ...result, unknown, veths: await applyVethPlans(o.veth, result.plans, o.dryRun) };
}
