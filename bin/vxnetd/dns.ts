// vxnetd's DNS service: the zone (dns/zone.ts) fed from the endpoint catalog (dns/feed.ts),
// the forwarder for every other name, the handler's allow-list, the UDP/TCP server, and the
// state file that tells runtimes where to ask (dns/state.ts).
//
// Start order is what keeps a restart free of NXDOMAIN for live containers: the zone is
// filled from the catalog as it is at start() (the catalog's sources start before this
// service), and only then are the sockets opened. Later catalog changes reach the zone in the
// catalog's own call (synchronously), so a name resolves as soon as its endpoint is put.
//
// Not an open resolver: answered are loopback, this host's own addresses, vxnet's networks
// (what `networks()` says: the IPAM pools, overlay and Docker networks) and --dns-allow. The
// list is recomputed every `refreshMs` (default 5 s), so a network created after start is
// answered within that bound without a restart; a failed refresh keeps the previous list.
import { type Cidr, type Ip, familyBits, formatCidr, formatIp, networkOf } from '../../ipam/addr';
import { asVxnetError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import type { Service } from '../../lib/service';
import type { EndpointCatalog } from '../../catalog/catalog';
import { ZoneFeed } from '../../dns/feed';
import { type NamedVip, VipZoneFeed } from '../../dns/vip-feed';
import { Forwarder, hostUpstreams } from '../../dns/forwarder';
import { allowSources, createHandler } from '../../dns/handler';
import { countedHandler, queryTable } from '../../dns/metrics';
import type { VxnetdMetrics } from '../../lib/metrics';
import { DnsServer } from '../../dns/server';
import { removeDnsState, writeDnsState } from '../../dns/state';
import { DNS_PORT, type HostPort, formatHostPort } from '../../dns/upstreams';
import { Zone } from '../../dns/zone';
import type { DnsFlags } from './flags';

export interface DnsServiceOptions {
  readonly config: DnsFlags;
  readonly catalog: EndpointCatalog;
  /** The subnets of vxnet's networks, now. */
  readonly networks: () => Promise<readonly Cidr[]>;
  /** This host's own addresses, now. */
  readonly hostAddresses: () => Promise<readonly Ip[]>;
  /** Puts the listen addresses on config.link (bin/vxnetd/dns-link.ts); called only when config.link is set. */
  readonly ensureLink?: (name: string, addresses: readonly Ip[]) => Promise<void>;
  readonly log: Logger;
  /** The named VIPs (vip/service.ts), served as NAME.l4lb.DOMAIN; their changes follow. */
  readonly vips?: { vips(): readonly NamedVip[]; subscribe(listener: (vips: readonly NamedVip[]) => void): () => void };
  /** How often the allow-list is recomputed; default 5000 ms. */
  readonly refreshMs?: number;
  /** Default /etc/resolv.conf. */
  readonly resolvConf?: string;
  /** Where queries, forwarded answers' latency and upstream failures are counted. */
  readonly metrics?: VxnetdMetrics;
}

export interface DnsService extends Service {
  readonly zone: Zone;
  /** The addresses listened on (port 0 resolved), once started. */
  addresses(): HostPort[];
  /** The sources answered besides loopback, as last computed. */
  allowed(): readonly Cidr[];
  /** Recomputes the allow-list now (what the timer does). */
  refreshAllowList(): Promise<void>;
}

const hostCidr = (ip: Ip): Cidr => ({ ip, prefix: familyBits(ip.family) });

/** Each CIDR once, by its network address and prefix. Pure. */
export function uniqueCidrs(list: Iterable<Cidr>): Cidr[] {
  const out = new Map<string, Cidr>();
  for (const c of list) { const n = networkOf(c); out.set(formatCidr(n), n); }
  return [...out.values()];
}

export function dnsService(o: DnsServiceOptions): DnsService {
  const { config, log } = o;
  const zone = new Zone({ domain: config.domain, ttl: config.ttl, nameserverAddresses: config.listen.map((l) => l.ip) });
  let allowed: readonly Cidr[] = config.allow;
  let allow = allowSources(allowed);
  const feed = new ZoneFeed(zone, (id, name, err) => log.warn('endpoint name not served in DNS', { endpoint: id, name, error: err.message }));
  const vipFeed = new VipZoneFeed(zone, (name, err) => log.warn('VIP name not served in DNS', { vip: name, error: err.message }));
  let unfollowVips: (() => void) | undefined;
  let forwarder: Forwarder | undefined;
  let server: DnsServer | undefined;
  let timer: NodeJS.Timeout | undefined;
  let refreshing: Promise<void> | undefined;
  let refreshFailed = false;
  const queries = queryTable();
  if (o.metrics) {
    const m = o.metrics;
    m.cellCounter('dns_queries_total', 'DNS queries by question type (other: a rare type; invalid: no readable question) and the rcode answered (none: vxnet said nothing)', ['type', 'rcode'], queries);
    m.counter('dns_upstream_queries_total', 'Queries sent to each upstream (the forwarder races two per query)', ['upstream'],
      () => forwarder?.upstreamTotals().map((u) => ({ labels: { upstream: u.upstream }, value: u.sent })));
    m.counter('dns_upstream_failures_total', 'Upstream attempts that failed (timeout, SERVFAIL, REFUSED, an unusable answer), by upstream', ['upstream'],
      () => forwarder?.upstreamTotals().map((u) => ({ labels: { upstream: u.upstream }, value: u.failed })));
  }

  const refreshAllowList = (): Promise<void> => (refreshing ??= (async () => {
    try {
      const [nets, own] = await Promise.all([o.networks(), o.hostAddresses()]);
      allowed = uniqueCidrs([...config.allow, ...nets, ...own.map(hostCidr)]);
      allow = allowSources(allowed);
      if (refreshFailed) log.info('dns allow-list refreshed again', { allow: allowed.map(formatCidr) });
      refreshFailed = false;
    } catch (err) {
      // Keep answering whom we answered: a store busy for a moment must not close DNS to containers.
      if (!refreshFailed) log.warn('dns allow-list not refreshed; the previous one stays', { error: asVxnetError(err).message });
      refreshFailed = true;
    } finally {
      refreshing = undefined;
    }
  })());

  const stateFile = config.stateFile;
  return {
    name: 'dns',
    zone,
    addresses: () => server?.addresses() ?? [],
    allowed: () => allowed,
    refreshAllowList,
    async start() {
      if (config.link !== undefined) await o.ensureLink?.(config.link, config.listen.map((l) => l.ip));
      await refreshAllowList();
      const endpoints = feed.follow(o.catalog);
      if (o.vips) {
        vipFeed.replace(o.vips.vips());
        unfollowVips = o.vips.subscribe((vips) => vipFeed.replace(vips));
      }
      const upstreams = config.upstreams ?? hostUpstreams(config.listen, o.resolvConf);
      forwarder = new Forwarder({ upstreams, log });
      const plain = createHandler({ zone, forwarder, allow: (ip) => allow(ip), log });
      const m = o.metrics;
      const handler = m ? countedHandler(plain, { queries, forwarded: (s) => m.dnsForwarded.observe(s) }) : plain;
      server = new DnsServer({ listen: config.listen, handler, log });
      try {
        await forwarder.start();
        await server.start();
        const served = server.addresses();
        const on53 = [...new Set(served.filter((a) => a.port === DNS_PORT).map((a) => formatIp(a.ip)))];
        // A resolv.conf names servers without ports: only port 53 can be handed to runtimes.
        if (on53.length > 0) writeDnsState(stateFile, { nameservers: on53, domain: config.domain, search: [config.domain] });
        else removeDnsState(stateFile);
      } catch (err) {
        await server.stop();
        await forwarder.stop();
        feed.stop();
        unfollowVips?.();
        throw err;
      }
      timer = setInterval(() => void refreshAllowList(), o.refreshMs ?? 5000);
      timer.unref();
      log.info('dns serving', {
        domain: config.domain, listen: server.addresses().map(formatHostPort), upstreams: upstreams.map(formatHostPort),
        allow: ['loopback', ...allowed.map(formatCidr)], endpoints, vips: vipFeed.names().length, ttl: config.ttl, link: config.link ?? null, state: stateFile,
      });
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      feed.stop();
      unfollowVips?.();
      // First: a runtime must not be told of servers that are going away.
      removeDnsState(stateFile);
      await server?.stop();
      await forwarder?.stop();
      await refreshing;
    },
  };
}
