// `vxnetctl doctor`'s DNS rules: the names the catalog says vxnetd's DNS must serve (each
// endpoint's NAME.DOMAIN, NAME.NETWORK.DOMAIN, aliases, SERVICE.DOMAIN; each named VIP's
// NAME.l4lb.DOMAIN) with their A/AAAA addresses, against what the server answers over the wire.
// Pure: doctor.ts asks the API and the server.
//
// The expected answers come from a zone built here from the catalog by dns/zone.ts and
// dns/feed.ts, the code vxnetd's zone runs (so a name the zone refuses, a dot in a container
// name, is expected nowhere, and two endpoints of one name or one service answer with all their
// addresses); what is compared is the server's answer on the wire. Nothing here is safe for
// --fix: the zone is vxnetd's memory, rebuilt from the catalog when vxnetd starts.
import type { Endpoint } from '../catalog/endpoint';
import { zoneEntriesOf } from '../dns/feed';
import type { EndpointView } from '../dns/mesos-view';
import { normalizeName } from '../dns/names';
import { vipRecordsOf } from '../dns/vip-feed';
import { VIP_LABEL, Zone } from '../dns/zone';
import { InvalidName } from '../lib/errors';
import type { VipView } from '../vip/model';
import { capPerKind } from './doctor-vips';
import type { Finding } from './doctor-rules';

export interface DnsExpectation {
  /** Normalised, without the trailing dot. */
  readonly name: string;
  readonly a: readonly string[];
  readonly aaaa: readonly string[];
  /** Whose name it is: "endpoint web-1 (network blue, host h1)", "VIP web". */
  readonly of: string;
}

export interface DnsAnswerSeen {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ..., TIMEOUT, ERROR. */
  readonly rcode: string;
  readonly data: readonly string[];
  readonly error?: string;
}

export interface DnsObserved {
  /** The server asked, "198.51.100.1:53". */
  readonly server: string;
  /** The answer to the domain's SOA: is anything serving the zone there. */
  readonly probe: DnsAnswerSeen;
  /** Per expected name, its A and AAAA answers (absent: not asked, as when the probe failed). */
  readonly answers: ReadonlyMap<string, { readonly A: DnsAnswerSeen; readonly AAAA: DnsAnswerSeen }>;
}

/** The API's endpoint view as a catalog endpoint (what the zone feed reads). Pure. */
export function endpointOf(v: EndpointView): Endpoint {
  return {
    id: v.id, host: v.host, runtime: v.runtime, containerId: v.containerId, network: v.network, name: v.name,
    aliases: [...v.aliases], addresses: [...v.addresses], labels: { ...v.labels },
    ports: v.ports.map((p) => ({ port: p.port, protocol: p.protocol, ...(p.name !== null ? { name: p.name } : {}) })),
    ...(v.service !== null ? { service: v.service } : {}),
  };
}

const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

/**
 * The names the catalog's endpoints and the named VIPs must have, with their addresses, in name
 * order. `refused`: how many names the zone would refuse (vxnetd logs them; not expected). Pure.
 */
export function expectedNames(endpoints: readonly Endpoint[], vips: readonly VipView[], domainText: string): { names: DnsExpectation[]; refused: number } {
  const domain = normalizeName(domainText);
  const zone = new Zone({ domain });
  let refused = 0;
  const owners = new Map<string, string>();
  const own = (name: string, of: string): void => { if (!owners.has(name)) owners.set(name, of); };
  for (const e of endpoints) {
    let ok = false;
    for (const entry of zoneEntriesOf(e)) {
      try {
        zone.set(entry.id, entry.endpoint);
        ok = true;
      } catch (err) {
        if (!(err instanceof InvalidName)) throw err;
        refused++;
      }
    }
    if (!ok) continue;
    const of = `endpoint ${e.name} (network ${e.network}, host ${e.host})`;
    for (const n of [e.name, ...e.aliases].filter((x) => x !== '').map((x) => x.toLowerCase())) {
      own(`${n}.${domain}`, of);
      own(`${n}.${e.network.toLowerCase()}.${domain}`, of);
    }
    if (e.service !== undefined && e.service !== '') own(`${e.service.toLowerCase()}.${domain}`, `service ${e.service} (endpoint ${e.name} and others)`);
  }
  for (const r of vipRecordsOf(vips)) {
    if (r.addresses.length === 0) continue;
    try {
      zone.setVip(r);
      own(`${r.name}.${VIP_LABEL}.${domain}`, `VIP ${r.name}`);
    } catch (err) {
      if (!(err instanceof InvalidName)) throw err;
      refused++;
    }
  }
  const names: DnsExpectation[] = [];
  for (const [name, of] of [...owners].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const data = (type: 'A' | 'AAAA'): string[] => sorted((zone.lookup(name, type)?.answers ?? [])
      .flatMap((r) => ((r.type === 'A' || r.type === 'AAAA') && r.type === type ? [r.data] : [])));
    const a = data('A');
    const aaaa = data('AAAA');
    if (a.length || aaaa.length) names.push({ name, a, aaaa, of });
  }
  return { names, refused };
}

