// The overlay's side of the cluster store (etcd v3): network definitions, block leases with
// optimistic transactions, members and hosts listings. Key layout and codecs: ./records.ts;
// block policy: ./plan.ts (chooseBlock). The agent (./agent.ts) and vxnetctl use these.
//
// Block allocation is optimistic, like the IPAM store: read the network's blocks and the live
// hosts at one revision, let chooseBlock decide, then commit a Txn guarded by the block key's
// revision (create_revision == 0 for a free block, mod_revision == seen for a reclaim or a
// revival). A lost race re-reads and chooses again; two hosts never get one block.
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } from 'etcd3';
import type { IKeyValue } from 'etcd3';
import { NetworkInUse, PoolExhausted, TryAgainLater } from '../lib/errors';
import type { Logger } from '../lib/log';
import { Cidr, formatCidr, formatIp } from '../ipam/addr';
import {
  OverlayNetwork, chooseBlock, leasesToOrphan, overlayNetworkToJson, parseOverlayNetwork, reclaimable, vtepIpOf,
} from './plan';
import {
  BlockRecord, HostRecord, MemberRecord, UsageRecord, decodeBlock, decodeHost, decodeMember, decodeUsage, encodeBlock, keys, lastSegment,
} from './records';

const CALL_TIMEOUT_MS = 2000;
/** How long one registry operation keeps retrying a member that is down or a leader election. */
const RETRY_BUDGET_MS = 8000;
const ALLOC_ATTEMPTS = 20;

export const callOptions = (): { deadline: number } => ({ deadline: Date.now() + CALL_TIMEOUT_MS });

/**
 * Runs one etcd call with a fresh deadline per attempt, retrying what a member failure or a
 * leader election causes (unavailable, deadline exceeded) within RETRY_BUDGET_MS; then
 * TryAgainLater. Every write here is a guarded Txn, so a retried commit that had in fact been
 * applied only fails its guard and is re-read.
 */
export async function etcdCall<T>(what: string, fn: (options: { deadline: number }) => Promise<T>): Promise<T> {
  const end = Date.now() + RETRY_BUDGET_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(callOptions());
    } catch (err) {
      const retryable = isRecoverableError(err as Error) || isBrokenCircuitError(err) || err instanceof GRPCDeadlineExceededError
        || err instanceof GRPCUnavailableError;
      if (!retryable) throw err;
      if (Date.now() + 100 >= end) throw new TryAgainLater(`${what}: etcd unavailable (${(err as Error).message})`);
      await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 500)));
    }
  }
}

/**
 * An etcd client for the overlay agent, tuned as the IPAM store's (ipam/store/etcd.ts): a
 * member failing three calls in a row is skipped for a second, a failed call is retried on the
 * others, gRPC reconnects within a second once a member is back.
 */
export function createOverlayEtcd(endpoints: readonly string[]): Etcd3 {
  const hosts = endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
  return new Etcd3({
    hosts,
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length, backoff: new ExponentialBackoff({ initialDelay: 20, maxDelay: 200 }) }),
      // etcd3 types this as an IBackoff but calls .next() on it first: a factory is what it takes.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) as never,
    },
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
  });
}

export interface Snapshot<T> {
  readonly revision: string;
  readonly items: T[];
}

export class OverlayRegistry {
  readonly k: ReturnType<typeof keys>;

  constructor(readonly etcd: Etcd3, readonly prefix: string, private readonly log: Logger) {
    this.k = keys(prefix);
  }

  private async range(prefix: string): Promise<{ revision: string; kvs: IKeyValue[] }> {
    const r = await etcdCall(`read ${prefix}`, (o) => this.etcd.getAll().prefix(prefix).options(o).exec());
    return { revision: r.header.revision, kvs: r.kvs };
  }

