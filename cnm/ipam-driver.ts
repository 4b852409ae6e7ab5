// Docker's IpamDriver: pools and addresses. A PoolID describes itself (vxnet:CIDR[:RANGE]), so
// pools need no state. RequestAddress comes before Docker says which endpoint the address is
// for, so it is reserved under a pending owner (ipam/docker.ts), which CreateEndpoint claims.
import { Ip, contains, formatCidr, formatIp, networkOf } from '../ipam/addr';
import { releaseDockerAddress, releaseIfStillPending, reservePending } from '../ipam/docker';
import { AddressUnavailable, DecodingFailure, NetworkConflict, NotFound } from '../lib/errors';
import type { Body, DriverContext, Handlers, Reply } from './context';
import {
  GATEWAY_REQUEST, GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE, PoolSpec, bareIp, defaultGateway, optStr, parsePoolId, parsePoolRequest, poolId,
  setsOfFamily, shortId, str, strMap,
} from './model';
import { overlayGateway } from './networks';

export function ipamHandlers(ctx: DriverContext): Handlers {
  return {
    'IpamDriver.GetCapabilities': async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    'IpamDriver.GetDefaultAddressSpaces': async () => ({
      LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE,
    }),
    'IpamDriver.RequestPool': async (b) => requestPool(ctx, b),
    'IpamDriver.ReleasePool': async (b) => { parsePoolId(str(b, 'PoolID', 'ReleasePool'), 'ReleasePool'); return {}; },
    'IpamDriver.RequestAddress': (b) => requestAddress(ctx, b),
    'IpamDriver.ReleaseAddress': (b) => releaseAddress(ctx, b),
  };
}

async function requestPool(ctx: DriverContext, b: Body): Promise<Reply> {
  const request = parsePoolRequest(b);
  const spec: PoolSpec = request.kind === 'spec' ? request.spec
    : { pool: await ctx.networks.subnetOfNetwork(request.network, request.family), subPool: undefined };
  ctx.log.debug('pool requested', { pool: formatCidr(spec.pool), subPool: spec.subPool && formatCidr(spec.subPool), ...(request.kind === 'network' ? { network: request.network } : {}) });
  return { PoolID: poolId(spec), Pool: formatCidr(spec.pool), Data: {} };
}

async function requestAddress(ctx: DriverContext, b: Body): Promise<Reply> {
  const m = 'RequestAddress';
  const spec = parsePoolId(str(b, 'PoolID', m), m);
  const address = optStr(b, 'Address', m);
  const options = strMap(b, 'Options', m);
  const family = spec.pool.ip.family;
  const requested = address === '' ? undefined : bareIp(address);
  if (address !== '' && (!requested || requested.family !== family)) throw new DecodingFailure(`${m}: "Address" ${JSON.stringify(address)} is not an IPv${family} address (pool ${formatCidr(spec.pool)})`);
  if (requested && !contains(networkOf(spec.pool), requested)) {
    throw new AddressUnavailable(`${address} is not in the network's subnet ${formatCidr(spec.pool)}`);
  }
  if (options.RequestAddressType === GATEWAY_REQUEST) return gatewayAddress(ctx, spec, requested);
  const rec = await ctx.networks.forPool(spec);
  try {
    const conf = ctx.networks.conf(rec, spec);
    // One address of the pool's family (Docker asks once per family), from this host's block(s) on an overlay.
    const sets = setsOfFamily(conf, family);
    if (sets.length === 0) throw new NotFound(`vxnet network "${rec.name}" has no IPv${family} subnet on this host; pool ${formatCidr(spec.pool)} is not one of its`);
    const routed = ctx.networks.isOverlay(rec);
    const ip = await reservePending(ctx.store, conf, { ...(requested ? { requested } : {}), sets });
    // A routed IPv6 endpoint has its address alone, no on-link prefix: everything goes through
    // its gateway (Join gives the route to it), which the host veth answers by proxy NDP. With
    // the block's prefix the container would ask NDP for neighbours on this host, which no one
    // answers (IPv4 has proxy_arp for that; IPv6 proxies only listed addresses).
    const address = routed && family === 6 ? `${formatIp(ip.cidr.ip)}/128` : formatCidr(ip.cidr);
    ctx.log.debug('address reserved', { network: rec.name, address, pending: ip.allocation.containerId });
    if (family === 4 && rec.v6) collectIfOrphaned(ctx, rec.name, ip.cidr.ip, ip.allocation.containerId);
    return { Address: address, Data: {} };
  } catch (err) {
    if (err instanceof NetworkConflict) {
      throw new NetworkConflict(`docker network ${rec.dockerName ?? shortId(rec.id)} (subnet ${formatCidr(rec.pool)}) conflicts with vxnet network "${rec.name}": ${err.message}`);
    }
    throw err;
  }
}

