// The overlay agent: one per host (inside vxnetd). Design notes:
//
// Registration. The host's record and, per overlay network, its member record (underlay
// address, VTEP MAC, blocks) are written under one etcd lease with a TTL that a LeaseKeeper
// keeps alive. A host that stops renewing (crash, partition) loses both keys when the TTL runs
// out, and every peer's watch sees the member deleted. A lost lease (etcd unreachable for
// longer than the TTL) is re-granted and the records are written again, with the same identity,
// so the host gets its own blocks back (registry.leaseBlock).
//
// Blocks are leased before the member record is written and survive the host's lease (see
// records.ts); the first peer that sees a host's member record vanish marks its blocks
// orphaned, which starts their grace period.
//
// No free block. A network whose subnet has every block leased does not stop the agent: the
// host registers, watches the network's members like any peer, and waits. Its local state says
// why (the subnet, who holds its blocks, when the first may be reclaimed), so the CNI plugin's
// error is true without etcd, and it logs the same once per change. It claims a block when one
// can be had, without polling: a member's lease expiring arrives as a watch event, the orphan
// mark it triggers starts the grace period, and a timer set for the end of that period
// (orphanedAt + grace) tries again. Marks are also made when the host starts waiting, so a
// holder that died while nobody watched is not waited for forever.
//
// Watching, not polling. Per network: one ranged read of the members at revision R, then a
// watch from R+1, so every change after the snapshot arrives once and in order. Each event
// updates the in-memory peer map and marks the peer changed; syncs are serialized and coalesced
// (a burst of 1000 joins costs a few syncs, not 1000).
//
// Per-event work is proportional to the change (issue 17). An event's sync applies the changed
// peers to the desired view (overlay/view.ts) and programs only their entries, in one batch,
// without reading the kernel. A full reconciliation (overlay/apply.ts reconcile: read the
// device, diff against the whole view, converge from any state) runs at start-up, after the
// watch's reset (a compaction it could not resume across), after a failed sync, when the
// kernel reports a change on the device that is not the echo of our own (an entry deleted or
// altered by hand, the device or its addresses changed, lost notifications), and as a slow
// periodic check (checkIntervalMs, default 5 min), so a missed event cannot leave it wrong for
// long. At 5,000 hosts this took a join from 2-7 s to milliseconds on each host (bench/README.md).
// The watch is etcd/watch.ts's PrefixWatch: after an outage it resumes from the last change it
// delivered, and after a compaction it reads the members again (a reset). A failed sync is
// retried after retryMs (a timer armed only after a failure, not a polling loop).
//
// etcd down: nothing is torn down. The device and its entries stay as last programmed, so
// containers keep talking; blocks are local, so CNI ADDs keep working.
import { EventEmitter } from 'node:events';
import type { Etcd3, IKeyValue } from 'etcd3';
import { NotFound, PoolExhausted, TryAgainLater } from '../lib/errors';
import type { Logger } from '../lib/log';
import { Cidr, Ip, formatCidr, formatIp, sameIp } from '../ipam/addr';
import type { Rtnl, RtnlChange } from '../net/rtnl';
import { SyncReport, VtepProgrammer } from './apply';
import { writeLocalState } from './local';
import { LeaseKeeper } from '../etcd/lease';
import { BlockShortage, Entries, EntryDiff, OverlayNetwork, Peer, blockShortage, gatewayOf, vtepIpOf, describeShortage, shortageToJson, vtepMacFor, vxlanDeviceName } from './plan';
import { DesiredView, KernelEntryChange, ViewUpdate } from './view';
import { DEFAULT_BLOCK_GRACE_SECONDS, DEFAULT_OVERLAY_PREFIX, MemberRecord, encodeHost, encodeMember, encodeUsage, lastSegment } from './records';
import { type EtcdObserver, callOptions, etcdCall } from '../etcd/client';
import { PrefixWatch } from '../etcd/watch';
import { OverlayRegistry } from './registry';

export interface AgentOptions {
  readonly hostId: string;
  readonly underlay: Ip;
  /** The overlay networks this host joins (the cluster's stored definition wins). */
  readonly networks: readonly OverlayNetwork[];
  /** Networks this host joins by name, as the cluster defines them (NotFound if it does not). */
  readonly join?: readonly string[];
  /** Also join every network the cluster defines at start. */
  readonly joinAll?: boolean;
  /** Lease TTL in seconds (default 10). */
  readonly ttlSeconds?: number;
  /** How long an expired host's blocks stay reserved for it (default DEFAULT_BLOCK_GRACE_SECONDS). */
  readonly graceMs?: number;
  readonly prefix?: string;
  /** Delay before retrying a failed sync or registration (default 500 ms). */
  readonly retryMs?: number;
  /**
   * How often the device is fully reconciled with the view even when nothing says it differs
   * (default 300,000 ms; 0: never). Events and kernel notifications do the real work.
   */
  readonly checkIntervalMs?: number;
  /**
   * Where to write each network's local state for the CNI plugin (overlay/local.ts): blocks,
   * VNI, device, MTU. Undefined: not written (tests that need no CNI).
   */
  readonly localDir?: string;
}

