// Bringing vxnet in line with Docker, which does not always tell its driver (a daemon crash,
// vxnetd down during a teardown): container names filled in, addresses of endpoints Docker no
// longer lists released after a grace (ipam/docker.ts), records of networks Docker removed
// dropped, and container ends Docker never took removed. Only runtime "docker" allocations are
// touched.
import type { Allocation } from '../ipam/store/types';
import { isPending, nameEndpoints, releaseForgotten } from '../ipam/docker';
import type { DriverContext } from './context';
import { CONTAINER_VETH_PREFIX, endpointContainerVeth, endpointHostVeth, shortId } from './model';
import { removeNetwork } from './network-driver';

export interface ReconcileReport {
  checked: number;
  released: Allocation[];
  named: number;
  networksRemoved: string[];
  orphansRemoved: string[];
}

export interface Graces {
  /** An endpoint's address is released when Docker has not listed the endpoint for this long. */
  readonly endpointGraceMs: number;
  /** An address reserved by RequestAddress and not claimed by CreateEndpoint is released after this long. */
  readonly pendingGraceMs: number;
}

export class Reconciler {
  /** Container ends seen in the host namespace at the last reconcile (see sweepOrphans). */
  private orphanCandidates = new Set<string>();

  constructor(private readonly ctx: DriverContext, private readonly graces: Graces) {}

  /** One pass against Docker; needs the Docker API for all but the orphan sweep. */
  async reconcile(): Promise<ReconcileReport> {
    const { ctx } = this;
    const report: ReconcileReport = { checked: 0, released: [], named: 0, networksRemoved: [], orphansRemoved: [] };
    report.orphansRemoved = await this.sweepOrphans();
    if (!ctx.docker) return report;
    const nets = await ctx.docker.networks();
    const relevant = nets.filter((n) => n.driver === ctx.plugin || n.ipamDriver === ctx.plugin);
    const byId = new Map(relevant.map((n) => [n.id, n]));
    for (const rec of ctx.networks.all()) {
      if (!nets.some((n) => n.id === rec.id)) {
        await ctx.mutex.run(rec.id, () => removeNetwork(ctx, rec.id, 'docker reconcile: network gone'));
        report.networksRemoved.push(rec.id);
      } else if (!rec.dockerName) {
        const n = byId.get(rec.id);
        if (n) await ctx.networks.learnName(rec.id, n.name);
      }
    }
    // Endpoints Docker has, from an inspect of each network (the list leaves them out).
    const names = new Map<string, string>();
    for (const n of relevant) {
      const full = await ctx.docker.network(n.id);
      for (const [eid, e] of full?.endpoints ?? []) names.set(eid, e.name);
    }
    report.named = await nameEndpoints(ctx.store, names);
    const { checked, released } = await releaseForgotten(ctx.store, (eid) => names.has(eid), { now: ctx.now(), ...this.graces });
    report.checked = checked;
    report.released = released;
    for (const a of released) {
      const pending = isPending(a);
      if (!pending) {
        await ctx.dp.removeLink(endpointHostVeth(a.containerId)).catch(() => false);
        await ctx.dp.removeLink(endpointContainerVeth(a.containerId)).catch(() => false);
      }
      ctx.log.warn('released the address of an endpoint Docker no longer has', { network: a.network, address: a.address, endpoint: shortId(a.containerId), container: a.name, pending });
    }
    return report;
  }

  /** Fills in container names for one network's endpoints (after a network connect event). */
  async refreshNames(nid: string): Promise<number> {
    const rec = this.ctx.networks.get(nid);
    if (rec?.name === undefined || !this.ctx.docker) return 0;
    const net = await this.ctx.docker.network(nid);
    if (!net) return 0;
    return nameEndpoints(this.ctx.store, new Map([...net.endpoints].map(([eid, e]) => [eid, e.name])), rec.name);
  }

  /**
   * A container end (vxy...) stays in the host namespace only between Join and Docker moving
   * it, and between Leave and DeleteEndpoint: milliseconds. One seen at two reconciles in a row
   * belongs to a Join Docker gave up on without a DeleteEndpoint; removing it removes the pair.
   */
  private async sweepOrphans(): Promise<string[]> {
    const now = await this.ctx.dp.linksNamed(CONTAINER_VETH_PREFIX).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const name of now) {
      if (!this.orphanCandidates.has(name)) continue;
      if (await this.ctx.dp.removeLink(name).catch(() => false)) removed.push(name);
    }
    this.orphanCandidates = new Set(now.filter((n) => !removed.includes(n)));
    if (removed.length) this.ctx.log.warn('removed veth pairs of endpoints Docker never took', { links: removed });
    return removed;
  }
}
