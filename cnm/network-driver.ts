// Docker's NetworkDriver, the network half: CreateNetwork records the network (its options
// parsed once, its mode decided once) and, when -o network names it, registers its pool at
// once, so a conflicting definition is refused before Docker stores the network;
// DeleteNetwork releases its Docker allocations and undoes its setup when no runtime uses the
// vxnet network any more.
import { Cidr, formatCidr } from '../ipam/addr';
import { registerPool } from '../ipam/core';
import { releaseDockerNetwork } from '../ipam/docker';
import { DecodingFailure, NetworkConflict, UnsupportedField } from '../lib/errors';
import { defaultBridgeName } from '../datapath/names';
import { routedSpecOf, subnetsOf } from '../overlay/local';
import type { Body, DriverContext, Handlers, Reply } from './context';
import { LOCAL_ADDRESS_SPACE, dockerId, endpointHostVeth, parseNetworkOptions, parsePoolData, shortId, strMap } from './model';
import { overlaps, recordSubnets, samePool } from './networks';
import type { BoundRecord, NetworkRecord } from './state';

export function networkHandlers(ctx: DriverContext): Handlers {
  return {
    'NetworkDriver.GetCapabilities': async () => ({ Scope: 'local', ConnectivityScope: 'local' }),
    'NetworkDriver.CreateNetwork': (b) => createNetwork(ctx, b),
    'NetworkDriver.DeleteNetwork': async (b) => {
      const nid = dockerId(b, 'NetworkID', 'DeleteNetwork');
      await ctx.mutex.run(nid, () => removeNetwork(ctx, nid, 'docker network removed'));
      return {};
    },
    'NetworkDriver.AllocateNetwork': async (b) => {
      dockerId(b, 'NetworkID', 'AllocateNetwork');
      return { Options: strMap(b, 'Options', 'AllocateNetwork') };
    },
    'NetworkDriver.FreeNetwork': async (b) => { dockerId(b, 'NetworkID', 'FreeNetwork'); return {}; },
    'NetworkDriver.DiscoverNew': async (b) => { discovery(b, 'DiscoverNew'); return {}; },
    'NetworkDriver.DiscoverDelete': async (b) => { discovery(b, 'DiscoverDelete'); return {}; },
  };
}

function discovery(b: Body, method: string): void {
  if (typeof b.DiscoveryType !== 'number') throw new DecodingFailure(`${method}: "DiscoveryType" must be a number`);
}

