// Docker's NetworkDriver, the endpoint half: CreateEndpoint claims the addresses RequestAddress
// reserved (ipam/docker.ts), IPv4 and, on a dual-stack network, IPv6, and answers only the MAC
// (echoing an address makes Docker roll the endpoint back); Join makes the veth pair in the host
// namespace, on the network's bridge or routed for an overlay network, and hands Docker the
// container end and the gateway of each family.
import { Cidr, Family, Ip, contains, formatCidr, formatIp, parseIp } from '../ipam/addr';
import { claimForEndpoint, endpointAllocations, recordSandbox } from '../ipam/docker';
import { AddressUnavailable, AttachmentDrifted, DecodingFailure, InvalidNetworkConfig, UnsupportedField } from '../lib/errors';
import { defaultBridgeName } from '../datapath/names';
import { routedSpecOf } from '../overlay/local';
import { gatewayOf } from '../overlay/plan';
import type { Body, DriverContext, Handlers, Reply } from './context';
import { bareIp, dockerId, endpointContainerVeth, endpointHostVeth, endpointMac, optStr, shortId, str } from './model';
import { recordSubnets } from './networks';
import type { BoundRecord } from './state';
import { isObject } from '../lib/guards';

export function endpointHandlers(ctx: DriverContext): Handlers {
  // MACs users gave (--mac-address) by endpoint, for the host's neighbour entries at Join; the
  // MAC of every other endpoint is derived from its id (endpointMac).
  const userMacs = new Map<string, string>();
  return {
    'NetworkDriver.CreateEndpoint': (b) => createEndpoint(ctx, b, userMacs),
    'NetworkDriver.EndpointOperInfo': async (b) => {
      const { eid } = ids(b, 'EndpointOperInfo');
      return { Value: { 'vxnet.hostVeth': endpointHostVeth(eid) } };
    },
    'NetworkDriver.DeleteEndpoint': (b) => { userMacs.delete(ids(b, 'DeleteEndpoint').eid); return deleteEndpoint(ctx, b); },
    'NetworkDriver.Join': (b) => join(ctx, b, userMacs),
    'NetworkDriver.Leave': async (b) => { ids(b, 'Leave'); return {}; },
    'NetworkDriver.ProgramExternalConnectivity': async (b) => programExternal(b),
    'NetworkDriver.RevokeExternalConnectivity': async (b) => { ids(b, 'RevokeExternalConnectivity'); return {}; },
  };
}

function ids(b: Body, method: string): { nid: string; eid: string } {
  return { nid: dockerId(b, 'NetworkID', method), eid: dockerId(b, 'EndpointID', method) };
}

/** One address of Interface (Address or AddressIPv6): its family checked; undefined when Docker gave none. */
function interfaceAddress(iface: Body, key: 'Address' | 'AddressIPv6', family: Family): Ip | undefined {
  const text = optStr(iface, key, 'CreateEndpoint');
  if (text === '') return undefined;
  const ip = bareIp(text);
  if (!ip || ip.family !== family) throw new DecodingFailure(`CreateEndpoint: "Interface.${key}" ${JSON.stringify(text)} is not an IPv${family} address`);
  return ip;
}

/** The subnet of the network's family: an address outside it (or of a family the network lacks) is refused. */
function subnetFor(rec: BoundRecord, ip: Ip): Cidr {
  const subnet = recordSubnets(rec).find((s) => s.ip.family === ip.family);
  if (!subnet) throw new InvalidNetworkConfig(`network "${rec.name}" has no IPv${ip.family} subnet: it was created without --ipv6`);
  if (!contains(subnet, ip)) throw new AddressUnavailable(`${formatIp(ip)} is not in subnet ${formatCidr(subnet)} of network "${rec.name}"`);
  return subnet;
}

async function createEndpoint(ctx: DriverContext, b: Body, userMacs: Map<string, string>): Promise<Reply> {
  const { nid, eid } = ids(b, 'CreateEndpoint');
  const iface = b.Interface ?? {};
  if (!isObject(iface)) throw new DecodingFailure('CreateEndpoint: "Interface" must be an object');
  const mac = optStr(iface, 'MacAddress', 'CreateEndpoint');
  const ip = interfaceAddress(iface, 'Address', 4);
  const ip6 = interfaceAddress(iface, 'AddressIPv6', 6);
  if (!ip) throw new InvalidNetworkConfig(`endpoint ${shortId(eid)} has no IPv4 address: the network must use --ipam-driver ${ctx.plugin}`);
  const rec = await ctx.networks.bound(nid);
  const ips = ip6 ? [ip, ip6] : [ip];
  for (const x of ips) subnetFor(rec, x);
  if (rec.v6 && !ip6) throw new InvalidNetworkConfig(`endpoint ${shortId(eid)} has no IPv6 address on dual-stack network "${rec.name}": the network must use --ipam-driver ${ctx.plugin} for both families`);
  const conf = ctx.networks.conf(rec);
  // Docker releases the addresses (ReleaseAddress) when this fails: the IPv4 one claimed before an IPv6 failure goes too.
  for (const x of ips) await claimForEndpoint(ctx.store, conf, eid, x);
  if (mac !== '') userMacs.set(eid, mac);
  ctx.log.info('endpoint created', { networkId: shortId(nid), network: rec.name, endpoint: shortId(eid), addresses: ips.map(formatIp) });
  // Only what Docker left empty: echoing Address back makes Docker roll the endpoint back.
  return mac === '' ? { Interface: { MacAddress: endpointMac(eid) } } : {};
}

