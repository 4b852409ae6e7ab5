// Programs one overlay network's VXLAN datapath on this host, over netlink, from the pure plan
// (overlay/plan.ts). Design notes:
//
// Idempotent, converging from any state. Every sync reads what the kernel holds on the VXLAN
// device (permanent neighbours, FDB entries with a remote, routes through the device via a
// gateway), asks diffEntries what differs from the desired entries, and changes only that. So
// stale entries of a host that left or expired go, entries an operator deleted come back, and a
// second sync with nothing new does nothing (it costs three dumps). The device is ours: anything
// on it that no peer wants is removed.
//
// The device: ensure-or-recreate, as flannel's ensureLink. A link of the right name with a
// compatible configuration (kind vxlan, VNI, local underlay address, UDP port, learning off,
// underlay link) is kept, and only its MTU, MAC and up state are corrected; an incompatible one
// (those are fixed at creation) is deleted and created again; each sync logs which happened.
// The VTEP addresses (first address of each of our blocks, /32 or /128) sit on the device, and
// so do the containers' gateways (each block's second address): containers are attached routed
// (datapath/routed.ts), each by its own veth with no bridge, and the gateway being a local
// address makes the host answer ARP for it on every veth and a ping to it.
//
// Order. Removals first, route before neighbour and FDB: once the route is gone no new packet
// is steered at an entry about to vanish. Additions: neighbour, then FDB, then the route LAST.
// The route is what makes the kernel send a block's traffic to a VTEP IP; if it existed before
// the neighbour entry, the first packet would start ARP/ND on the VXLAN device, which has no
// broadcast FDB entry (nolearning, no 00:00:00:00:00:00 -> all-peers flooding) so the request
// goes nowhere: the kernel parks the packet and leaves a FAILED neighbour entry. With the
// neighbour (VTEP IP -> MAC) and the FDB (MAC -> underlay IP) in place first, the first packet
// routed finds the whole path. The same order makes a peer's change of underlay address an FDB
// replace with no gap.
//
// Two paths. reconcile() is the full one above (start-up, a watch's reset, kernel damage, the
// periodic check); applyDiff() applies a diff the agent computed from a peer's change
// (overlay/view.ts) without reading the kernel, so a join costs its own three entries, not
// three dumps of every peer's (issue 17: 2.1-2.4 s per join at 5,000 hosts).
//
// Scaling: a sync is three dumps plus one request per changed entry. Requests of one phase are
// sent concurrently (up to BATCH in flight on the one socket), phases one after the other, so
// 1000 new peers cost about 3000 requests in three phases.
import { DatapathFailure } from '../lib/errors';
import type { Logger } from '../lib/log';
import { Cidr, Ip, formatCidr, formatIp, sameIp } from '../ipam/addr';
import type { Rtnl } from '../net/rtnl';
import {
  Conflict, EntryDiff, Entries, Peer, VXLAN_PORT, desiredEntries, diffEntries, gatewayOf, overlayMtu, vtepIpOf,
} from './plan';

const BATCH = 64;

export interface VtepConfig {
  /** This host's id (its own record is skipped among the peers). */
  readonly hostId: string;
  readonly vni: number;
  /** The VXLAN device's name (vxlanDeviceName(vni)). */
  readonly device: string;
  /** This host's underlay address; the device's local address and the underlay link's. */
  readonly underlay: Ip;
  /** The VTEP MAC (vtepMacFor(hostId, vni)). */
  readonly mac: string;
  /** The overlay MTU; undefined: the underlay link's MTU minus the VXLAN overhead. */
  readonly mtu?: number;
  readonly port?: number;
  /** This host's blocks: the VTEP addresses are their first addresses. */
  readonly blocks: readonly Cidr[];
}

export type DeviceAction = 'created' | 'recreated' | 'updated' | 'kept';

export interface SyncReport {
  readonly device: DeviceAction;
  readonly index: number;
  readonly mtu: number;
  /** Entries created or replaced, and deleted. */
  readonly set: number;
  readonly deleted: number;
  readonly conflicts: readonly Conflict[];
  readonly ms: number;
  /** Where the time went, ms per step (device, plan, read, diff, apply). */
  readonly steps?: Readonly<Record<string, number>>;
  /** A full reconciliation (the kernel read and diffed), or only a computed diff applied. */
  readonly full?: boolean;
}

async function inBatches<T>(items: readonly T[], fn: (x: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += BATCH) await Promise.all(items.slice(i, i + BATCH).map(fn));
}

const isLinkLocal6 = (ip: Ip): boolean => ip.family === 6 && ip.value >> 118n === 0x3fan;

export class VtepProgrammer {
  constructor(private readonly rtnl: Rtnl, private cfg: VtepConfig, private readonly log: Logger) {}

  get config(): VtepConfig { return this.cfg; }

  /** This host's blocks changed (re-registration after they were reclaimed): the VTEP addresses follow at the next sync. */
  setBlocks(blocks: readonly Cidr[]): void {
    this.cfg = { ...this.cfg, blocks };
  }