async function createNetwork(ctx: DriverContext, b: Body): Promise<Reply> {
  const nid = dockerId(b, 'NetworkID', 'CreateNetwork');
  let options = parseNetworkOptions(b.Options);
  const { v4: data, v6 } = parsePoolData(b);
  if (data.addressSpace !== LOCAL_ADDRESS_SPACE) {
    throw new UnsupportedField(`the ${ctx.plugin} network driver needs its IPAM driver too: docker network create -d ${ctx.plugin} --ipam-driver ${ctx.plugin} --subnet CIDR ...`);
  }
  const ov = ctx.networks.overlays.forSubnet(data.pool);
  if (ov) {
    if (options.network !== undefined && options.network !== ov.network) {
      throw new NetworkConflict(`subnet ${formatCidr(data.pool)} is overlay network "${ov.network}" on this host; -o network=${options.network} names another network`);
    }
    options = { ...options, network: ov.network };
    if (v6 && !subnetsOf(ov).some((s) => samePool(s, v6.pool))) {
      const theirs = subnetsOf(ov).filter((s) => s.ip.family === 6).map(formatCidr);
      throw new NetworkConflict(`IPv6 subnet ${formatCidr(v6.pool)} is not overlay network "${ov.network}"'s: ${theirs.length > 0 ? `its IPv6 subnet is ${theirs.join(', ')}` : 'it has no IPv6 subnet'}`);
    }
  }
  const subnets = [data.pool, ...(v6 ? [v6.pool] : [])];
  const rec = await ctx.mutex.run(nid, async (): Promise<NetworkRecord> => {
    const existing = ctx.networks.get(nid);
    const had = existing ? recordSubnets(existing) : [];
    // Docker repeats CreateNetwork after a failure on its side: the same network again is no conflict.
    if (had.length === subnets.length && had.every((p, i) => samePool(p, subnets[i] as Cidr))) return existing as NetworkRecord;
    for (const r of ctx.networks.all()) {
      if (r.id === nid) continue;
      for (const mine of subnets) {
        const clash = recordSubnets(r).find((p) => p.ip.family === mine.ip.family && overlaps(p, mine));
        if (clash) throw new NetworkConflict(`subnet ${formatCidr(mine)} overlaps subnet ${formatCidr(clash)} of docker network ${r.dockerName ?? shortId(r.id)}`);
      }
      if (options.network && r.name === options.network) {
        throw new NetworkConflict(`vxnet network "${options.network}" is docker network ${r.dockerName ?? shortId(r.id)} already`);
      }
    }
    const record: NetworkRecord = {
      id: nid, pool: data.pool, gateway: data.gateway, ...(v6 ? { v6: { pool: v6.pool, gateway: v6.gateway } } : {}),
      options, mode: ov ? 'overlay' : 'bridge', created: ctx.now(),
    };
    if (options.network) {
      // The name is known now: refuse a conflicting definition before Docker stores the network.
      const bound: BoundRecord = { ...record, name: options.network };
      try {
        await registerPool(ctx.store, ctx.networks.conf(bound));
      } catch (err) {
        if (err instanceof NetworkConflict) throw new NetworkConflict(`vxnet network "${options.network}": ${err.message}`);
        throw err;
      }
      ctx.networks.put(bound);
      return bound;
    }
    ctx.networks.put(record);
    return record;
  });
  ctx.log.info('network created', {
    networkId: shortId(nid), network: rec.name, subnet: formatCidr(rec.pool), gateway: formatCidr(rec.gateway),
    ...(rec.v6 ? { subnet6: formatCidr(rec.v6.pool), gateway6: formatCidr(rec.v6.gateway) } : {}), mode: rec.mode, options,
  });
  if (rec.name === undefined && ctx.docker) {
    // Docker stores the network when this call returns; learn its name then (or from the create event).
    setImmediate(() => { void ctx.networks.learnNameSoon(nid); });
  }
  return {};
}

/**
 * Forgets a Docker network (DeleteNetwork, or reconcile when Docker removed it unseen): its
 * Docker allocations go; its bridge or routed setup goes when no runtime uses the network any
 * more. Callers hold the network's lock.
 */
export async function removeNetwork(ctx: DriverContext, nid: string, reason: string): Promise<void> {
  const rec = ctx.networks.get(nid);
  if (!rec) return;
  if (rec.name !== undefined) {
    const name = rec.name;
    const { released, remaining } = await releaseDockerNetwork(ctx.store, name, reason);
    for (const a of released) await ctx.dp.removeLink(endpointHostVeth(a.containerId)).catch(() => false);
    const summary = { networkId: shortId(nid), network: name, released: released.length, reason };
    if (remaining > 0 || rec.ipamOnly) {
      ctx.log.info('network removed; the vxnet network stays in use', { ...summary, allocations: remaining });
    } else if (ctx.networks.isOverlay(rec)) {
      const ov = ctx.networks.overlays.of(name);
      if (ov) {
        const spec = routedSpecOf(ov, rec.options);
        await ctx.dp.teardownRoutedNetwork(spec);
        ctx.log.info('network removed', { ...summary, overlayDevice: spec.device });
      } else {
        ctx.log.warn('network removed; the overlay agent has no state for it on this host, so its routed setup is left as is', summary);
      }
    } else {
      const bridge = rec.options.bridge ?? (await ctx.dp.findBridgeOf(name)) ?? defaultBridgeName(name);
      const removed = await ctx.dp.teardownNetwork({ network: name, bridge, natTable: rec.options.natTable, subnets: recordSubnets(rec) });
      ctx.log.info('network removed', { ...summary, bridge, bridgeRemoved: removed });
    }
  }
  ctx.networks.forget(nid);
}
