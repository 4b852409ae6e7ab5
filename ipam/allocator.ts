// The allocation policy over an IpamTx: static requests first, then round-robin from the
// set's last reserved address, so an address just freed (a crash-looping container) is the
// last one handed out again. Runs inside store.withLock; pure apart from the store calls.
import { AddressUnavailable, AttachmentDrifted, PoolExhausted } from '../lib/errors';
import { Ip, formatIp, sameIp } from './addr';
import { RangeSet, describeSet, isGateway, rangeHolding, setCapacity } from './range';
import type { Allocation, IpamTx, Owner } from './store/types';

const SCAN_BATCH = 512;

export interface AllocationRequest {
  readonly owner: Owner;
  readonly rangeSets: readonly RangeSet[];
  /** Static addresses asked for (capability `ips`, args.cni.ips, CNI_ARGS IP=); at most one per set. */
  readonly requested?: readonly Ip[];
  /**
   * Indices of the range sets to allocate from (default: every set). Docker's driver asks an
   * overlay network's IPv4 set only, while the pool keeps the CNI side's IPv6 set too.
   */
  readonly sets?: readonly number[];
}

/** The first free, non-gateway address in [from, to], skipping held runs in batches. */
async function firstFree(tx: IpamTx, network: string, set: RangeSet, from: Ip, to: Ip): Promise<Ip | undefined> {
  let cur = from.value;
  const free = (v: bigint): boolean => !isGateway(set, { family: from.family, value: v });
  while (cur <= to.value) {
    const taken = await tx.takenBetween(network, { family: from.family, value: cur }, to, SCAN_BATCH);
    for (const t of taken) {
      for (; cur < t.value; cur++) if (free(cur)) return { family: from.family, value: cur };
      cur = t.value + 1n;
    }
    if (taken.length < SCAN_BATCH) {
      for (; cur <= to.value; cur++) if (free(cur)) return { family: from.family, value: cur };
      return undefined;
    }
  }
  return undefined;
}

/** Segments to scan: from just after the last reserved address to the end, then wrap around to it. */
async function scanOrder(tx: IpamTx, network: string, set: RangeSet, setIndex: number): Promise<Array<[Ip, Ip]>> {
  const last = await tx.lastReserved(network, setIndex);
  let r = 0;
  let start = set[0].rangeStart;
  const holding = last && rangeHolding(set, last);
  if (last && holding) {
    r = set.indexOf(holding);
    if (last.value < holding.rangeEnd.value) start = { family: last.family, value: last.value + 1n };
    else { r = (r + 1) % set.length; start = set[r].rangeStart; }
  } else {
    start = set[0].rangeStart;
  }
  const segments: Array<[Ip, Ip]> = [[start, set[r].rangeEnd]];
  for (let i = 1; i < set.length; i++) {
    const range = set[(r + i) % set.length];
    segments.push([range.rangeStart, range.rangeEnd]);
  }
  if (start.value > set[r].rangeStart.value) segments.push([set[r].rangeStart, { family: start.family, value: start.value - 1n }]);
  return segments;
}

async function roundRobin(tx: IpamTx, owner: Owner, set: RangeSet, setIndex: number): Promise<Ip> {
  for (const [from, to] of await scanOrder(tx, owner.network, set, setIndex)) {
    const ip = await firstFree(tx, owner.network, set, from, to);
    if (ip && (await tx.reserve(owner, ip, setIndex))) return ip;
  }
  throw new PoolExhausted(
    `no free address in network "${owner.network}" pool ${describeSet(set)}: all ${setCapacity(set)} addresses are in use`);
}

async function reserveRequested(tx: IpamTx, owner: Owner, set: RangeSet, setIndex: number, ip: Ip): Promise<void> {
  if (isGateway(set, ip)) throw new AddressUnavailable(`requested IP ${formatIp(ip)} is the gateway of network "${owner.network}"`);
  if (await tx.reserve(owner, ip, setIndex)) return;
  const holder = await tx.ownerOf(owner.network, ip);
  const who = holder ? `container ${holder.containerId}${holder.name ? ` (${holder.name})` : ''} ${holder.ifname} since ${new Date(holder.since).toISOString()}` : 'another container';
  throw new AddressUnavailable(`requested IP ${formatIp(ip)} is not available in range set ${describeSet(set)}: held by ${who}`);
}

/** One address per range set for the owner; a repeated request returns what the owner already holds. */
export async function allocate(tx: IpamTx, request: AllocationRequest): Promise<Allocation[]> {
  const { owner, rangeSets } = request;
  const requested = request.requested ?? [];
  const wanted = request.sets ?? rangeSets.map((_, i) => i);
  const held = await tx.listByOwner(owner.network, owner.containerId, owner.ifname);
  const heldMatches = held.length === wanted.length
    && wanted.every((i) => held.some((a) => a.rangeSet === i))
    && requested.every((ip) => held.some((a) => a.address === formatIp(ip)));
  if (heldMatches) return held;
  if (held.length > 0) {
    // A static address the owner does not hold: a repeated ADD for a container that is (or may
    // be) live with the address it holds. Releasing that would take a live address away before
    // the datapath refuses the ADD anyway; refused here, before anything is released.
    const other = requested.filter((ip) => !held.some((a) => a.address === formatIp(ip)));
    if (other.length > 0) {
      throw new AttachmentDrifted(`container ${owner.containerId} ${owner.ifname} already holds ${held.map((a) => a.address).join(', ')} in network "${owner.network}"; `
        + `this ADD asks for ${other.map(formatIp).join(', ')}: DEL the attachment first`);
    }
    await tx.releaseByOwner(owner.network, owner.containerId, owner.ifname, 'superseded by a new ADD');
  }

  const bySet = new Map<number, Ip>();
  for (const ip of requested) {
    const setIndex = rangeSets.findIndex((set, i) => wanted.includes(i) && rangeHolding(set, ip) !== undefined);
    if (setIndex < 0) {
      throw new AddressUnavailable(`requested IP ${formatIp(ip)} is outside every range of network "${owner.network}" (${rangeSets.map(describeSet).join('; ')})`);
    }
    const other = bySet.get(setIndex);
    if (other && !sameIp(other, ip)) {
      throw new AddressUnavailable(`requested IPs ${formatIp(other)} and ${formatIp(ip)} fall in the same range set ${describeSet(rangeSets[setIndex])}; ask for one address per set`);
    }
    bySet.set(setIndex, ip);
  }
  for (const i of wanted) {
    const ip = bySet.get(i);
    if (ip) await reserveRequested(tx, owner, rangeSets[i], i, ip);
    else await roundRobin(tx, owner, rangeSets[i], i);
  }
  return tx.listByOwner(owner.network, owner.containerId, owner.ifname);
}