  /** The underlay link: the one holding the underlay address. */
  private async underlayLink(): Promise<{ index: number; mtu: number }> {
    const addr = (await this.rtnl.addresses()).find((a) => sameIp(a.cidr.ip, this.config.underlay));
    if (!addr) throw new DatapathFailure(`underlay address ${formatIp(this.config.underlay)} is on no link in ${this.rtnl.where}`);
    const link = (await this.rtnl.links()).find((l) => l.index === addr.index);
    if (!link) throw new DatapathFailure(`underlay link #${addr.index} vanished in ${this.rtnl.where}`);
    return { index: link.index, mtu: link.mtu };
  }

  /** Ensure-or-recreate the VXLAN device, its MTU, MAC, addresses and up state. */
  async ensureDevice(): Promise<{ index: number; action: DeviceAction; mtu: number }> {
    const c = this.config;
    const underlay = await this.underlayLink();
    const mtu = overlayMtu({ mtu: c.mtu }, underlay.mtu, c.underlay.family);
    const port = c.port ?? VXLAN_PORT;
    const spec = { name: c.device, vni: c.vni, local: c.underlay, port, learning: false, underlayIndex: underlay.index, mtu, mac: c.mac };
    let action: DeviceAction = 'kept';
    let current = await this.rtnl.vxlan(c.device);
    if (current) {
      const v = current.vxlan;
      const why = !v ? `it is a ${current.link.kind ?? 'non-vxlan'} link`
        : v.vni !== c.vni ? `vni ${v.vni} != ${c.vni}`
          : !v.local || !sameIp(v.local, c.underlay) ? `local ${v.local ? formatIp(v.local) : 'unset'} != ${formatIp(c.underlay)}`
            : v.port !== port ? `port ${v.port} != ${port}`
              : v.learning ? 'learning is on'
                : v.underlayIndex !== undefined && v.underlayIndex !== underlay.index ? `underlay link #${v.underlayIndex} != #${underlay.index}`
                  : undefined;
      if (why) {
        this.log.warn('recreating incompatible vxlan device', { device: c.device, reason: why });
        await this.rtnl.deleteLink(c.device);
        current = undefined;
        action = 'recreated';
      }
    }
    if (!current) {
      if (!(await this.rtnl.createVxlan(spec))) throw new DatapathFailure(`vxlan ${c.device} appeared while being created in ${this.rtnl.where}`);
      if (action !== 'recreated') action = 'created';
      current = await this.rtnl.vxlan(c.device);
      if (!current) throw new DatapathFailure(`vxlan ${c.device} vanished right after its creation in ${this.rtnl.where}`);
      this.log.info(`${action} vxlan device`, { device: c.device, vni: c.vni, local: formatIp(c.underlay), mtu, mac: c.mac });
    }
    const link = current.link;
    const change: { mtu?: number; mac?: string; up?: boolean } = {};
    if (link.mtu !== mtu) change.mtu = mtu;
    if (link.mac.toLowerCase() !== c.mac.toLowerCase()) change.mac = c.mac;
    if (Object.keys(change).length > 0) await this.rtnl.setLink(link.index, change);
    // Addresses: the VTEP IPs first (the source of what the host itself sends through the
    // device), then the gateways, nothing else (the kernel's own IPv6 link-local is left alone).
    const host = (b: Cidr, ip: Ip): Cidr => ({ ip, prefix: b.ip.family === 4 ? 32 : 128 });
    const want: Cidr[] = [...c.blocks.map((b) => host(b, vtepIpOf(b))), ...c.blocks.map((b) => host(b, gatewayOf(b)))];
    const have = (await this.rtnl.addresses(link.index)).filter((a) => !isLinkLocal6(a.cidr.ip)).map((a) => a.cidr);
    const key = (x: Cidr): string => formatCidr(x);
    const haveKeys = new Set(have.map(key));
    const wantKeys = new Set(want.map(key));
    const addrChanges = have.filter((a) => !wantKeys.has(key(a))).length + want.filter((a) => !haveKeys.has(key(a))).length;
    for (const a of have) if (!wantKeys.has(key(a))) await this.rtnl.deleteAddress(link.index, a);
    for (const a of want) if (!haveKeys.has(key(a))) await this.rtnl.addAddress(link.index, a);
    if (!link.up) await this.rtnl.setLink(link.index, { up: true });
    if (action === 'kept' && (Object.keys(change).length > 0 || addrChanges > 0 || !link.up)) {
      action = 'updated';
      this.log.info('updated vxlan device', { device: c.device, ...change, addresses: addrChanges, up: !link.up ? 'set' : 'was' });
    }
    return { index: link.index, action, mtu };
  }

