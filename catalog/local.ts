// This host's endpoints, from the IPAM store: every (network, containerId) holding addresses
// here is one endpoint, with all its addresses (every ifname). What the store recorded at
// attach time (name, aliases, CNI labels and ports) is completed by what the runtime knows of
// the container (MetadataSource: its name, labels, exposed ports) and the operator's labels,
// then derived (./derive.ts) and handed to the catalog as this host's whole set.
//
// Why a rescan and not events: the store is written by CNI plugin processes vxnetd does not
// see, so nothing tells vxnetd of an ADD from outside it. vxnetd's own paths (the Docker driver,
// the CNI hand-off) call refresh() after a change; the periodic rescan catches the rest.
//
// The pure part (allocations + facts -> endpoints) is localEndpointsFrom; LocalEndpoints is
// the I/O shell (store reads, metadata lookups with their cache, the timer, the logs).
import { asVxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { Service } from '../lib/service';
import type { Allocation, IpamStore } from '../ipam/store/types';
import type { EndpointCatalog } from './catalog';
import { deriveEndpoint, dnsLabelOf } from './derive';
import type { Endpoint, EndpointPort } from './endpoint';
import type { MetadataSource, OperatorLabelSource, RuntimeFacts } from './sources';

export type { MetadataSource, OperatorLabelSource, RuntimeFacts } from './sources';

export interface LocalEndpointsOptions {
  store: IpamStore;
  catalog: EndpointCatalog;
  host: string;
  metadata?: MetadataSource;
  operatorLabels?: OperatorLabelSource;
  /** Safety-net rescan, default 2000. */
  intervalMs?: number;
  log: Logger;
}

/** What the store holds for one container on one network (all its ifnames together). */
export interface StoredContainer {
  readonly network: string;
  readonly containerId: string;
  readonly runtime: string;
  readonly name?: string;
  readonly aliases: readonly string[];
  readonly addresses: readonly string[];
  readonly cniLabels: Readonly<Record<string, string>>;
  readonly ports: readonly EndpointPort[];
}

const groupKey = (network: string, containerId: string): string => `${network}\0${containerId}`;

/**
 * The store's allocations grouped per (network, containerId). Fields recorded per ifname are
 * merged: the first name found (ifnames in store order), aliases and ports once each in order,
 * labels with a later allocation winning per key (they come from one ADD in practice).
 */
export function groupAllocations(allocations: readonly Allocation[]): StoredContainer[] {
  const groups = new Map<string, { network: string; containerId: string; runtime: string; name?: string; aliases: string[];
    addresses: string[]; cniLabels: Record<string, string>; ports: EndpointPort[] }>();
  for (const a of allocations) {
    const k = groupKey(a.network, a.containerId);
    let g = groups.get(k);
    if (!g) {
      g = { network: a.network, containerId: a.containerId, runtime: a.runtime, aliases: [], addresses: [], cniLabels: {}, ports: [] };
      groups.set(k, g);
    }
    if (g.name === undefined && a.name) g.name = a.name;
    for (const alias of a.aliases ?? []) if (!g.aliases.includes(alias)) g.aliases.push(alias);
    if (!g.addresses.includes(a.address)) g.addresses.push(a.address);
    Object.assign(g.cniLabels, a.labels);
    for (const p of a.ports ?? []) {
      if (!g.ports.some((q) => q.port === p.port && q.protocol === p.protocol)) g.ports.push({ port: p.port, protocol: p.protocol });
    }
  }
  return [...groups.values()];
}

export interface LocalKnowledge {
  /** What the runtime said of a container (by containerId); undefined when it said nothing. */
  runtimeFacts?(runtime: string, containerId: string): RuntimeFacts | undefined;
  /** Operator labels for an endpoint's name. */
  operatorLabels?(name: string): Readonly<Record<string, string>> | undefined;
}

export interface LocalEndpointsResult {
  readonly endpoints: Endpoint[];
  /** Endpoint id -> a label derive ignored (a bad vxnet.ports), for the logs. */
  readonly problems: ReadonlyMap<string, string>;
}

/**
 * This host's endpoints from its store's allocations and what else is known. The name is the
 * runtime's when it knows one (Docker renames), else the store's; operator labels are looked up
 * by the endpoint's DNS name (the name `vxnetctl endpoint label` shows), else its raw name.
 * Ports: the store's (CNI portMappings) when it has any, else the runtime's exposed ports.
 */
export function localEndpointsFrom(allocations: readonly Allocation[], host: string, know: LocalKnowledge = {}): LocalEndpointsResult {
  const endpoints: Endpoint[] = [];
  const problems = new Map<string, string>();
  for (const c of groupAllocations(allocations)) {
    const rt = know.runtimeFacts?.(c.runtime, c.containerId);
    const name = rt?.name ?? c.name;
    const key = dnsLabelOf(name) ?? name;
    const operator = key !== undefined ? know.operatorLabels?.(key) : undefined;
    const exposed = c.ports.length ? c.ports : rt?.exposedPorts;
    const { endpoint, problem } = deriveEndpoint({
      host, runtime: c.runtime, containerId: c.containerId, network: c.network,
      ...(name !== undefined ? { name } : {}),
      aliases: c.aliases, addresses: c.addresses,
      cniLabels: c.cniLabels,
      ...(rt?.labels ? { runtimeLabels: rt.labels } : {}),
      ...(operator ? { operatorLabels: operator } : {}),
      ...(exposed ? { exposedPorts: exposed } : {}),
      ...(rt?.health ? { health: rt.health } : {}),
    });
    endpoints.push(endpoint);
    if (problem !== undefined) problems.set(endpoint.id, problem);
  }
  return { endpoints, problems };
}

/** How many metadata lookups run at once (a Docker daemon answers one inspect per request). */
const LOOKUP_CONCURRENCY = 8;

export class LocalEndpoints implements Service {
  readonly name = 'endpoints';
  private readonly intervalMs: number;
  /**
   * The runtime's answer per containerId, kept while the container holds addresses here (its
   * name and labels do not change while it runs). "Did not know it" (undefined) is an answer
   * too; only a failed lookup is asked again.
   */
  private readonly facts = new Map<string, RuntimeFacts | undefined>();
  /** Containers whose failed lookup was logged: once each until it succeeds or they leave. */
  private readonly lookupFailed = new Set<string>();
  /** The derive problem last logged per endpoint id. */
  private readonly problemsLogged = new Map<string, string>();
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: LocalEndpointsOptions) {
    this.intervalMs = o.intervalMs ?? 2000;
  }

  /**
   * Re-reads the store and replaces this host's endpoints in the catalog. Calls during a refresh
   * coalesce into one more refresh after it; resolves when a refresh that started after the
   * call has finished.
   */
  refresh(): Promise<void> {
    if (!this.running) {
      const run = this.scan().finally(() => { if (this.running === run) this.running = undefined; });
      this.running = run;
      return run;
    }
    // One refresh queued behind the running one serves every caller that came meanwhile.
    this.queued ??= this.running.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.refresh();
    });
    return this.queued;
  }

  /**
   * Drops what the runtime said of a container (by the store's id or the runtime's own), so the
   * next refresh asks again: a container's health changes while it runs (Docker's health_status
   * event), its name and labels do not.
   */
  forget(containerId: string): boolean {
    let found = false;
    for (const [id, facts] of this.facts) {
      if (id === containerId || facts?.containerId === containerId) { this.facts.delete(id); found = true; }
    }
    return found;
  }

  /** Resolves after the first refresh has filled the catalog (DNS opens only after), then rescans every intervalMs. */
  async start(): Promise<void> {
    await this.refresh();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
    await this.queued?.catch(() => undefined);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refresh().catch((err: unknown) => {
        this.o.log.warn('endpoints: reading the IPAM store failed; the catalog keeps the last set', { error: asVxnetError(err).message });
      }).finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }

  private async scan(): Promise<void> {
    const allocations = await this.o.store.view((tx) => tx.list());
    const containers = new Map<string, string>(); // containerId -> runtime
    for (const a of allocations) containers.set(a.containerId, a.runtime);
    for (const id of [...this.facts.keys()]) if (!containers.has(id)) this.facts.delete(id);
    for (const id of [...this.lookupFailed]) if (!containers.has(id)) this.lookupFailed.delete(id);
    // Publish what is known now, then ask the runtimes about new containers and publish again:
    // a refresh run for a CNI ADD must not wait for podman, which may be holding the
    // container's lock while it waits for that ADD.
    this.publish(allocations);
    const todo = [...containers].filter(([id]) => !this.facts.has(id));
    if (todo.length === 0) return;
    await this.lookUp(todo);
    if (!this.stopped) this.publish(allocations);
  }

  private publish(allocations: readonly Allocation[]): void {
    const operator = this.o.operatorLabels;
    const { endpoints, problems } = localEndpointsFrom(allocations, this.o.host, {
      runtimeFacts: (_runtime, id) => this.facts.get(id),
      ...(operator ? { operatorLabels: (name: string) => operator.labelsFor(name) } : {}),
    });
    for (const [id, problem] of problems) {
      if (this.problemsLogged.get(id) === problem) continue;
      this.problemsLogged.set(id, problem);
      this.o.log.warn('endpoint label ignored', { endpoint: id, problem });
    }
    for (const id of [...this.problemsLogged.keys()]) if (!problems.has(id)) this.problemsLogged.delete(id);
    this.o.catalog.replaceHost(this.o.host, endpoints);
  }

  /** Asks the runtimes about containers not cached yet; a failure leaves them uncached (asked again next time). */
  private async lookUp(todo: Array<[string, string]>): Promise<void> {
    const metadata = this.o.metadata;
    if (!metadata) return;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < todo.length && !this.stopped) {
        const [id, runtime] = todo[next++] as [string, string];
        try {
          const facts = await metadata.lookup(runtime, id);
          // Docker learns which container an endpoint is for after the driver's calls: an
          // endpoint it does not know yet is asked again, not cached as unknown.
          if (facts !== undefined || runtime !== 'docker') this.facts.set(id, facts);
          this.lookupFailed.delete(id);
        } catch (err) {
          if (this.lookupFailed.has(id)) continue;
          this.lookupFailed.add(id);
          this.o.log.warn('container metadata lookup failed; catalogued with what the IPAM store knows, asked again on the next refresh',
            { runtime, containerId: id, error: err instanceof Error ? err.message : String(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, todo.length) }, worker));
  }
}