const FIX_RESTART = 'restart vxnetd (systemctl restart vxnetd): its zone is rebuilt from the catalog at start';

/** Findings of the DNS zone: the server not answering; per name missing, wrong, unanswered. Pure. */
export function dnsFindings(expected: readonly DnsExpectation[], seen: DnsObserved, stateFile: string): Finding[] {
  const p = seen.probe;
  if (p.rcode !== 'NOERROR') {
    const silent = p.rcode === 'TIMEOUT' || p.rcode === 'ERROR';
    return [{
      kind: 'dns-not-answering', subject: `DNS server ${seen.server}`,
      what: silent
        ? `vxnetd's DNS server (${stateFile}) does not answer${p.error ? ` (${p.error})` : ''}: containers whose resolv.conf names it cannot resolve anything`
        : `the server at ${seen.server} answers ${p.rcode} for the zone's SOA: it is not serving vxnet's zone to this host`,
      why: silent
        ? `vxnetd is not running (killed: it removes ${stateFile} only when it stops cleanly), or its DNS address was removed from its link (ip addr), or the link was deleted`
        : 'another DNS server holds that address, or vxnetd\'s allow-list (--dns-allow) refuses this host',
      fix: silent
        ? 'start (or restart) vxnetd: it binds its DNS addresses again (ip addr show dev vxnet-dns lists them); vxnetctl dns query NAME asks it'
        : `check what listens on ${seen.server} (ss -lunp); ${FIX_RESTART}`,
      safe: false, actions: [],
    }];
  }
  const findings: Finding[] = [];
  for (const e of expected) {
    const got = seen.answers.get(e.name);
    if (!got) continue;
    const subject = `DNS name ${e.name} (${e.of})`;
    const bad = [got.A, got.AAAA].filter((x) => x.rcode !== 'NOERROR' && x.rcode !== 'NXDOMAIN');
    if (bad.length) {
      findings.push({
        kind: 'dns-name-unanswered', subject,
        what: `${seen.server} answered ${bad.map((x) => x.rcode + (x.error ? ` (${x.error})` : '')).join(' and ')} for it`,
        why: 'the server is overloaded or failing (vxnetd\'s log), or the answer was lost',
        fix: `vxnetctl dns query ${e.name}; if it persists, ${FIX_RESTART}`,
        safe: false, actions: [],
      });
      continue;
    }
    if (got.A.rcode === 'NXDOMAIN' && got.AAAA.rcode === 'NXDOMAIN') {
      findings.push({
        kind: 'dns-name-missing', subject,
        what: `the catalog gives it ${[...e.a, ...e.aaaa].join(', ')} but ${seen.server} answers NXDOMAIN: the name does not resolve`,
        why: 'vxnetd\'s zone lost track of the catalog (a bug: vxnetd\'s log), or another server answers at that address, or the name was added in the last moment',
        fix: `vxnetctl dns query ${e.name}; ${FIX_RESTART}`,
        safe: false, actions: [],
      });
      continue;
    }
    const want = new Set([...e.a, ...e.aaaa]);
    const have = new Set([...got.A.data, ...got.AAAA.data]);
    const lacking = [...want].filter((x) => !have.has(x));
    const extra = [...have].filter((x) => !want.has(x));
    if (lacking.length === 0 && extra.length === 0) continue;
    findings.push({
      kind: 'dns-name-wrong', subject,
      what: [lacking.length ? `lacks ${lacking.join(', ')}` : '', extra.length ? `answers ${extra.join(', ')}, which the catalog does not give it` : ''].filter(Boolean).join('; '),
      why: 'vxnetd\'s zone lost track of the catalog (a bug: vxnetd\'s log), or another server answers at that address, or the endpoint changed in the last moment',
      fix: `vxnetctl dns query ${e.name}; ${FIX_RESTART}`,
      safe: false, actions: [],
    });
  }
  return capPerKind(findings, 'names');
}
