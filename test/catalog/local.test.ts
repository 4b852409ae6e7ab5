// catalog/local.ts over a real embedded IPAM store in a temp dir, filled the way the CNI plugin
// fills it: ipamAdd with the owner cni/ipam-source.ts builds from a CNI ADD (K8S_POD_NAME,
// aliases, args.cni.labels, runtimeConfig.portMappings). Refresh: the endpoint with every
// address of the container; DEL, refresh: gone.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import { LocalEndpoints } from '../../catalog/local';
import { ownerFrom } from '../../cni/ipam-source';
import type { CmdArgs } from '../../cni/skel';
import { parseIpamConf } from '../../ipam/config';
import { ipamAdd, ipamDel } from '../../ipam/core';
import { formatIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { tmpStore } from '../ipam/helpers/embedded';

const conf = parseIpamConf('vxt-net', { ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd77::/64' }]] });

const add = (containerId: string, podName: string, netconf: Record<string, unknown>): CmdArgs => ({
  command: 'ADD', containerId, netns: `/var/run/netns/${containerId}`, ifname: 'eth0', args: new Map([['K8S_POD_NAME', podName]]),
  path: [], env: {}, stdin: JSON.stringify(netconf), conf: netconf, version: '1.1.0',
} as unknown as CmdArgs);

t.test('allocate through the IPAM core, refresh, see the endpoint; release, refresh, gone', async (t) => {
  const { store } = await tmpStore(t);
  const catalog = new EndpointCatalog();
  const local = new LocalEndpoints({ store, catalog, host: 'node-1', intervalMs: 60_000, log: createLogger('test', 'error') });
  await local.start();
  t.teardown(() => local.stop());
  t.equal(catalog.size, 0, 'an empty store: no endpoints');

  const netconf = {
    args: { cni: { labels: [{ key: 'vxnet.service', value: 'shop' }, { key: 'vxnet.ports', value: 'http=8080' }] } },
    runtimeConfig: { aliases: ['web'], portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }] },
  };
  const r = await ipamAdd(store, conf, ownerFrom(add('ctr1', 'Web-0', netconf), conf.network));
  t.equal(r.ips.length, 2, 'one address per range set');
  const plain = await ipamAdd(store, conf, ownerFrom(add('ctr2', 'db-0', { runtimeConfig: { portMappings: [{ hostPort: 5432, containerPort: 5432 }] } }), conf.network));
  await local.refresh();

  const e = catalog.get('node-1/vxt-net/ctr1');
  t.match(e, { host: 'node-1', runtime: 'cni', containerId: 'ctr1', network: 'vxt-net', name: 'web-0', aliases: ['web'], service: 'shop',
    labels: { 'vxnet.service': 'shop', 'vxnet.ports': 'http=8080' }, ports: [{ port: 8080, protocol: 'tcp', name: 'http' }] });
  t.same(e?.addresses, r.ips.map((ip) => formatIp(ip.cidr.ip)).sort(), 'both addresses of the container');
  t.match(catalog.get('node-1/vxt-net/ctr2'), { name: 'db-0', ports: [{ port: 5432, protocol: 'tcp' }], addresses: [formatIp(plain.ips[0]!.cidr.ip)] },
    'ports from portMappings when no vxnet.ports');

  await ipamDel(store, conf.network, { containerId: 'ctr1', ifname: 'eth0' });
  await local.refresh();
  t.equal(catalog.get('node-1/vxt-net/ctr1'), undefined, 'released: gone');
  t.same(catalog.list('node-1').map((x) => x.containerId), ['ctr2'], 'the other stays');
});