async function deleteEndpoint(ctx: DriverContext, b: Body): Promise<Reply> {
  const { nid, eid } = ids(b, 'DeleteEndpoint');
  // Docker moved the container end back (Leave); removing either end removes the pair.
  await ctx.dp.removeLink(endpointHostVeth(eid));
  await ctx.dp.removeLink(endpointContainerVeth(eid));
  ctx.log.info('endpoint deleted', { networkId: shortId(nid), endpoint: shortId(eid) });
  return {};
}

async function join(ctx: DriverContext, b: Body, userMacs: ReadonlyMap<string, string>): Promise<Reply> {
  const { nid, eid } = ids(b, 'Join');
  const sandbox = str(b, 'SandboxKey', 'Join');
  const rec = await ctx.networks.bound(nid);
  const name = rec.name;
  const ips = (await endpointAllocations(ctx.store, name, eid)).map((a) => {
    const ip = parseIp(a.address);
    if (!ip) throw new AttachmentDrifted(`endpoint ${shortId(eid)} holds an invalid address ${JSON.stringify(a.address)}`);
    return ip;
  });
  const host = endpointHostVeth(eid);
  const container = endpointContainerVeth(eid);
  let bridge: string | undefined;
  let gateway: Ip = rec.gateway.ip;
  let gateway6: Ip | undefined = rec.v6?.gateway.ip;
  const staticRoutes: Array<{ Destination: string; RouteType: number }> = [];
  if (ctx.networks.isOverlay(rec)) {
    // Routed, as the CNI plugin attaches (datapath/routed.ts), in the overlay's MTU.
    const ov = ctx.networks.overlayState(rec);
    // Each address's gateway is its block's: a host with more than one block has one per block.
    const gatewayOfIp = (ip: Ip): Ip => {
      const block = ov.blocks.find((blk) => contains(blk, ip));
      if (!block) throw new AttachmentDrifted(`endpoint ${shortId(eid)}'s address ${formatIp(ip)} is in none of this host's blocks of overlay network "${rec.name}"`);
      return gatewayOf(block);
    };
    const v4 = ips.find((ip) => ip.family === 4);
    const v6 = ips.find((ip) => ip.family === 6);
    if (v4) gateway = gatewayOfIp(v4);
    gateway6 = v6 ? gatewayOfIp(v6) : undefined;
    // The IPv6 address came without a prefix (ipam-driver.ts): the gateway is reached by a connected route.
    if (gateway6) staticRoutes.push({ Destination: `${formatIp(gateway6)}/128`, RouteType: 1 });
    await ctx.mutex.run(nid, () => ctx.dp.ensureRoutedNetwork(routedSpecOf(ov, rec.options)));
    await ctx.dp.createVeth({ host, container, bridge: undefined, mtu: rec.options.mtu ?? ov.mtu, mac: endpointMac(eid) });
    await ctx.dp.routeToEndpoint({ host, ips, mac: userMacs.get(eid) ?? endpointMac(eid), gateways6: gateway6 ? [gateway6] : [] });
  } else {
    bridge = await ctx.mutex.run(nid, async () => {
      const br = rec.options.bridge ?? (await ctx.dp.findBridgeOf(name)) ?? defaultBridgeName(name);
      await ctx.dp.ensureBridge({
        network: name, name: br, mtu: rec.options.mtu, gateways: rec.ipamOnly ? [] : [rec.gateway, ...(rec.v6 ? [rec.v6.gateway] : [])],
        subnets: recordSubnets(rec), ipMasq: rec.options.ipMasq, natTable: rec.options.natTable,
      });
      return br;
    });
    await ctx.dp.createVeth({ host, container, bridge, mtu: rec.options.mtu, mac: endpointMac(eid) });
  }
  await recordSandbox(ctx.store, name, eid, sandbox);
  ctx.log.info('endpoint joined', {
    networkId: shortId(nid), network: name, endpoint: shortId(eid), addresses: ips.map(formatIp), ...(bridge ? { bridge } : { routed: true }), hostVeth: host, sandbox,
  });
  return {
    InterfaceName: { SrcName: container, DstPrefix: 'eth' },
    Gateway: formatIp(gateway),
    ...(gateway6 ? { GatewayIPv6: formatIp(gateway6) } : {}),
    StaticRoutes: staticRoutes,
    DisableGatewayService: false,
  };
}

function programExternal(b: Body): Reply {
  ids(b, 'ProgramExternalConnectivity');
  const options = b.Options;
  const portmap = isObject(options) ? options['com.docker.network.portmap'] : undefined;
  if (Array.isArray(portmap) && portmap.length > 0) {
    throw new UnsupportedField('vxnet does not publish ports (-p/--publish): reach the container at its own address');
  }
  return {};
}