/** The narrow components the agent needs. */
export interface AgentComponents {
  readonly etcd: Etcd3;
  /** Told of the registry's etcd operations (vxnetd's metrics). */
  readonly etcdObserver?: EtcdObserver;
  /** An rtnetlink socket in the host's namespace. */
  readonly rtnl: Rtnl;
  readonly log: Logger;
  readonly now?: () => number;
  /**
   * Kernel change notifications in the host's namespace (Rtnl.monitor): when given, a change
   * on a VXLAN device the agent owns (an entry deleted or altered by hand, the device deleted)
   * triggers a sync at once, so the device converges without waiting for the next store event.
   */
  readonly monitor?: (onChange: (changes: RtnlChange[]) => void) => { close(): void };
  /**
   * Addresses in use on this host per block (the local IPAM store): published under the host's
   * lease for `vxnetctl ipam pools --store`, after registering and at each renewal when a count
   * changed.
   */
  readonly usage?: (network: string, blocks: readonly Cidr[]) => Promise<number[]>;
}

interface NetState {
  network: OverlayNetwork;
  /** One per subnet; empty while the host waits for a block (then `shortage` says why). */
  blocks: Cidr[];
  /** Undefined until the host first has its blocks (no device before). */
  programmer: VtepProgrammer | undefined;
  shortage: BlockShortage | undefined;
  /** What was last logged about the shortage (logged again only when it changes). */
  shortageLogged?: string;
  claimTimer?: NodeJS.Timeout;
  claiming?: boolean;
  claimAgain?: boolean;
  /** Every member record the watch delivered (this host's own included). */
  peers: Map<string, MemberRecord>;
  /** What the device should hold, as last programmed (overlay/view.ts). */
  view: DesiredView;
  /** Entry keys our own incremental syncs changed, with when (oldest first): see isEcho. */
  touched: Map<string, number>;
  /** Why the next sync is a full one (logs, the synced event). */
  fullReason?: string;
  /** Hosts seen leaving since the last orphan-marking pass, with their blocks. */
  departed: Map<string, readonly Cidr[]>;
  /** Members changed since the last sync (their current record is in `peers`). */
  pending: Set<string>;
  /** The next sync must be a full reconciliation. */
  full: boolean;
  watch?: PrefixWatch;
  running: boolean;
  retry?: NodeJS.Timeout;
  /** The device's MTU as of the last ensure. */
  mtu: number;
  marking?: boolean;
  markAgain?: boolean;
  /** The device's ifindex as of the last sync (kernel notifications name it). */
  index: number | undefined;
}

/** How often a device is reconciled in full when nothing asked for it (AgentOptions.checkIntervalMs). */
export const DEFAULT_CHECK_INTERVAL_MS = 300_000;

/** A diff larger than this is applied with the kernel notifications closed (withMonitorPaused). */
const MONITOR_PAUSE_ENTRIES = 300;

/** How long a notification about an entry our own sync changed is taken for its echo. */
const ECHO_WINDOW_MS = 2000;

/** The kernel's key of an entry (neighbour by IP, FDB by MAC, route by destination), as touch() records it. */
const entryKey = (k: KernelEntryChange): string =>
  k.what === 'neigh' ? `n ${formatIp(k.ip)}` : k.what === 'fdb' ? `f ${k.mac.toLowerCase()}` : `r ${formatCidr(k.dst)}`;

/** A kernel notification in a few words (why a full reconciliation ran). */
export function describeChange(c: RtnlChange): string {
  const what = c.route ? `route ${formatCidr(c.route.dst)}${c.route.gw ? ` via ${formatIp(c.route.gw)}` : ''}`
    : c.neigh ? `neighbour ${formatIp(c.neigh.ip)} ${c.neigh.mac}${c.neigh.permanent ? '' : ' (not permanent)'}`
      : c.fdb ? `fdb ${c.fdb.mac}${c.fdb.dst ? ` dst ${formatIp(c.fdb.dst)}` : ''}` : c.address ? `address ${formatCidr(c.address)}` : c.kind;
  return `${c.op ?? 'changed'} ${what}`;
}

