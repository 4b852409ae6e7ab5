// The overlay's side of the cluster store (etcd v3): network definitions, block leases with
// optimistic transactions, members and hosts listings. Key layout and codecs: ./records.ts;
// block policy: ./plan.ts (chooseBlock); etcd calls, deadlines, retries and errors:
// ../etcd/client.ts. The agent (./agent.ts) and vxnetctl use these.
//
// Block allocation is optimistic, like the IPAM store: read the network's blocks and the live
// hosts at one revision, let chooseBlock decide, then commit a Txn guarded by the block key's
// revision (create_revision == 0 for a free block, mod_revision == seen for a reclaim or a
// revival). A lost race re-reads and chooses again; two hosts never get one block.
import type { Etcd3, IKeyValue } from 'etcd3';
import { EtcdClient, type EtcdObserver } from '../etcd/client';
import { NetworkInUse, PoolExhausted, TryAgainLater } from '../lib/errors';
import type { Logger } from '../lib/log';
import { Cidr, formatCidr, formatIp } from '../ipam/addr';
import { canonicalRangeSets, setCapacity } from '../ipam/range';
import { blockRanges } from './local';
import {
  OverlayNetwork, chooseBlock, leasesToOrphan, overlayNetworkToJson, parseOverlayNetwork, reclaimable, vtepIpOf,
} from './plan';
import {
  BlockRecord, HostRecord, MemberRecord, UsageRecord, decodeBlock, decodeHost, decodeMember, decodeUsage, encodeBlock, keys, lastSegment,
} from './records';

const ALLOC_ATTEMPTS = 20;

export interface Snapshot<T> {
  readonly revision: string;
  readonly items: T[];
}

export class OverlayRegistry {
  readonly k: ReturnType<typeof keys>;
  readonly client: EtcdClient;

  constructor(etcd: Etcd3, readonly prefix: string, private readonly log: Logger, observer?: EtcdObserver) {
    this.k = keys(prefix);
    this.client = new EtcdClient(etcd, undefined, observer);
  }

  private range(prefix: string): Promise<{ revision: string; kvs: IKeyValue[] }> {
    return this.client.range(`read ${prefix}`, prefix);
  }

  /**
   * Stores `proposed` as the cluster's definition of its network unless one is stored already
   * (the first definition wins a race). Returns the definition in force and whether this call
   * created it; `differs` when an existing one is not `proposed`.
   */
  async defineNetwork(proposed: OverlayNetwork): Promise<{ network: OverlayNetwork; created: boolean; differs: boolean }> {
    const key = this.k.network(proposed.name);
    const text = JSON.stringify(overlayNetworkToJson(proposed));
    const r = await this.client.txn(`define ${proposed.name}`, { if: [{ key, absent: true }], then: [{ put: key, value: text }], else: [{ get: key }] });
    if (r.succeeded) return { network: proposed, created: true, differs: false };
    const stored = r.responses[0]?.response_range?.kvs[0]?.value.toString();
    if (!stored) throw new TryAgainLater(`overlay network ${proposed.name}: its definition vanished while being read`);
    const network = parseOverlayNetwork(JSON.parse(stored));
    return { network, created: false, differs: JSON.stringify(overlayNetworkToJson(network)) !== text };
  }

  /**
   * The cluster's definition of a network: the stored one when there is one (every host uses
   * the same), else `proposed`, stored now.
   */
  async ensureNetwork(proposed: OverlayNetwork): Promise<OverlayNetwork> {
    const { network, differs } = await this.defineNetwork(proposed);
    if (differs) {
      this.log.warn('overlay network already defined differently in the cluster; using the cluster\'s definition',
        { network: network.name, cluster: overlayNetworkToJson(network), local: overlayNetworkToJson(proposed) });
    }
    return network;
  }