/**
 * Docker 20.10 asks a dual-stack endpoint's IPv4 address first, then the IPv6 one; when the
 * IPv6 one fails (the pool is full, or Docker finds --ip6 outside the subnet itself, before
 * asking us) it never gives the IPv4 one back (libnetwork's assignAddress returns without
 * releasing it; seen on this dockerd). CreateEndpoint follows RequestAddress within
 * milliseconds, so a reservation still pending after ORPHAN_MS is such a leftover: released
 * then, rather than at reconcile's pending grace (minutes). Should Docker claim it later after
 * all, CreateEndpoint reserves the address again if it is still free.
 */
export const ORPHAN_MS = 10_000;

function collectIfOrphaned(ctx: DriverContext, network: string, ip: Ip, pendingId: string): void {
  const timer = setTimeout(() => {
    releaseIfStillPending(ctx.store, network, ip, pendingId, 'docker: IPv4 reservation of a dual-stack endpoint never created')
      .then((a) => { if (a) ctx.log.info('released an IPv4 reservation Docker left behind (its IPv6 request failed)', { network, address: a.address }); })
      .catch((err: unknown) => ctx.log.debug('orphan check failed; reconcile will collect it', { network, address: formatIp(ip), error: (err as Error).message }));
  }, ORPHAN_MS);
  timer.unref();
}

/**
 * The gateway Docker asks for at `network create`, before CreateNetwork: not an allocation. On
 * an overlay network it is this host's block's gateway, the address containers route through.
 */
function gatewayAddress(ctx: DriverContext, spec: PoolSpec, requested: Ip | undefined): Reply {
  const ov = ctx.networks.overlayForPool(spec.pool);
  if (ov) {
    const gw = overlayGateway(ov, spec.pool.ip.family);
    if (requested && requested.value !== gw.ip.value) {
      throw new AddressUnavailable(`on overlay network "${ov.network}" this host's gateway is ${formatIp(gw.ip)} (its block ${formatCidr(networkOf(gw))}); drop --gateway`);
    }
    return { Address: formatCidr(gw), Data: {} };
  }
  const gw = requested ?? defaultGateway(spec.pool);
  return { Address: `${formatIp(gw)}/${spec.pool.prefix}`, Data: {} };
}

async function releaseAddress(ctx: DriverContext, b: Body): Promise<Reply> {
  const m = 'ReleaseAddress';
  const spec = parsePoolId(str(b, 'PoolID', m), m);
  const ip = bareIp(str(b, 'Address', m));
  if (!ip) throw new DecodingFailure(`${m}: "Address" ${JSON.stringify(b.Address)} is not an IP address`);
  const rec = ctx.networks.withPool(spec.pool);
  // Only Docker's own: the gateway Docker releases on network rm may be a CNI container's address.
  const released = await releaseDockerAddress(ctx.store, ip, rec?.name);
  for (const a of released) ctx.log.info('address released', { network: a.network, address: a.address, endpoint: shortId(a.containerId), container: a.name });
  return {};
}