/** A kernel notification about an entry, in the view's terms; undefined for anything else (link, address). */
export function kernelEntryChange(c: RtnlChange): KernelEntryChange | undefined {
  const op = c.op;
  if (op === undefined) return undefined;
  if (c.kind === 'route') return c.route ? { what: 'route', op, dst: c.route.dst, gw: c.route.gw } : { what: 'route', op, dst: { ip: { family: 4, value: 0n }, prefix: 0 }, gw: undefined };
  if (c.kind === 'neighbor' && c.fdb) return { what: 'fdb', op, mac: c.fdb.mac, dst: c.fdb.dst };
  if (c.kind === 'neighbor' && c.neigh) return { what: 'neigh', op, ip: c.neigh.ip, mac: c.neigh.mac, permanent: c.neigh.permanent };
  return undefined;
}

export interface SyncedEvent {
  readonly network: string;
  readonly report: SyncReport;
  readonly peers: number;
  /** Why a full reconciliation ran (undefined for an incremental sync). */
  readonly reason?: string;
}

/** A member change as the watch delivered it (before it is applied): for the bench's timing. */
export interface WatchEvent {
  readonly network: string;
  readonly type: 'put' | 'delete';
  readonly id: string;
}

export class OverlayAgent extends EventEmitter {
  readonly registry: OverlayRegistry;
  private readonly nets = new Map<string, NetState>();
  private lease: LeaseKeeper | undefined;
  /** The current lease is held: set when registered, cleared when it is lost (metrics). */
  private held = false;
  /** The usage text last written per network (under the current lease). */
  private readonly published = new Map<string, string>();
  private publishing = false;
  private stopped = false;
  private registerTimer: NodeJS.Timeout | undefined;
  private monitor: { close(): void } | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  /** How many bursts of our own changes run with the kernel notifications closed (withMonitorPaused). */
  private monitorPaused = 0;
  private readonly ttl: number;
  private readonly graceMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(readonly options: AgentOptions, private readonly c: AgentComponents) {
    super();
    this.ttl = options.ttlSeconds ?? 10;
    this.graceMs = options.graceMs ?? DEFAULT_BLOCK_GRACE_SECONDS * 1000;
    this.retryMs = options.retryMs ?? 500;
    this.now = c.now ?? Date.now;
    this.log = c.log.child({ host: options.hostId });
    this.registry = new OverlayRegistry(c.etcd, options.prefix ?? DEFAULT_OVERLAY_PREFIX, this.log, c.etcdObserver);
  }

  /** The networks this host joined (after start). */
  get networks(): string[] {
    return [...this.nets.keys()];
  }

  /** Whether this host's registration lease is held now (false before it registered and between a loss and the next registration). */
  get leaseHeld(): boolean {
    return this.held && !this.stopped;
  }

  /**
   * True when damage done to the network's device now would be noticed at once: no sync running
   * or queued, the kernel's notifications open (not paused around a burst), and no notification
   * still taken for the echo of our own changes (ECHO_WINDOW_MS). A change made by hand while
   * this is false may wait for the periodic check; tests poll it before damaging the device.
   */
  quiet(network: string): boolean {
    const ns = this.nets.get(network);
    if (!ns || this.stopped || ns.running || ns.full || ns.pending.size > 0) return false;
    if (this.c.monitor && (this.monitor === undefined || this.monitorPaused > 0)) return false;
    const now = this.now();
    for (const at of ns.touched.values()) if (now - at < ECHO_WINDOW_MS) return false;
    return true;
  }

  /** This host's blocks on a network (after start). */
  blocks(network: string): Cidr[] {
    return [...(this.nets.get(network)?.blocks ?? [])];
  }

  /** The peers this host currently programs for a network (itself excluded). */
  peers(network: string): Peer[] {
    return [...(this.nets.get(network)?.peers.values() ?? [])].filter((p) => p.id !== this.options.hostId);
  }

  /** What the network's device should hold, as the agent last programmed it (tests compare it with a full reconciliation). */
  desired(network: string): Entries | undefined {
    return this.nets.get(network)?.view.entries();
  }

  /** Reconciles every network's device in full at the next sync (what the periodic check does). */
  reconcile(): void {
    for (const ns of this.nets.values()) { this.requestFull(ns, 'periodic check'); this.schedule(ns); }
  }

  /** The reason this host has no block of a network, while it waits for one (after start). */
  shortage(network: string): BlockShortage | undefined {
    return this.nets.get(network)?.shortage;
  }

