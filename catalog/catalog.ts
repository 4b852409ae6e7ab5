// The endpoint catalog: every endpoint of the cluster by id, grouped by host, and the changes
// to it pushed to subscribers in the order they happen. Pure state (no I/O): the sources
// (./local.ts for this host, ./cluster.ts for the others) replace a host's endpoints as a
// whole, and the catalog works out what changed.
import type { Endpoint, EndpointChange } from './endpoint';

export type ChangeListener = (changes: readonly EndpointChange[]) => void;

const same = (a: Endpoint, b: Endpoint): boolean => JSON.stringify(a) === JSON.stringify(b);

export class EndpointCatalog {
  private readonly byHost = new Map<string, Map<string, Endpoint>>();
  private readonly byId = new Map<string, Endpoint>();
  private readonly listeners = new Set<ChangeListener>();

  /** Calls listener with every later batch of changes; returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Makes `endpoints` the whole of `host`'s endpoints; returns (and publishes) what changed. */
  replaceHost(host: string, endpoints: Iterable<Endpoint>): EndpointChange[] {
    const old = this.byHost.get(host) ?? new Map<string, Endpoint>();
    const next = new Map<string, Endpoint>();
    for (const e of endpoints) next.set(e.id, e);
    const changes: EndpointChange[] = [];
    for (const [id, before] of old) if (!next.has(id)) changes.push({ id, before, after: undefined });
    for (const [id, after] of next) {
      const before = old.get(id);
      if (!before || !same(before, after)) changes.push({ id, before, after });
    }
    if (next.size) this.byHost.set(host, next); else this.byHost.delete(host);
    return this.apply(changes);
  }

  /** Adds or replaces one endpoint (under its own host). */
  put(endpoint: Endpoint): EndpointChange[] {
    const before = this.byId.get(endpoint.id);
    if (before && same(before, endpoint)) return [];
    if (before && before.host !== endpoint.host) this.byHost.get(before.host)?.delete(endpoint.id);
    let hostMap = this.byHost.get(endpoint.host);
    if (!hostMap) this.byHost.set(endpoint.host, (hostMap = new Map()));
    hostMap.set(endpoint.id, endpoint);
    return this.apply([{ id: endpoint.id, before, after: endpoint }]);
  }

  /** Removes one endpoint; [] when it was not there. */
  remove(id: string): EndpointChange[] {
    const before = this.byId.get(id);
    if (!before) return [];
    const hostMap = this.byHost.get(before.host);
    hostMap?.delete(id);
    if (hostMap && hostMap.size === 0) this.byHost.delete(before.host);
    return this.apply([{ id, before, after: undefined }]);
  }

  get(id: string): Endpoint | undefined {
    return this.byId.get(id);
  }

  /** Every endpoint, or those of one host. */
  list(host?: string): Endpoint[] {
    if (host !== undefined) return [...(this.byHost.get(host)?.values() ?? [])];
    return [...this.byId.values()];
  }

  hosts(): string[] {
    return [...this.byHost.keys()];
  }

  get size(): number {
    return this.byId.size;
  }

  private apply(changes: EndpointChange[]): EndpointChange[] {
    for (const c of changes) {
      if (c.after) this.byId.set(c.id, c.after); else this.byId.delete(c.id);
    }
    if (changes.length) for (const l of this.listeners) l(changes);
    return changes;
  }
}