  /**
   * Removes a network's definition, its member records and its blocks, when no block of it is
   * held by a host whose lease is alive (those hosts still route it). Returns the blocks it
   * removed; throws NetworkInUse naming the hosts otherwise.
   */
  async removeNetwork(name: string): Promise<{ removed: boolean; blocks: number }> {
    const key = this.k.network(name);
    const kv = await this.client.get(`read ${name}`, key);
    if (!kv) return { removed: false, blocks: 0 };
    const alive = new Set((await this.hosts()).items.map((h) => h.id));
    const blocks = await this.blocks(name);
    const holders = [...new Set(blocks.filter((b) => alive.has(b.hostId)).map((b) => b.hostId))];
    if (holders.length > 0) {
      throw new NetworkInUse(`overlay network ${name}: blocks held by live host${holders.length > 1 ? 's' : ''} ${holders.join(', ')}; stop vxnetd there (or drop the network from its --overlay-network) first`);
    }
    // Guarded by the definition's revision: a redefinition meanwhile leaves everything as it was.
    const t = await this.client.txn(`remove ${name}`, {
      if: [{ key, modRevision: kv.mod_revision }],
      then: [{ delete: key }, { deletePrefix: this.k.blocks(name) }, { deletePrefix: this.k.members(name) }],
    });
    if (!t.succeeded) throw new TryAgainLater(`overlay network ${name}: changed while being removed; try again`);
    return { removed: true, blocks: blocks.length };
  }

  async network(name: string): Promise<OverlayNetwork | undefined> {
    const kv = await this.client.get(`read network ${name}`, this.k.network(name));
    return kv === undefined ? undefined : parseOverlayNetwork(JSON.parse(kv.value.toString()));
  }

  async networks(): Promise<OverlayNetwork[]> {
    const { kvs } = await this.range(this.k.networks());
    return kvs.map((kv) => parseOverlayNetwork(JSON.parse(kv.value.toString())));
  }

  async hosts(): Promise<Snapshot<HostRecord & { lease: string }>> {
    const { revision, kvs } = await this.range(this.k.hosts());
    const items = kvs.flatMap((kv) => {
      const h = decodeHost(lastSegment(kv.key.toString()), kv.value.toString());
      return h ? [{ ...h, lease: kv.lease }] : [];
    });
    return { revision, items };
  }

  async members(network: string): Promise<Snapshot<MemberRecord>> {
    const { revision, kvs } = await this.range(this.k.members(network));
    const items = kvs.flatMap((kv) => {
      const m = this.decodeMember(network, kv);
      return m ? [m] : [];
    });
    return { revision, items };
  }

  /** A member record as read or watched; undefined (and a warning) when malformed. */
  decodeMember(network: string, kv: IKeyValue): MemberRecord | undefined {
    const m = decodeMember(network, lastSegment(kv.key.toString()), kv.value.toString());
    if (!m) this.log.warn('ignoring a malformed member record', { key: kv.key.toString() });
    return m;
  }

  async blocks(network: string): Promise<Array<BlockRecord & { modRevision: string; key: string }>> {
    const { kvs } = await this.range(this.k.blocks(network));
    return kvs.flatMap((kv) => {
      const b = decodeBlock(network, kv.value.toString());
      return b ? [{ ...b, modRevision: kv.mod_revision, key: kv.key.toString() }] : [];
    });
  }

  /** Each live host's published per-block usage of a network (hosts without a record are absent). */
  async usages(network: string): Promise<Map<string, UsageRecord>> {
    const { kvs } = await this.range(this.k.usages(network));
    const out = new Map<string, UsageRecord>();
    for (const kv of kvs) {
      const u = decodeUsage(kv.value.toString());
      if (u) out.set(lastSegment(kv.key.toString()), u);
    }
    return out;
  }

  /** Marks the blocks of hosts without a live lease as orphaned (starts their grace period). */
  async markOrphans(network: string, now: number): Promise<number> {
    const alive = new Set((await this.hosts()).items.map((h) => h.id));
    const blocks = await this.blocks(network);
    let marked = 0;
    for (const b of leasesToOrphan(blocks, alive) as typeof blocks) {
      const r = await this.client.txn('mark an orphaned block', {
        if: [{ key: b.key, modRevision: b.modRevision }], then: [{ put: b.key, value: encodeBlock({ ...b, orphanedAt: now }) }],
      });
      if (r.succeeded) marked++;
    }
    return marked;
  }

  /**
   * Marks the blocks of hosts seen leaving (their member record deleted) as orphaned, when
   * their host record is gone too: a few requests per host, whatever the cluster's size (the
   * per-event path; markOrphans reads every host and block). A block already marked, or since
   * leased by another host, is left alone.
   */
  async markOrphansOf(network: string, departed: ReadonlyMap<string, readonly Cidr[]>, now: number): Promise<number> {
    let marked = 0;
    for (const [hostId, blocks] of departed) {
      if (await this.client.get(`read host ${hostId}`, this.k.host(hostId))) continue; // back already (or never gone)
      for (const block of blocks) {
        const key = this.k.block(network, block);
        const kv = await this.client.get(`read block ${formatCidr(block)}`, key);
        const b = kv ? decodeBlock(network, kv.value.toString()) : undefined;
        if (!kv || !b || b.hostId !== hostId || b.orphanedAt !== undefined) continue;
        const r = await this.client.txn('mark an orphaned block', {
          if: [{ key, modRevision: kv.mod_revision }], then: [{ put: key, value: encodeBlock({ ...b, orphanedAt: now }) }],
        });
        if (r.succeeded) marked++;
      }
    }
    return marked;
  }