  /**
   * Stores `proposed` as the cluster's definition of its network unless one is stored already
   * (the first definition wins a race). Returns the definition in force and whether this call
   * created it; `differs` when an existing one is not `proposed`.
   */
  async defineNetwork(proposed: OverlayNetwork): Promise<{ network: OverlayNetwork; created: boolean; differs: boolean }> {
    const key = this.k.network(proposed.name);
    const text = JSON.stringify(overlayNetworkToJson(proposed));
    const r = await etcdCall(`define ${proposed.name}`, (o) => this.etcd.if(key, 'Create', '==', 0).then(this.etcd.put(key).value(text))
      .else(this.etcd.get(key)).options(o).commit());
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
    const r = await etcdCall(`read ${name}`, (o) => this.etcd.getAll().prefix(key).options(o).exec());
    const kv = r.kvs.find((x) => x.key.toString() === key);
    if (!kv) return { removed: false, blocks: 0 };
    const alive = new Set((await this.hosts()).items.map((h) => h.id));
    const blocks = await this.blocks(name);
    const holders = [...new Set(blocks.filter((b) => alive.has(b.hostId)).map((b) => b.hostId))];
    if (holders.length > 0) {
      throw new NetworkInUse(`overlay network ${name}: blocks held by live host${holders.length > 1 ? 's' : ''} ${holders.join(', ')}; stop vxnetd there (or drop the network from its --overlay-network) first`);
    }
    // Guarded by the definition's revision: a redefinition meanwhile leaves everything as it was.
    const t = await etcdCall(`remove ${name}`, (o) => this.etcd.if(key, 'Mod', '==', kv.mod_revision)
      .then(this.etcd.delete().key(key), this.etcd.delete().prefix(this.k.blocks(name)), this.etcd.delete().prefix(this.k.members(name)))
      .options(o).commit());
    if (!t.succeeded) throw new TryAgainLater(`overlay network ${name}: changed while being removed; try again`);
    return { removed: true, blocks: blocks.length };
  }

  async network(name: string): Promise<OverlayNetwork | undefined> {
    const text = await etcdCall(`read network ${name}`, (o) => this.etcd.get(this.k.network(name)).options(o).string());
    return text === null ? undefined : parseOverlayNetwork(JSON.parse(text));
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
      const m = decodeMember(network, lastSegment(kv.key.toString()), kv.value.toString());
      if (!m) this.log.warn('ignoring a malformed member record', { key: kv.key.toString() });
      return m ? [m] : [];
    });
    return { revision, items };
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
      const r = await etcdCall('mark an orphaned block', (o) => this.etcd.if(b.key, 'Mod', '==', b.modRevision)
        .then(this.etcd.put(b.key).value(encodeBlock({ ...b, orphanedAt: now }))).options(o).commit());
      if (r.succeeded) marked++;
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
        const r = await etcdCall('revive a block', (o) => this.etcd.if(key, 'Mod', '==', rec.modRevision).then(this.etcd.put(key).value(value)).options(o).commit());
        if (r.succeeded) return { block: choice.block, kind: 'own' };
        continue;
      }
      const seen = blocks.find((b) => b.key === key)?.modRevision ?? '0';
      // A builder per attempt: etcd3's builders accumulate clauses.
      const guard = (): ReturnType<Etcd3['if']> => (choice.kind === 'free' ? this.etcd.if(key, 'Create', '==', 0) : this.etcd.if(key, 'Mod', '==', seen));
      const r = await etcdCall('lease a block', (o) => guard().then(this.etcd.put(key).value(value)).options(o).commit());
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
      const r = await reg.etcd.leaseClient.leaseTimeToLive({ ID: h.lease }, callOptions());
      ttl = Number(r.TTL);
    } catch { ttl = undefined; }
    rows.push({
      id: h.id, underlay: formatIp(h.underlay), since: h.since, ttlSeconds: ttl,
      lease: ttl === undefined || ttl < 0 ? 'expired' : `alive (ttl ${ttl}s)`,
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
