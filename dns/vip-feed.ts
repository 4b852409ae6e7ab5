// The zone's named-VIP records fed from the VIP model (vip/model.ts's VipView, read through the
// structural NamedVip below: dns/ and vip/ sit on one layer and do not import each other; vxnetd
// connects them). Each model replaces the previous one: names gone are deleted, names changed
// are set again, names unchanged are not touched (so the zone's serial and its cached answers
// move only when something did). Pure: the zone is changed in place.
import { type Ip, parseIp } from '../ipam/addr';
import { InvalidName } from '../lib/errors';
import type { VipRecords, Zone } from './zone';

/** What the feed reads of a VIP: named VIPs only (an IP VIP has no name to serve). */
export interface NamedVip {
  readonly name?: string;
  readonly addresses: readonly string[];
  readonly protocol: 'tcp' | 'udp';
  readonly port: number;
}

/** The records per name: addresses once each (ascending as text), ports in (protocol, port) order. */
export function vipRecordsOf(vips: readonly NamedVip[]): VipRecords[] {
  const byName = new Map<string, { addresses: Set<string>; ports: Map<string, { port: number; protocol: 'tcp' | 'udp' }> }>();
  for (const v of vips) {
    if (v.name === undefined) continue;
    let r = byName.get(v.name);
    if (!r) byName.set(v.name, (r = { addresses: new Set(), ports: new Map() }));
    for (const a of v.addresses) r.addresses.add(a);
    r.ports.set(`${v.protocol}/${String(v.port).padStart(5, '0')}`, { port: v.port, protocol: v.protocol });
  }
  return [...byName].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, r]) => ({
    name,
    addresses: [...r.addresses].sort().map((a) => parseIp(a)).filter((ip): ip is Ip => ip !== undefined),
    ports: [...r.ports].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, p]) => p),
  }));
}

const same = (a: VipRecords, b: VipRecords): boolean => JSON.stringify(a, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) === JSON.stringify(b, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));

export class VipZoneFeed {
  private served = new Map<string, VipRecords>();
  /** Names refused, reported once while they stay refused. */
  private refused = new Set<string>();

  constructor(private readonly zone: Zone, private readonly onInvalid: (name: string, err: InvalidName) => void) {}

  /** Makes the zone's VIP names exactly those of `vips`. A VIP with no address yet (its claim pending) gets no records. */
  replace(vips: readonly NamedVip[]): void {
    const next = new Map<string, VipRecords>();
    for (const r of vipRecordsOf(vips)) if (r.addresses.length) next.set(r.name, r);
    for (const name of this.served.keys()) if (!next.has(name)) this.zone.deleteVip(name);
    const served = new Map<string, VipRecords>();
    const refused = new Set<string>();
    for (const [name, r] of next) {
      const was = this.served.get(name);
      if (was && same(was, r)) { served.set(name, r); continue; }
      try {
        this.zone.setVip(r);
        served.set(name, r);
      } catch (err) {
        if (!(err instanceof InvalidName)) throw err;
        this.zone.deleteVip(name);
        refused.add(name);
        if (!this.refused.has(name)) this.onInvalid(name, err);
      }
    }
    this.served = served;
    this.refused = refused;
  }

  /** The VIP names served now. */
  names(): string[] {
    return [...this.served.keys()];
  }
}