  /**
   * Defines the networks, leases blocks, creates the devices, registers, and starts watching.
   * A network with no free block is joined all the same and waits for one (see the top).
   */
  async start(): Promise<void> {
    for (const network of await this.definitions()) {
      const ns: NetState = {
        network, blocks: [], programmer: undefined, shortage: undefined, peers: new Map(), view: new DesiredView(this.options.hostId), pending: new Set(), departed: new Map(), touched: new Map(),
        full: true, fullReason: 'start', running: false, index: undefined, mtu: 0,
      };
      const got = await this.leaseBlocks(network);
      // The device first, so peers that learn about us find our VTEP ready.
      if (got.blocks) await this.takeBlocks(ns, got.blocks);
      else this.waitFor(ns, got.shortage);
      this.nets.set(network.name, ns);
    }
    this.openMonitor();
    await etcdCall('register', () => this.register());
    for (const ns of this.nets.values()) await this.watch(ns);
    // Registered now: the orphan marks made while claiming cannot take this host for dead.
    for (const ns of this.nets.values()) if (ns.shortage) void this.claim(ns);
    const every = this.options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    if (every > 0 && !this.stopped) {
      this.checkTimer = setInterval(() => this.reconcile(), every);
      this.checkTimer.unref();
    }
  }

  /** Gives a network its blocks: the device (created or re-addressed), the local state. */
  private async takeBlocks(ns: NetState, blocks: Cidr[]): Promise<void> {
    const { hostId, underlay } = this.options;
    const { network } = ns;
    if (ns.programmer) ns.programmer.setBlocks(blocks);
    else {
      ns.programmer = new VtepProgrammer(this.c.rtnl, {
        hostId, vni: network.vni, device: vxlanDeviceName(network.vni), underlay, mac: vtepMacFor(hostId, network.vni),
        ...(network.mtu !== undefined ? { mtu: network.mtu } : {}), port: network.port, blocks,
      }, this.log.child({ network: network.name }));
    }
    const dev = await ns.programmer.ensureDevice();
    ns.index = dev.index;
    ns.mtu = dev.mtu;
    ns.full = true;
    ns.fullReason = 'blocks taken';
    ns.blocks = blocks;
    ns.shortage = undefined;
    ns.shortageLogged = undefined;
    if (ns.claimTimer) { clearTimeout(ns.claimTimer); ns.claimTimer = undefined; }
    this.writeLocal(network, blocks, dev.mtu);
  }

  /** Records (local state, log) that a network has no block for this host, and why. */
  private waitFor(ns: NetState, shortage: BlockShortage): void {
    ns.blocks = [];
    ns.shortage = shortage;
    const json = JSON.stringify(shortageToJson(shortage));
    if (json !== ns.shortageLogged) {
      ns.shortageLogged = json;
      this.log.warn('no free block; waiting for one', { network: ns.network.name, reason: describeShortage(shortage, this.now(), this.options.hostId) });
    }
    this.writeLocal(ns.network, [], ns.network.mtu ?? 0, shortage);
  }

  /**
   * Tries to get a waiting network its blocks: marks the blocks of dead holders orphaned, then
   * leases. Still none: waits, with a timer for the end of the first grace period running.
   * Serialized per network; a call while one runs runs once more after it.
   */
  private async claim(ns: NetState): Promise<void> {
    if (this.stopped || !ns.shortage) return;
    if (ns.claiming) { ns.claimAgain = true; return; }
    ns.claiming = true;
    if (ns.claimTimer) { clearTimeout(ns.claimTimer); ns.claimTimer = undefined; }
    try {
      await this.registry.markOrphans(ns.network.name, this.now());
      const got = await this.leaseBlocks(ns.network);
      if (this.stopped) return;
      if (got.blocks) {
        await this.takeBlocks(ns, got.blocks);
        await this.putMember(ns);
        this.schedule(ns);
        return;
      }
      this.waitFor(ns, got.shortage);
      const next = got.shortage.nextReclaimableAt;
      // A few ms past the end: chooseBlock wants now - orphanedAt >= grace.
      if (next !== undefined) this.armClaim(ns, Math.max(0, next - this.now()) + 5);
    } catch (err) {
      this.log.warn('claiming a block failed; retrying', { network: ns.network.name, error: (err as Error).message });
      this.armClaim(ns, this.retryMs);
    } finally {
      ns.claiming = false;
      if (ns.claimAgain && !this.stopped) { ns.claimAgain = false; void this.claim(ns); }
    }
  }

  private armClaim(ns: NetState, ms: number): void {
    if (ns.claimTimer) clearTimeout(ns.claimTimer);
    ns.claimTimer = setTimeout(() => { ns.claimTimer = undefined; void this.claim(ns); }, ms);
  }

