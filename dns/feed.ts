// The zone fed from the endpoint catalog: each catalog endpoint becomes one zone entry per
// name it answers to (its name, then each alias), each change batch is applied as it comes.
// Pure: no I/O; the catalog pushes, the zone is changed in place.
//
// An entry's zone id is the endpoint's id for the name and `ID#alias:ALIAS` for an alias, so
// a removal (or an alias dropped) deletes exactly what the endpoint put in. A name the zone
// refuses (InvalidName: a dot in a container name, a label over 63 bytes) is reported once per
// endpoint id and name, not per change, and is not fatal: the endpoint's other names still
// resolve, and the rest of the catalog is unaffected.
import type { Endpoint, EndpointChange } from '../catalog/endpoint';
import type { EndpointCatalog } from '../catalog/catalog';
import { type Ip, parseIp } from '../ipam/addr';
import { InvalidName } from '../lib/errors';
import type { Endpoint as ZoneEndpoint, Zone } from './zone';

/** One zone entry: its id in the zone and what the zone serves for it. */
export interface ZoneEntry {
  readonly id: string;
  readonly endpoint: ZoneEndpoint;
}

const aliasId = (id: string, alias: string): string => `${id}#alias:${alias}`;

/** The zone entries of a catalog endpoint: none when it has no name (nothing to call it by). */
export function zoneEntriesOf(e: Endpoint): ZoneEntry[] {
  if (e.name === '') return [];
  const addresses = e.addresses.map((a) => parseIp(a)).filter((ip): ip is Ip => ip !== undefined);
  const base = { network: e.network, addresses, ports: e.ports, host: e.host, ...(e.service !== undefined ? { service: e.service } : {}) };
  const names = [...new Set([e.name, ...e.aliases.filter((a) => a !== '')])];
  // An alias is one more name for the addresses: the SRV records and the service are the
  // endpoint's own (under its name), not repeated per alias.
  return names.map((name) => (name === e.name
    ? { id: e.id, endpoint: { ...base, name } }
    : { id: aliasId(e.id, name), endpoint: { network: e.network, addresses, ports: [], host: e.host, name } }));
}

export type InvalidListener = (id: string, name: string, err: InvalidName) => void;

export class ZoneFeed {
  /** Catalog id -> the zone ids it put in (what a removal deletes). */
  private readonly entries = new Map<string, string[]>();
  /** `zone id\0name\0message` already reported. */
  private readonly reported = new Set<string>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly zone: Zone, private readonly onInvalid: InvalidListener) {}

  /** Every endpoint the catalog holds now, then each later batch; returns how many were set. */
  follow(catalog: EndpointCatalog): number {
    this.stop();
    for (const e of catalog.list()) this.put(e);
    this.unsubscribe = catalog.subscribe((changes) => this.apply(changes));
    return catalog.size;
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  apply(changes: readonly EndpointChange[]): void {
    for (const c of changes) {
      if (c.after) this.put(c.after);
      else this.remove(c.id);
    }
  }

  put(e: Endpoint): void {
    const next = zoneEntriesOf(e);
    const keep = new Set(next.map((n) => n.id));
    for (const old of this.entries.get(e.id) ?? []) if (!keep.has(old)) this.zone.delete(old);
    const set: string[] = [];
    for (const entry of next) {
      try {
        this.zone.set(entry.id, entry.endpoint);
        set.push(entry.id);
      } catch (err) {
        if (!(err instanceof InvalidName)) throw err;
        // The zone left it as it was: an older version of this name must not linger either.
        this.zone.delete(entry.id);
        const key = `${entry.id}\0${entry.endpoint.name}\0${err.message}`;
        if (!this.reported.has(key)) {
          this.reported.add(key);
          this.onInvalid(e.id, entry.endpoint.name, err);
        }
      }
    }
    if (set.length) this.entries.set(e.id, set); else this.entries.delete(e.id);
  }

  remove(id: string): void {
    for (const zid of this.entries.get(id) ?? []) this.zone.delete(zid);
    this.entries.delete(id);
    for (const key of this.reported) if (key.startsWith(`${id}\0`) || key.startsWith(`${id}#alias:`)) this.reported.delete(key);
  }
}