  /**
   * Leases this host's block in the subnet: its own again if it has one (clearing an orphan
   * mark), else the lowest free one, else the lowest whose grace period is over.
   */
  async leaseBlock(network: OverlayNetwork, subnet: Cidr, hostId: string, now: () => number, graceMs: number): Promise<{ block: Cidr; kind: string }> {
    const blockPrefix = network.blockPrefix[subnet.ip.family];
    if (blockPrefix === undefined) throw new Error(`no block size for IPv${subnet.ip.family} in ${network.name}`);
    for (let attempt = 0; attempt < ALLOC_ATTEMPTS; attempt++) {
      const alive = new Set((await this.hosts()).items.map((h) => h.id));
      alive.add(hostId);
      const blocks = await this.blocks(network.name);
      const choice = chooseBlock({ subnet, blockPrefix, leases: blocks, hostId, alive, now: now(), graceMs });
      if (!choice) {
        throw new PoolExhausted(`overlay network ${network.name}: no free /${blockPrefix} block left in ${formatCidr(subnet)} (${blocks.length} leased; expired hosts' blocks return after ${graceMs} ms)`);
      }
      const key = this.k.block(network.name, choice.block);
      const value = encodeBlock({ block: choice.block, hostId, since: choice.kind === 'own' ? (choice.lease as BlockRecord).since : now() });
      if (choice.kind === 'own') {
        const rec = blocks.find((b) => b.key === key);
        if (rec?.orphanedAt === undefined) return { block: choice.block, kind: 'own' };
        const r = await this.client.txn('revive a block', { if: [{ key, modRevision: rec.modRevision }], then: [{ put: key, value }] });
        if (r.succeeded) return { block: choice.block, kind: 'own' };
        continue;
      }
      const seen = blocks.find((b) => b.key === key)?.modRevision ?? '0';
      const r = await this.client.txn('lease a block', {
        if: [choice.kind === 'free' ? { key, absent: true } : { key, modRevision: seen }], then: [{ put: key, value }],
      });
      if (r.succeeded) {
        if (choice.kind === 'reclaim') this.log.info('reclaimed an expired host\'s block', { network: network.name, block: formatCidr(choice.block), from: choice.lease.hostId });
        return { block: choice.block, kind: choice.kind };
      }
    }
    throw new TryAgainLater(`overlay network ${network.name}: lost ${ALLOC_ATTEMPTS} races for a block in ${formatCidr(subnet)}`);
  }
}

// --- listing (vxnetctl hosts) ------------------------------------------------------------

export interface HostRow {
  readonly id: string;
  readonly underlay: string;
  readonly since: number;
  /** "alive (ttl 7s)" or "expired". */
  readonly lease: string;
  readonly ttlSeconds: number | undefined;
  readonly networks: ReadonlyArray<{ network: string; mac: string; vteps: string[]; blocks: string[] }>;
}

export interface BlockRow {
  readonly network: string;
  readonly block: string;
  readonly hostId: string;
  readonly since: number;
  /** "held", "orphaned" (grace period running), "reclaimable". */
  readonly state: 'held' | 'orphaned' | 'reclaimable';
  readonly orphanedAt: number | undefined;
}

/**
 * What `vxnetctl hosts` shows: every host with a live lease (underlay, VTEP MAC and IPs and
 * blocks per network, remaining TTL), and every block with its holder and state, including the
 * blocks of hosts whose lease expired (grace period running, or reclaimable).
 */
