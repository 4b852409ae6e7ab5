// Docker's NetworkDriver, the endpoint half: CreateEndpoint claims the address RequestAddress
// reserved (ipam/docker.ts) and answers only the MAC (echoing Address makes Docker roll the
// endpoint back); Join makes the veth pair in the host namespace, on the network's bridge or
// routed for an overlay network, and hands Docker the container end and the gateway.
import { contains, formatCidr, formatIp } from '../ipam/addr';
import { claimForEndpoint, endpointAllocation, recordSandbox } from '../ipam/docker';
import { AddressUnavailable, AttachmentDrifted, DecodingFailure, InvalidNetworkConfig, UnsupportedField } from '../lib/errors';
import { defaultBridgeName } from '../datapath/names';
import { routedSpecOf } from '../overlay/local';
import { gatewayOf } from '../overlay/plan';
import type { Body, DriverContext, Handlers, Reply } from './context';
import { bareIp, dockerId, endpointContainerVeth, endpointHostVeth, endpointMac, optStr, shortId, str } from './model';
import { isObject } from '../lib/guards';

export function endpointHandlers(ctx: DriverContext): Handlers {
  return {
    'NetworkDriver.CreateEndpoint': (b) => createEndpoint(ctx, b),
    'NetworkDriver.EndpointOperInfo': async (b) => {
      const { eid } = ids(b, 'EndpointOperInfo');
      return { Value: { 'vxnet.hostVeth': endpointHostVeth(eid) } };
    },
    'NetworkDriver.DeleteEndpoint': (b) => deleteEndpoint(ctx, b),
    'NetworkDriver.Join': (b) => join(ctx, b),
    'NetworkDriver.Leave': async (b) => { ids(b, 'Leave'); return {}; },
    'NetworkDriver.ProgramExternalConnectivity': async (b) => programExternal(b),
    'NetworkDriver.RevokeExternalConnectivity': async (b) => { ids(b, 'RevokeExternalConnectivity'); return {}; },
  };
}

function ids(b: Body, method: string): { nid: string; eid: string } {
  return { nid: dockerId(b, 'NetworkID', method), eid: dockerId(b, 'EndpointID', method) };
}

async function createEndpoint(ctx: DriverContext, b: Body): Promise<Reply> {
  const { nid, eid } = ids(b, 'CreateEndpoint');
  const iface = b.Interface ?? {};
  if (!isObject(iface)) throw new DecodingFailure('CreateEndpoint: "Interface" must be an object');
  const address = optStr(iface, 'Address', 'CreateEndpoint');
  const mac = optStr(iface, 'MacAddress', 'CreateEndpoint');
  if (optStr(iface, 'AddressIPv6', 'CreateEndpoint') !== '') throw new UnsupportedField('vxnet\'s Docker driver supports IPv4 only');
  if (address === '') throw new InvalidNetworkConfig(`endpoint ${shortId(eid)} has no IPv4 address: the network must use --ipam-driver ${ctx.plugin}`);
  const ip = bareIp(address);
  if (!ip) throw new DecodingFailure(`CreateEndpoint: "Interface.Address" ${JSON.stringify(address)} is not an address`);
  const rec = await ctx.networks.bound(nid);
  if (!contains(rec.pool, ip)) throw new AddressUnavailable(`${formatIp(ip)} is not in subnet ${formatCidr(rec.pool)} of network "${rec.name}"`);
  await claimForEndpoint(ctx.store, ctx.networks.conf(rec), eid, ip);
  ctx.log.info('endpoint created', { networkId: shortId(nid), network: rec.name, endpoint: shortId(eid), address });
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

async function join(ctx: DriverContext, b: Body): Promise<Reply> {
  const { nid, eid } = ids(b, 'Join');
  const sandbox = str(b, 'SandboxKey', 'Join');
  const rec = await ctx.networks.bound(nid);
  const name = rec.name;
  const allocation = await endpointAllocation(ctx.store, name, eid);
  const host = endpointHostVeth(eid);
  const container = endpointContainerVeth(eid);
  let bridge: string | undefined;
  let gateway = rec.gateway.ip;
  if (ctx.networks.isOverlay(rec)) {
    // Routed, as the CNI plugin attaches (datapath/routed.ts), in the overlay's MTU.
    const ov = ctx.networks.overlayState(rec);
    const ip = bareIp(allocation.address);
    if (!ip) throw new AttachmentDrifted(`endpoint ${shortId(eid)} holds an invalid address ${JSON.stringify(allocation.address)}`);
    // The gateway of the block the address came from: a host with more than one block has one per block.
    const block = ov.blocks.find((b) => contains(b, ip));
    if (!block) throw new AttachmentDrifted(`endpoint ${shortId(eid)}'s address ${formatIp(ip)} is in none of this host's blocks of overlay network "${rec.name}"`);
    gateway = gatewayOf(block);
    await ctx.mutex.run(nid, () => ctx.dp.ensureRoutedNetwork(routedSpecOf(ov, rec.options)));
    await ctx.dp.createVeth({ host, container, bridge: undefined, mtu: rec.options.mtu ?? ov.mtu, mac: endpointMac(eid) });
    await ctx.dp.routeToEndpoint({ host, ips: [ip] });
  } else {
    bridge = await ctx.mutex.run(nid, async () => {
      const br = rec.options.bridge ?? (await ctx.dp.findBridgeOf(name)) ?? defaultBridgeName(name);
      await ctx.dp.ensureBridge({
        network: name, name: br, mtu: rec.options.mtu, gateways: rec.ipamOnly ? [] : [rec.gateway], subnets: [rec.pool],
        ipMasq: rec.options.ipMasq, natTable: rec.options.natTable,
      });
      return br;
    });
    await ctx.dp.createVeth({ host, container, bridge, mtu: rec.options.mtu, mac: endpointMac(eid) });
  }
  await recordSandbox(ctx.store, name, eid, sandbox);
  ctx.log.info('endpoint joined', { networkId: shortId(nid), network: name, endpoint: shortId(eid), address: allocation.address, ...(bridge ? { bridge } : { routed: true }), hostVeth: host, sandbox });
  return {
    InterfaceName: { SrcName: container, DstPrefix: 'eth' },
    Gateway: formatIp(gateway),
    StaticRoutes: [],
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