  /** What the device holds now, in the plan's terms. */
  async actual(index: number): Promise<Entries> {
    // One dump at a time: the kernel refuses a second dump on a socket while one runs (EBUSY).
    const neigh = await this.rtnl.neighbours(index);
    const fdb = await this.rtnl.fdb(index);
    const r4 = await this.rtnl.routes(4);
    const r6 = await this.rtnl.routes(6);
    return {
      // Non-permanent entries (the kernel's own, e.g. FAILED after a packet raced a route) are
      // not ours: a desired IP in such a state is simply set (replaced) again.
      neigh: neigh.filter((n) => n.permanent && n.mac !== '').map((n) => ({ ip: n.ip, mac: n.mac })),
      fdb: fdb.filter((f) => f.dst !== undefined).map((f) => ({ mac: f.mac, dst: f.dst as Ip })),
      routes: [...r4, ...r6].filter((r) => r.oif === index && r.gw !== undefined).map((r) => ({ dst: r.dst, via: r.gw as Ip })),
    };
  }

  /** Programs a diff in the order the design notes explain. */
  async apply(index: number, d: EntryDiff): Promise<void> {
    const r = this.rtnl;
    await inBatches(d.del.routes, (x) => r.deleteRoute({ dst: x.dst, gw: x.via, oif: index }));
    await inBatches(d.del.neigh, (x) => r.deleteNeighbour(index, x.ip));
    await inBatches(d.del.fdb, (x) => r.deleteFdb(index, x.mac, x.dst));
    await inBatches(d.set.neigh, (x) => r.setNeighbour(index, x.ip, x.mac));
    await inBatches(d.set.fdb, (x) => r.setFdb(index, x.mac, x.dst));
    // Last: see the design notes at the top.
    await inBatches(d.set.routes, (x) => r.replaceRoute({ dst: x.dst, gw: x.via, oif: index, onlink: true }));
  }

  /** Ensures the device, then makes its entries exactly those the peers need. */
  async sync(peers: Iterable<Peer>): Promise<SyncReport> {
    const t0 = process.hrtime.bigint();
    const { entries, conflicts } = desiredEntries(peers, this.config.hostId);
    for (const c of conflicts) this.log.warn('peer left out: it clashes with another', { ...c });
    const planMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const r = await this.reconcile(entries, conflicts);
    return { ...r, ms: r.ms + planMs, steps: { plan: Math.round(planMs * 100) / 100, ...r.steps } };
  }

  /**
   * The full reconciliation: ensures the device, reads what it holds and makes its entries
   * exactly `entries` (start-up, a watch's reset, kernel damage, the periodic check).
   * `aroundApply` wraps the programming, told how many entries change (the agent closes its
   * kernel notifications around a burst).
   */
  async reconcile(entries: Entries, conflicts: readonly Conflict[] = [],
    aroundApply: (size: number, apply: () => Promise<void>) => Promise<void> = (_n, apply) => apply()): Promise<SyncReport> {
    const start = process.hrtime.bigint();
    const steps: Record<string, number> = {};
    let mark = start;
    const step = (name: string): void => {
      const now = process.hrtime.bigint();
      steps[name] = Math.round(Number(now - mark) / 1e4) / 100;
      mark = now;
    };
    const dev = await this.ensureDevice();
    step('device');
    const actual = await this.actual(dev.index);
    step('read');
    const d = diffEntries(entries, actual);
    step('diff');
    const set = d.set.neigh.length + d.set.fdb.length + d.set.routes.length;
    const deleted = d.del.neigh.length + d.del.fdb.length + d.del.routes.length;
    await aroundApply(set + deleted, () => this.apply(dev.index, d));
    step('apply');
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (set + deleted > 0 || dev.action !== 'kept') {
      this.log.info('overlay synced', { device: this.config.device, action: dev.action, set, deleted, ms: Math.round(ms * 10) / 10 });
    }
    return { device: dev.action, index: dev.index, mtu: dev.mtu, set, deleted, conflicts, ms, steps, full: true };
  }

  /**
   * Applies a diff the caller computed (a peer's change: overlay/view.ts) to the device at
   * `index`, without reading the kernel: the per-event path. The caller falls back to
   * reconcile() when this fails (the device went away, an entry was not as the view thought).
   */
  async applyDiff(index: number, d: EntryDiff, mtu: number): Promise<SyncReport> {
    const start = process.hrtime.bigint();
    await this.apply(index, d);
    const set = d.set.neigh.length + d.set.fdb.length + d.set.routes.length;
    const deleted = d.del.neigh.length + d.del.fdb.length + d.del.routes.length;
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    return { device: 'kept', index, mtu, set, deleted, conflicts: [], ms, steps: { apply: Math.round(ms * 100) / 100 }, full: false };
  }

  /** Deletes the VXLAN device (its neighbours, FDB entries and routes go with it). */
  async remove(): Promise<boolean> {
    return this.rtnl.deleteLink(this.config.device);
  }
}

/**
 * The host's underlay address when none is configured: the first global address of the link
 * that holds the default route (IPv4 first, then IPv6). undefined when there is no default route.
 */
export async function detectUnderlay(rtnl: Rtnl): Promise<Ip | undefined> {
  for (const family of [4, 6] as const) {
    const def = (await rtnl.routes(family)).find((r) => r.dst.prefix === 0 && r.oif !== undefined);
    if (!def) continue;
    const addr = (await rtnl.addresses(def.oif)).find((a) => a.cidr.ip.family === family && !isLinkLocal6(a.cidr.ip));
    if (addr) return addr.cidr.ip;
  }
  return undefined;
}
