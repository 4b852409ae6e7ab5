// Runs the CNI plugins' pure code paths once while their startup snapshot is being built
// (scripts/build.mjs): V8 compiles a function the first time it runs, and a snapshot keeps
// the bytecode of every function that ran, so an exec'd ADD starts with config parsing,
// address math, result encoding and netlink message encoding/decoding already compiled
// instead of compiling them on the clock. Touches no socket, file or native addon.
import { AttrStream } from 'netlink/dist/structs';
import * as ifla from 'netlink/dist/rt/ifla';
import { formatAddressMessage, formatLinkMessage, formatRouteMessage, parseAddressMessage, parseLinkMessage, parseRouteMessage } from 'netlink/dist/rt/structs';
import { formatCidr, formatIp, ipFromKey, ipKey, parseCidr, parseIp } from '../ipam/addr';
import { setToJson } from '../ipam/range';
import { preloadEmbeddedStore } from '../ipam/store';
import { parseVxnetConf } from './netconf';
import { formatResult, parseResult } from './result';
import { addResult, bridgeSpecFor, containerRoutes, parseAllocated } from './attach-plan';
import { SUPPORTED_VERSIONS } from './version';
import { macFromBytes, macToBytes } from '../net/rtnl';

const bytes = (fill: (s: AttrStream) => void): Buffer => {
  const s = new AttrStream();
  fill(s);
  return Buffer.concat(s.bufs);
};

export function warmUpCni(): void {
  preloadEmbeddedStore();
  for (const text of ['10.231.0.5', 'fd00:231::5', '10.231.0.0/24', 'fd00:231::/64']) {
    const ip = text.includes('/') ? parseCidr(text)?.ip : parseIp(text);
    if (ip) { formatIp(ip); ipFromKey(ipKey(ip)); }
  }
  const conf = parseVxnetConf({
    cniVersion: '1.0.0', name: 'warmup', type: 'vxnet', bridge: 'vxwarm', isGateway: true, ipMasq: true, mtu: 1500,
    runtimeConfig: { mac: '02:00:00:00:00:01', aliases: ['a'] },
    ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: '10.231.0.0/24' }], [{ subnet: 'fd00:231::/64' }]], routes: [{ dst: '0.0.0.0/0' }] },
  }, new Map([['K8S_POD_NAME', 'warm']]));
  conf.ipam?.rangeSets.forEach(setToJson);
  const ips = [{ cidr: parseCidr('10.231.0.5/24')!, gateway: parseIp('10.231.0.1') }, { cidr: parseCidr('fd00:231::5/64')!, gateway: parseIp('fd00:231::1') }];
  const spec = bridgeSpecFor(conf, ips);
  spec.gateways.forEach(formatCidr);
  const allocated = parseAllocated({ ips: ips.map((i) => ({ address: formatCidr(i.cidr), gateway: formatIp(i.gateway!) })), routes: [{ dst: '0.0.0.0/0' }] });
  const routes = containerRoutes(conf, allocated.ips, allocated.routes);
  const result = addResult({ bridge: { name: 'vxwarm', mac: '02:00:00:00:00:01' }, hostVeth: { name: 'vx0', mac: '02:00:00:00:00:03' },
    container: { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/x', mtu: 1500 } }, allocated, routes, undefined);
  for (const v of SUPPORTED_VERSIONS) parseResult(formatResult(result, v));

  // Netlink: encode the messages an ADD sends and decode the kind it receives.
  const linkinfo = bytes((s) => s.emit(ifla.formatInfo({ kind: 'bridge', data: Buffer.alloc(8) })));
  const link = bytes((s) => formatLinkMessage({ kind: 'link', data: { index: 2, flags: { up: true }, change: { up: true } },
    attrs: { ifname: 'vxwarm', mtu: 1500, address: macToBytes('02:00:00:00:00:01'), master: 1, ifalias: 'vxnet', linkinfo, txqlen: 1000, operstate: 6, netNsFd: 3 } }, s));
  const parsed = parseLinkMessage(link);
  macFromBytes(parsed.attrs.address);
  if (parsed.attrs.linkinfo) ifla.parseInfo(parsed.attrs.linkinfo);
  const addr = bytes((s) => formatAddressMessage({ kind: 'address', data: { family: 2, prefixlen: 24, index: 2, flags: { nodad: true } },
    attrs: { address: Buffer.from([10, 231, 0, 5]), local: Buffer.from([10, 231, 0, 5]), flags: { nodad: true } } }, s));
  parseAddressMessage(addr);
  const route = bytes((s) => formatRouteMessage({ kind: 'route', data: { family: 2, dstLen: 0, table: 254, protocol: 'BOOT', scope: 'UNIVERSE', type: 'UNICAST' },
    attrs: { gateway: Buffer.from([10, 231, 0, 1]), oif: 2 } }, s));
  parseRouteMessage(route);
}