export async function listHosts(reg: OverlayRegistry, now: number, graceMs: number): Promise<{ hosts: HostRow[]; blocks: BlockRow[] }> {
  const hosts = (await reg.hosts()).items;
  const alive = new Set(hosts.map((h) => h.id));
  const networks = await reg.networks();
  const members = new Map<string, MemberRecord[]>();
  for (const n of networks) members.set(n.name, (await reg.members(n.name)).items);
  const rows: HostRow[] = [];
  for (const h of hosts) {
    let ttl: number | undefined;
    try {
      ttl = await reg.client.leaseTtl(`lease of ${h.id}`, h.lease);
    } catch { ttl = undefined; }
    rows.push({
      id: h.id, underlay: formatIp(h.underlay), since: h.since, ttlSeconds: ttl,
      lease: ttl === undefined ? 'expired' : `alive (ttl ${ttl}s)`,
      networks: networks.flatMap((n) => (members.get(n.name) ?? []).filter((m) => m.id === h.id).map((m) => ({
        network: n.name, mac: m.mac, vteps: m.blocks.map((b) => formatIp(vtepIpOf(b))), blocks: m.blocks.map(formatCidr),
      }))),
    });
  }
  const blocks: BlockRow[] = [];
  for (const n of networks) {
    for (const b of await reg.blocks(n.name)) {
      const state = alive.has(b.hostId) ? 'held' : reclaimable(b, alive, now, graceMs) ? 'reclaimable' : 'orphaned';
      blocks.push({ network: n.name, block: formatCidr(b.block), hostId: b.hostId, since: b.since, state, orphanedAt: b.orphanedAt });
    }
  }
  return { hosts: rows.sort((a, b) => a.id.localeCompare(b.id)), blocks };
}

/**
 * Rows for `vxnetctl hosts` (ctl/table.ts renderTable takes them with HOSTS_COLUMNS): one row
 * per host and network, then one per block whose holder has no live lease. Pure.
 */
export const HOSTS_COLUMNS = [
  { header: 'HOST' }, { header: 'UNDERLAY' }, { header: 'NETWORK' }, { header: 'VTEP MAC' }, { header: 'VTEP IPS' },
  { header: 'BLOCKS' }, { header: 'LEASE' },
] as const;

export function hostsRows(listing: { hosts: readonly HostRow[]; blocks: readonly BlockRow[] }, now: number, graceMs: number): string[][] {
  const rows: string[][] = [];
  for (const h of listing.hosts) {
    const nets = h.networks.length > 0 ? h.networks : [undefined];
    for (const n of nets) {
      rows.push([h.id, h.underlay, n?.network ?? '-', n?.mac ?? '-', n ? n.vteps.join(',') : '-', n ? n.blocks.join(',') : '-', h.lease]);
    }
  }
  for (const b of listing.blocks) {
    if (b.state === 'held') continue;
    const left = b.orphanedAt === undefined ? 'grace not started' : b.state === 'reclaimable' ? 'reclaimable'
      : `reclaimable in ${Math.ceil((b.orphanedAt + graceMs - now) / 1000)}s`;
    rows.push([b.hostId, '-', b.network, '-', '-', b.block, `expired (${left})`]);
  }
  return rows;
}

/** One overlay block as the cluster store has it, with its host's published usage. */
export interface BlockUsageRow {
  readonly network: string;
  readonly block: string;
  readonly hostId: string;
  /** "held" (its host's lease is alive) or "orphaned". */
  readonly state: 'held' | 'orphaned';
  /** Addresses CNI and Docker hand out of it (./local.ts blockRanges: VTEP and gateway excluded). */
  readonly size: bigint;
  /** As its host last published it; null when that host published none (or is gone). */
  readonly used: number | null;
  readonly usageAt: number | null;
  /** Epoch ms: leased; marked orphaned (undefined: not marked). */
  readonly since: number;
  readonly orphanedAt: number | undefined;
}

/** Every block of the cluster's overlay networks (or of one), with per-block usage (vxnetctl ipam pools --store, the API's /blocks). */
export async function listBlockUsage(reg: OverlayRegistry, network?: string): Promise<BlockUsageRow[]> {
  const alive = new Set((await reg.hosts()).items.map((h) => h.id));
  const out: BlockUsageRow[] = [];
  for (const n of await reg.networks()) {
    if (network !== undefined && n.name !== network) continue;
    const usages = await reg.usages(n.name);
    for (const b of await reg.blocks(n.name)) {
      const block = formatCidr(b.block);
      const size = setCapacity(canonicalRangeSets(blockRanges([b.block]), 'block')[0]);
      const u = alive.has(b.hostId) ? usages.get(b.hostId) : undefined;
      const used = u?.blocks.find((x) => formatCidr(x.block) === block)?.used;
      out.push({ network: n.name, block, hostId: b.hostId, state: alive.has(b.hostId) ? 'held' : 'orphaned', size, used: used ?? null, usageAt: used === undefined || !u ? null : u.at, since: b.since, orphanedAt: b.orphanedAt });
    }
  }
  return out;
}
