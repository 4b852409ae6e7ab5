// vxnetd's VIP service: the model (vip/service.ts) over the kernel's VIP table
// (datapath/vip-table.ts), the named VIPs' address claims (etcd with --store, else in memory),
// and the route that lets this host's own processes reach VIPs.
//
// Why a route: containers reach a VIP through their default route to the host, where the
// table's prerouting hook rewrites the destination before routing. A process on the host is
// routed before its output hook runs: without a route for the VIP ranges, a host with no
// default route gets ENETUNREACH, and one with a default route picks its source address for
// the wrong way out. The ranges go to a link of vxnet's (the portless bridge that holds the
// DNS addresses, --dns-link's, created when missing), whatever --no-dns says. The route and
// the link are left at stop, like the table: VIPs keep working while vxnetd is away.
import type { EndpointCatalog } from '../../catalog/catalog';
import { EtcdClient } from '../../etcd/client';
import { VipTable } from '../../datapath/vip-table';
import { type Cidr, formatCidr } from '../../ipam/addr';
import { asVxnetError, DatapathFailure } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import type { Service } from '../../lib/service';
import { Rtnl } from '../../net/rtnl';
import { MemoryClaims, VipAddresses } from '../../vip/address';
import { EtcdClaims } from '../../vip/claims-etcd';
import { FileClaims } from '../../vip/claims-file';
import type { VipKernel } from '../../vip/kernel';
import type { VxnetdMetrics } from '../../lib/metrics';
import { etcdObserverOf, scrapeVips, timedVipKernel } from './metrics';
import { VipForgetter } from '../../vip/forget';
import { VipService } from '../../vip/service';
import { ensureDnsLink } from './dns-link';
import type { VipFlags } from './flags';

export interface VipServiceHandle extends Service {
  readonly vips: VipService;
}

/** The kernel's VIP table; a parameter so that tests run the service over a table of their own. */
export type VipKernelFactory = (o: { table: string; log: Logger }) => VipKernel;

export const kernelVipTable: VipKernelFactory = ({ table, log }) => new VipTable({ table, log: (msg) => log.warn(msg) });

/** Routes each range to `link` (created as a portless bridge when missing); idempotent. */
export async function routeVipRanges(link: string, ranges: readonly Cidr[]): Promise<void> {
  const rtnl = Rtnl.open();
  try {
    await ensureDnsLink(rtnl, link, []);
    const l = await rtnl.link(link);
    if (!l) throw new DatapathFailure(`${link} vanished`);
    for (const dst of ranges) await rtnl.addRoute({ dst, oif: l.index });
  } finally {
    rtnl.close();
  }
}

export function vipService(o: {
  config: VipFlags; catalog: EndpointCatalog; etcd: readonly string[] | undefined; log: Logger;
  /** One host's claims (no etcd): kept in this file so colliding names keep their addresses across restarts; default in memory. */
  claimsFile?: string;
  kernel?: VipKernelFactory; route?: (link: string, ranges: readonly Cidr[]) => Promise<void>;
  /** VIPs and backends by state, the table's batches timed, etcd round trips (bin/vxnetd/metrics.ts). */
  metrics?: VxnetdMetrics;
}): VipServiceHandle {
  const { config, log } = o;
  const m = o.metrics;
  const client = o.etcd ? EtcdClient.connect(o.etcd, undefined, m ? etcdObserverOf(m) : undefined) : undefined;
  const claims = client ? new EtcdClaims(client) : o.claimsFile ? new FileClaims(o.claimsFile) : new MemoryClaims();
  const addresses = new VipAddresses(claims, config.range, config.range6);
  const table = (o.kernel ?? kernelVipTable)({ table: config.table, log });
  const kernel = m ? timedVipKernel(table, m, config.table) : table;
  const vips = new VipService({ catalog: o.catalog, kernel, addresses, log });
  if (m) scrapeVips(m, vips);
  // Backends whose address is gone lose their conntrack entries (UDP flows would keep going to them).
  const forgetter = new VipForgetter({ source: vips, catalog: o.catalog, kernel, log });
  const ranges = [config.range, ...(config.range6 ? [config.range6] : [])];
  return {
    name: 'vips',
    vips,
    async start() {
      try {
        await (o.route ?? routeVipRanges)(config.link, ranges);
      } catch (err) {
        // Containers reach VIPs without it; only this host's own processes may not.
        log.error('cannot route the VIP ranges to their link; host processes may not reach VIPs', { link: config.link, error: asVxnetError(err).message });
      }
      await vips.start();
      forgetter.start();
      log.info('vips started', { table: config.table, range: formatCidr(config.range), range6: config.range6 ? formatCidr(config.range6) : null,
        link: config.link, claims: claims.description });
    },
    async stop() {
      try {
        await forgetter.stop();
        await vips.stop();
      } finally {
        client?.close();
      }
    },
  };
}