  /** Writes a network's member record under the current lease (none yet: register() will). */
  private async putMember(ns: NetState): Promise<void> {
    const lease = this.lease;
    if (!lease || ns.blocks.length === 0) return;
    const { hostId, underlay } = this.options;
    await etcdCall('write the member record', () => lease.lease.put(this.registry.k.member(ns.network.name, hostId))
      .value(encodeMember({ underlay, mac: vtepMacFor(hostId, ns.network.vni), blocks: ns.blocks })).exec());
  }

  /** The definitions of the networks this host joins, as the cluster store holds them. */
  private async definitions(): Promise<OverlayNetwork[]> {
    const out: OverlayNetwork[] = [];
    const add = (n: OverlayNetwork): void => { if (!out.some((o) => o.name === n.name)) out.push(n); };
    for (const proposed of this.options.networks) add(await this.registry.ensureNetwork(proposed));
    for (const name of this.options.join ?? []) {
      const n = await this.registry.network(name);
      if (!n) throw new NotFound(`overlay network ${name} is not defined in the cluster store: vxnetctl network create ${name} --vni N --subnet CIDR`);
      add(n);
    }
    if (this.options.joinAll) for (const n of await this.registry.networks()) add(n);
    if (out.length > 0) this.log.info('joining overlay networks', { networks: out.map((n) => n.name) });
    return out;
  }

  /**
   * A block per subnet, or why a subnet has none for this host (blocks leased in the other
   * subnets stay this host's and come back as its own on the next try).
   */
  private async leaseBlocks(network: OverlayNetwork): Promise<{ blocks: Cidr[]; shortage?: undefined } | { blocks?: undefined; shortage: BlockShortage }> {
    const blocks: Cidr[] = [];
    for (const subnet of network.subnets) {
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await this.registry.leaseBlock(network, subnet, this.options.hostId, this.now, this.graceMs);
          this.log.info('leased block', { network: network.name, block: formatCidr(r.block), kind: r.kind });
          blocks.push(r.block);
          break;
        } catch (err) {
          if (!(err instanceof PoolExhausted)) throw err;
          const shortage = await this.shortageIn(network, subnet);
          if (shortage) return { shortage };
          // A block came free between the two reads: lease again.
          if (attempt >= 3) throw new TryAgainLater(`overlay network ${network.name}: the blocks of ${formatCidr(subnet)} keep changing`);
        }
      }
    }
    return { blocks };
  }

  /** Why this host gets no block in the subnet now; undefined when it would get one. */
  private async shortageIn(network: OverlayNetwork, subnet: Cidr): Promise<BlockShortage | undefined> {
    const alive = new Set((await this.registry.hosts()).items.map((h) => h.id));
    alive.add(this.options.hostId);
    const leases = await this.registry.blocks(network.name);
    const blockPrefix = network.blockPrefix[subnet.ip.family] as number;
    return blockShortage({ subnet, blockPrefix, leases, hostId: this.options.hostId, alive, now: this.now(), graceMs: this.graceMs });
  }

  private writeLocal(network: OverlayNetwork, blocks: Cidr[], mtu: number, noBlock?: BlockShortage): void {
    if (this.options.localDir === undefined) return;
    writeLocalState(this.options.localDir, {
      network: network.name, hostId: this.options.hostId, vni: network.vni, device: vxlanDeviceName(network.vni), mtu, blocks, subnets: [...network.subnets],
      ...(noBlock ? { noBlock } : {}), updated: this.now(),
    });
  }

  /**
   * Grants a lease and writes the host and member records under it. A lease this attempt does not
   * hand over to this.lease is released: etcd3 would otherwise keep renewing (or retrying) it
   * forever, a second registration that never expires.
   */
  private async register(): Promise<void> {
    const { hostId, underlay } = this.options;
    const lease = new LeaseKeeper(this.c.etcd, { ttlSeconds: this.ttl });
    try {
      await lease.grant();
      lease.on('lost', (err: Error) => {
        if (this.stopped || this.lease !== lease) return;
        this.held = false;
        this.log.warn('lease lost; registering again', { error: err?.message });
        this.emit('leaseLost', err);
        this.reRegister();
      });
      const k = this.registry.k;
      await lease.lease.put(k.host(hostId)).value(encodeHost({ id: hostId, underlay, since: this.now(), networks: [...this.nets.keys()] })).exec();
      for (const ns of this.nets.values()) {
        if (ns.blocks.length === 0) continue; // waiting for a block: claim() writes it
        await lease.lease.put(k.member(ns.network.name, hostId))
          .value(encodeMember({ underlay, mac: vtepMacFor(hostId, ns.network.vni), blocks: ns.blocks })).exec();
      }
    } catch (err) {
      lease.release();
      throw err;
    }
    if (this.stopped) {
      // stop() ran while this registration was in flight: take the records back out.
      await lease.revoke(callOptions()).catch(() => lease.release());
      return;
    }
    this.lease = lease;
    this.held = true;
    this.published.clear();
    lease.on('renewed', () => void this.publishUsage(lease));
    void this.publishUsage(lease);
    this.emit('registered');
    this.log.info('registered', { underlay: formatIp(underlay), ttl: this.ttl, lease: await lease.lease.grant() });
  }

  /** Writes each network's per-block usage under the lease when it changed (best effort). */
  private async publishUsage(lease: LeaseKeeper): Promise<void> {
    const usage = this.c.usage;
    if (!usage || this.publishing) return;
    this.publishing = true;
    try {
      for (const ns of this.nets.values()) {
        if (ns.blocks.length === 0) continue;
        const counts = await usage(ns.network.name, ns.blocks);
        const blocks = ns.blocks.map((block, i) => ({ block, used: counts[i] ?? 0 }));
        const key = JSON.stringify(blocks.map((b) => [formatCidr(b.block), b.used]));
        if (this.published.get(ns.network.name) === key || this.lease !== lease || this.stopped) continue;
        await lease.lease.put(this.registry.k.usage(ns.network.name, this.options.hostId)).value(encodeUsage({ blocks, at: this.now() })).exec();
        this.published.set(ns.network.name, key);
      }
    } catch (err) {
      this.log.debug('publishing block usage failed; next renewal tries again', { error: (err as Error).message });
    } finally {
      this.publishing = false;
    }
  }

  private reRegister(): void {
    if (this.stopped || this.registerTimer) return;
    const attempt = async (): Promise<void> => {
      this.registerTimer = undefined;
      if (this.stopped) return;
      try {
        for (const ns of this.nets.values()) {
          if (ns.shortage) continue; // waiting: claim() goes on
          const got = await this.leaseBlocks(ns.network);
          if (!got.blocks) {
            // Away longer than the grace period, and the subnet filled up meanwhile.
            this.log.error('came back to no free block: containers on the old ones are unreachable', { network: ns.network.name, before: ns.blocks.map(formatCidr) });
            this.waitFor(ns, got.shortage);
            continue;
          }
          const blocks = got.blocks;
          if (blocks.map(formatCidr).join() !== ns.blocks.map(formatCidr).join()) {
            this.log.error('came back with different blocks: containers on the old ones are unreachable', {
              network: ns.network.name, before: ns.blocks.map(formatCidr), after: blocks.map(formatCidr),
            });
            await this.takeBlocks(ns, blocks);
          }
        }
        await this.register();
        for (const ns of this.nets.values()) if (ns.shortage) void this.claim(ns);
      } catch (err) {
        this.log.warn('registration failed; retrying', { error: (err as Error).message });
        this.registerTimer = setTimeout(() => void attempt(), this.retryMs);
      }
    };
    this.registerTimer = setTimeout(() => void attempt(), 0);
  }

  /**
   * The network's members: a read at revision R, then every change after R once and in order
   * (etcd/watch.ts resumes a broken stream from the last change delivered, and reads again
   * after a compaction).
   */
  private async watch(ns: NetState): Promise<void> {
    const name = ns.network.name;
    ns.watch = await PrefixWatch.start(this.registry.client, this.registry.k.members(name), {
      reset: (kvs) => {
        ns.peers = new Map(kvs.flatMap((kv) => {
          const m = this.registry.decodeMember(name, kv);
          return m ? [[m.id, m] as const] : [];
        }));
        ns.pending.clear();
        this.requestFull(ns, 'watch reset');
      },
      change: (type, kv) => this.onEvent(ns, kv, type),
      trouble: (err) => this.log.warn('watch trouble', { network: name, error: err.message }),
    });
  }

  private onEvent(ns: NetState, kv: IKeyValue, type: 'put' | 'delete'): void {
    const id = lastSegment(kv.key.toString());
    this.emit('watchEvent', { network: ns.network.name, type, id } satisfies WatchEvent);
    if (type === 'put') {
      const m = this.registry.decodeMember(ns.network.name, kv);
      if (!m) return;
      ns.peers.set(id, m);
      ns.pending.add(id);
    } else {
      const gone = ns.peers.get(id);
      if (gone) ns.pending.add(id);
      ns.peers.delete(id);
      // A waiting host marks too: it may be the only one left to.
      if (id !== this.options.hostId) {
        if (gone) ns.departed.set(id, gone.blocks);
        this.scheduleOrphanMark(ns);
      }
    }
    this.schedule(ns);
  }

  /**
   * Changes on our devices. The echo of our own syncs agrees with the view and is dropped (at
   * 5,000 hosts each echo used to cost a full reconciliation); anything else (an entry deleted
   * or altered by hand, the device or its addresses changed, lost notifications) makes the next
   * sync a full reconciliation.
   */
  private onKernelChange(changes: RtnlChange[]): void {
    for (const ns of this.nets.values()) {
      const foreign = changes.find((c) => !this.isEcho(ns, c));
      if (foreign) this.requestFull(ns, `kernel: ${describeChange(foreign)}`);
    }
  }

  private openMonitor(): void {
    if (this.stopped || this.monitor || this.monitorPaused > 0) return;
    this.monitor = this.c.monitor?.((changes) => this.onKernelChange(changes));
  }

  /**
   * Closes the kernel notifications around a burst of our own changes (more than
   * MONITOR_PAUSE_ENTRIES entries, incremental or full): thousands of echoes overflow the
   * socket's buffer, and node-netlink reports that overflow, when poll sees it first, by
   * aborting the process (a null syscall name in its error path). Damage done meanwhile is
   * left to the periodic check.
   */
  private async withMonitorPaused<T>(fn: () => Promise<T>): Promise<T> {
    this.monitorPaused++;
    this.monitor?.close();
    this.monitor = undefined;
    try {
      return await fn();
    } finally {
      this.monitorPaused--;
      this.openMonitor();
    }
  }

  private requestFull(ns: NetState, reason: string): void {
    if (!ns.full) ns.fullReason = reason;
    ns.full = true;
    this.schedule(ns);
  }

  private isEcho(ns: NetState, c: RtnlChange): boolean {
    if (c.kind === 'overflow') return false;
    if (ns.index === undefined || c.ifindex !== ns.index) return true; // not our device
    if (c.kind === 'address' && c.address) {
      const a = c.address.ip;
      // The kernel's own IPv6 link-local address (and its DAD finishing) is not ours to manage.
      if (a.family === 6 && a.value >> 118n === 0x3fan) return true;
      const ours = ns.blocks.some((b) => sameIp(vtepIpOf(b), a) || sameIp(gatewayOf(b), a));
      return c.op === 'new' ? ours : !ours;
    }
    const k = kernelEntryChange(c);
    if (k === undefined) return false;
    // A key our own syncs touched moments ago: its notification may describe a state the view
    // has already moved past (a host leaving and coming back), so it is taken as our echo.
    const at = ns.touched.get(entryKey(k));
    if (at !== undefined && this.now() - at < ECHO_WINDOW_MS) return true;
    return ns.view.explains(k);
  }

  /** Remembers the keys a diff touches (see isEcho), forgetting those older than the window. */
  private touch(ns: NetState, d: EntryDiff): void {
    const now = this.now();
    const add = (key: string): void => { ns.touched.delete(key); ns.touched.set(key, now); };
    for (const e of [d.set, d.del]) {
      for (const n of e.neigh) add(`n ${formatIp(n.ip)}`);
      for (const f of e.fdb) add(`f ${f.mac.toLowerCase()}`);
      for (const r of e.routes) add(`r ${formatCidr(r.dst)}`);
    }
    // Insertion order is age order (a key touched again moves to the end).
    for (const [key, at] of ns.touched) {
      if (now - at < ECHO_WINDOW_MS) break;
      ns.touched.delete(key);
    }
  }

  /**
   * Marks the blocks of hosts that left as orphaned (their grace period starts). One pass per
   * burst of departures: 1000 hosts leaving at once cost a few passes, not 1000; a pass asks
   * etcd about the departed hosts only (registry.markOrphansOf), not about every host.
   */
  private scheduleOrphanMark(ns: NetState): void {
    if (ns.marking) { ns.markAgain = true; return; }
    ns.marking = true;
    const pass = (): void => {
      ns.markAgain = false;
      // The departed hosts' own blocks (a few requests each); a waiting host, which needs every
      // dead holder's block marked, reads them all.
      const departed = ns.departed;
      ns.departed = new Map();
      const marking = ns.shortage ? this.registry.markOrphans(ns.network.name, this.now())
        : departed.size > 0 ? this.registry.markOrphansOf(ns.network.name, departed, this.now()) : Promise.resolve(0);
      marking
        .catch((err) => this.log.debug('marking orphaned blocks failed', { error: (err as Error).message }))
        .finally(() => {
          if (ns.markAgain && !this.stopped) pass();
          else {
            ns.marking = false;
            // The marks start grace periods: a waiting host sets its timer for the first end.
            if (ns.shortage) void this.claim(ns);
          }
        });
    };
    pass();
  }

  private schedule(ns: NetState): void {
    if (!ns.running && !this.stopped) void this.runSync(ns);
  }

  private async runSync(ns: NetState): Promise<void> {
    ns.running = true;
    if (ns.retry) { clearTimeout(ns.retry); ns.retry = undefined; }
    try {
      while ((ns.full || ns.pending.size > 0) && !this.stopped) {
        // No device (or no block) while waiting for one: takeBlocks() asks for a full sync then.
        const programmer = ns.programmer;
        if (!programmer || ns.blocks.length === 0 || ns.index === undefined) break;
        const full = ns.full;
        const reason = full ? ns.fullReason : undefined;
        const ids = ns.pending;
        ns.full = false;
        ns.pending = new Set();
        const network = ns.network.name;
        try {
          let report: SyncReport;
          let update: ViewUpdate;
          if (full) {
            update = ns.view.reset(ns.peers.values());
            for (const c of update.conflicts) this.log.warn('peer left out: it clashes with another', { network, ...c });
            report = await programmer.reconcile(ns.view.entries(), update.conflicts,
              (size, apply) => (size > MONITOR_PAUSE_ENTRIES ? this.withMonitorPaused(apply) : apply()));
            ns.mtu = report.mtu;
          } else {
            const t0 = process.hrtime.bigint();
            update = ns.view.update(new Map([...ids].map((id) => [id, ns.peers.get(id)])));
            const planMs = Number(process.hrtime.bigint() - t0) / 1e6;
            if (update.recomputed) for (const c of update.conflicts) this.log.warn('peer left out: it clashes with another', { network, ...c });
            this.touch(ns, update.diff);
            const size = [update.diff.set, update.diff.del].reduce((n, e) => n + e.neigh.length + e.fdb.length + e.routes.length, 0);
            const apply = (): Promise<SyncReport> => programmer.applyDiff(ns.index as number, update.diff, ns.mtu);
            const r = size > MONITOR_PAUSE_ENTRIES ? await this.withMonitorPaused(apply) : await apply();
            report = { ...r, ms: r.ms + planMs, steps: { plan: Math.round(planMs * 100) / 100, ...r.steps } };
          }
          ns.index = report.index;
          for (const e of update.events) {
            this.log.info(`peer ${e.type}`, { network, peer: e.peer.id, underlay: formatIp(e.peer.underlay) });
          }
          if (full && reason !== 'start' && reason !== 'periodic check') this.log.info('overlay reconciled in full', { network, reason, set: report.set, deleted: report.deleted });
          this.log.debug('overlay sync', { network, full, reason, changed: ids.size, set: report.set, deleted: report.deleted, ms: Math.round(report.ms * 100) / 100, ...report.steps });
          this.emit('synced', { network, report, peers: ns.view.size, ...(reason !== undefined ? { reason } : {}) } satisfies SyncedEvent);
        } catch (err) {
          // The view may be ahead of the device now: the retry reconciles in full.
          ns.full = true;
          ns.fullReason = 'retry after a failed sync';
          for (const id of ids) ns.pending.add(id);
          this.log.error('overlay sync failed; retrying', { network, error: (err as Error).message });
          ns.retry = setTimeout(() => this.schedule(ns), this.retryMs);
          return;
        }
      }
    } finally {
      ns.running = false;
    }
  }

  /**
   * Stops watching and renewing. revoke (default): the lease is revoked, so peers drop this
   * host's entries at once (a clean shutdown). revoke false: renewals just stop, as if the
   * host died; the records expire after the TTL. The datapath is left as it is either way.
   */
  async stop(options: { revoke?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.registerTimer) clearTimeout(this.registerTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    this.monitor?.close();
    this.monitor = undefined;
    for (const ns of this.nets.values()) {
      if (ns.retry) clearTimeout(ns.retry);
      if (ns.claimTimer) clearTimeout(ns.claimTimer);
      await ns.watch?.close().catch(() => undefined);
    }
    const lease = this.lease;
    this.lease = undefined;
    if (!lease) return;
    if (options.revoke ?? true) await lease.revoke(callOptions()).catch((err) => this.log.warn('revoking the lease failed', { error: (err as Error).message }));
    else lease.release();
  }
}
