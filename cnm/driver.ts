// Docker's remote NetworkDriver and IpamDriver over vxnet's IPAM core and datapath.
//
// What Docker 20.10 sends (logged from a real daemon) shapes this:
// - `docker network create`: RequestPool {Pool, SubPool, Options: --ipam-opt only}, then
//   RequestAddress for the gateway, then CreateNetwork {NetworkID, -o options, IPv4Data}. No
//   call carries the network's name, and Docker stores the network only after CreateNetwork
//   returns. So a PoolID is self-describing (vxnet:CIDR[:RANGE]), and the vxnet network name
//   (the IPAM store's key, shared with CNI) is bound after creation: from -o network=NAME at
//   once, else from Docker (the network create event, or a lookup by id).
// - a container start: RequestAddress {PoolID} (no endpoint, no container), CreateEndpoint
//   {EndpointID, Interface.Address}, Join {SandboxKey}. So RequestAddress reserves under a
//   pending owner and CreateEndpoint moves the address to owner (endpoint id, "docker"); the
//   container's name comes from Docker later (network connect event, reconcile).
// - teardown: Leave, DeleteEndpoint, ReleaseAddress; network rm: DeleteNetwork,
//   ReleaseAddress(gateway), ReleasePool.
import { Cidr, contains, formatCidr, formatIp, networkOf, parseCidr, lastOf } from '../ipam/addr';
import { registerPool } from '../ipam/core';
import {
  claimForEndpoint, endpointAllocation, isPending, nameEndpoints, recordSandbox, releaseDockerAddress, releaseDockerNetwork, releaseForgotten, reservePending,
} from '../ipam/docker';
import { parseIpamConf } from '../ipam/config';
import { LocalOverlayState, blockRanges, localStateForSubnet } from '../overlay/local';
import { routedSpecOf } from '../overlay/local';
import { gatewayOf } from '../overlay/plan';
import type { Allocation, IpamStore } from '../ipam/store/types';
import { defaultBridgeName } from '../datapath/names';
import {
  AddressUnavailable, AttachmentDrifted, DecodingFailure, InvalidNetworkConfig, NetworkConflict, NotFound, PluginNotAvailable,
  UnsupportedField,
} from '../lib/errors';
import type { Logger } from '../lib/log';
import type { Datapath } from '../datapath/docker';
import type { DockerApi, DockerNetwork } from './docker';
import {
  CONTAINER_VETH_PREFIX, GATEWAY_REQUEST, GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE, NETWORK_NAME_RE,
  PoolSpec, bareIp, defaultGateway, dockerId, endpointContainerVeth, endpointHostVeth, endpointMac, ipamConfFor, isObject,
  optStr, parseNetworkOptions, parsePoolData, parsePoolId, poolId, requestPoolSpec, shortId, str, strMap,
} from './model';
import type { NetworkRecord, NetworkRecords } from './state';

type Body = Record<string, unknown>;
type Reply = Record<string, unknown>;

/** Serializes work per key (a network id); different networks proceed in parallel. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(fn);
    const tail = result.then(() => undefined, () => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return result;
  }
}

export interface DriverOptions {
  readonly store: IpamStore;
  readonly records: NetworkRecords;
  readonly datapath: Datapath;
  /** The Docker API; undefined when vxnetd runs without one (names then come only from -o network). */
  readonly docker: DockerApi | undefined;
  readonly log: Logger;
  /** The name Docker knows this plugin by (the socket's base name): -d NAME / --ipam-driver NAME. */
  readonly pluginName: string;
  readonly now?: () => number;
  /** An address reserved by RequestAddress and not claimed by CreateEndpoint is released after this long. */
  readonly pendingGraceMs?: number;
  /** An endpoint's address is released when Docker has not listed the endpoint for this long. */
  readonly endpointGraceMs?: number;
  /**
   * Where this host's overlay agent keeps its state (overlay/local.ts): a Docker network whose
   * --subnet is an overlay network's subnet attaches containers to that overlay.
   */
  readonly overlayDir?: string;
}

export interface ReconcileReport {
  checked: number;
  released: Allocation[];
  named: number;
  networksRemoved: string[];
  orphansRemoved: string[];
}

const cidrOf = (text: string): Cidr => parseCidr(text) as Cidr;
const overlap = (a: Cidr, b: Cidr): boolean => {
  const na = networkOf(a);
  const nb = networkOf(b);
  return na.ip.value <= lastOf(nb).value && nb.ip.value <= lastOf(na).value;
};

export class Driver {
  private readonly store: IpamStore;
  private readonly records: NetworkRecords;
  private readonly dp: Datapath;
  private readonly docker: DockerApi | undefined;
  private readonly log: Logger;
  private readonly plugin: string;
  private readonly now: () => number;
  private readonly pendingGraceMs: number;
  private readonly endpointGraceMs: number;
  private readonly mutex = new KeyedMutex();
  private readonly overlayDir: string | undefined;
  /** Container ends seen in the host namespace at the last reconcile (see sweepOrphans). */
  private orphanCandidates = new Set<string>();

  constructor(o: DriverOptions) {
    this.store = o.store;
    this.records = o.records;
    this.dp = o.datapath;
    this.docker = o.docker;
    this.log = o.log;
    this.plugin = o.pluginName;
    this.now = o.now ?? Date.now;
    this.pendingGraceMs = o.pendingGraceMs ?? 120_000;
    this.endpointGraceMs = o.endpointGraceMs ?? 60_000;
    this.overlayDir = o.overlayDir;
  }

  /** The handler of each method Docker calls, by its path without the leading "/". */
  readonly methods: Readonly<Record<string, (body: Body) => Promise<Reply>>> = {
    'Plugin.Activate': async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),

    'NetworkDriver.GetCapabilities': async () => ({ Scope: 'local', ConnectivityScope: 'local' }),
    'NetworkDriver.CreateNetwork': (b) => this.createNetwork(b),
    'NetworkDriver.DeleteNetwork': (b) => this.deleteNetwork(b),
    'NetworkDriver.CreateEndpoint': (b) => this.createEndpoint(b),
    'NetworkDriver.EndpointOperInfo': (b) => this.endpointOperInfo(b),
    'NetworkDriver.DeleteEndpoint': (b) => this.deleteEndpoint(b),
    'NetworkDriver.Join': (b) => this.join(b),
    'NetworkDriver.Leave': async (b) => { this.ids(b, 'Leave'); return {}; },
    'NetworkDriver.DiscoverNew': async (b) => { this.discovery(b, 'DiscoverNew'); return {}; },
    'NetworkDriver.DiscoverDelete': async (b) => { this.discovery(b, 'DiscoverDelete'); return {}; },
    'NetworkDriver.ProgramExternalConnectivity': (b) => this.programExternal(b),
    'NetworkDriver.RevokeExternalConnectivity': async (b) => { this.ids(b, 'RevokeExternalConnectivity'); return {}; },
    'NetworkDriver.AllocateNetwork': async (b) => {
      dockerId(b, 'NetworkID', 'AllocateNetwork');
      return { Options: strMap(b, 'Options', 'AllocateNetwork') };
    },
    'NetworkDriver.FreeNetwork': async (b) => { dockerId(b, 'NetworkID', 'FreeNetwork'); return {}; },

    'IpamDriver.GetCapabilities': async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    'IpamDriver.GetDefaultAddressSpaces': async () => ({
      LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE,
    }),
    'IpamDriver.RequestPool': (b) => this.requestPool(b),
    'IpamDriver.ReleasePool': async (b) => { parsePoolId(str(b, 'PoolID', 'ReleasePool'), 'ReleasePool'); return {}; },
    'IpamDriver.RequestAddress': (b) => this.requestAddress(b),
    'IpamDriver.ReleaseAddress': (b) => this.releaseAddress(b),
  };

  private ids(b: Body, method: string): { nid: string; eid: string } {
    return { nid: dockerId(b, 'NetworkID', method), eid: dockerId(b, 'EndpointID', method) };
  }

  private discovery(b: Body, method: string): void {
    if (typeof b.DiscoveryType !== 'number') throw new DecodingFailure(`${method}: "DiscoveryType" must be a number`);
  }

  // ---- names ----

  /** The record of a Docker network with its vxnet name bound; recovers a lost record from Docker. */
  private async networkRecord(nid: string): Promise<NetworkRecord & { name: string }> {
    let rec = this.records.get(nid);
    if (!rec) rec = await this.recoverRecord(nid);
    if (rec.name) return rec as NetworkRecord & { name: string };
    const net = await this.dockerNetwork(nid);
    if (!net) throw new NotFound(`docker network ${shortId(nid)} is not known to Docker`);
    return this.bind(rec, net.name);
  }

  private async dockerNetwork(nid: string): Promise<DockerNetwork | undefined> {
    if (!this.docker) {
      throw new PluginNotAvailable(`the name of docker network ${shortId(nid)} is unknown and vxnetd runs without the Docker API: create the network with -o network=NAME`);
    }
    try {
      return await this.docker.network(nid);
    } catch (err) {
      throw new PluginNotAvailable(`cannot ask Docker about network ${shortId(nid)}: ${(err as Error).message}`);
    }
  }

  /** Builds the record of a network Docker has and vxnetd lost (data dir wiped, or IPAM-only use). */
  private async recoverRecord(nid: string, known?: DockerNetwork): Promise<NetworkRecord> {
    const net = known ?? (await this.dockerNetwork(nid));
    if (!net) throw new NotFound(`docker network ${shortId(nid)} is not known to vxnet nor to Docker`);
    if (net.ipamDriver !== this.plugin) {
      throw new UnsupportedField(`docker network ${net.name} uses IPAM driver "${net.ipamDriver || 'default'}": vxnet networks need --ipam-driver ${this.plugin}`);
    }
    const subnet = net.subnets.map(parseCidr).find((c): c is Cidr => c !== undefined && c.ip.family === 4);
    if (!subnet) throw new InvalidNetworkConfig(`docker network ${net.name} has no IPv4 subnet`);
    const ours = net.driver === this.plugin;
    const options = parseNetworkOptions(ours ? { 'com.docker.network.generic': net.options } : {});
    const rec: NetworkRecord = {
      id: net.id, pool: formatCidr(networkOf(subnet)), gateway: `${formatIp(defaultGateway(subnet))}/${subnet.prefix}`,
      options, created: this.now(), ...(ours ? {} : { ipamOnly: true }),
    };
    this.records.put(rec);
    this.log.warn('recovered the record of a docker network from Docker', { networkId: shortId(nid), dockerName: net.name, ipamOnly: !ours });
    return this.bind(rec, net.name);
  }

  /** Binds a record to its vxnet network name and registers the pool; a conflict is logged and refused at attach time. */
  private async bind(rec: NetworkRecord, dockerName: string): Promise<NetworkRecord & { name: string }> {
    const name = rec.options.network ?? dockerName;
    if (!NETWORK_NAME_RE.test(name)) throw new InvalidNetworkConfig(`docker network name ${JSON.stringify(name)} is not a valid vxnet network name`);
    const bound = { ...rec, name, dockerName };
    if (rec.name !== name || rec.dockerName !== dockerName) this.records.put(bound);
    try {
      await registerPool(this.store, this.conf(bound));
      this.log.info('docker network bound to vxnet network', { networkId: shortId(rec.id), dockerName, network: name, subnet: rec.pool });
    } catch (err) {
      if (!(err instanceof NetworkConflict)) throw err;
      this.log.error('docker network conflicts with the vxnet network of the same name; containers cannot attach until one is removed',
        { networkId: shortId(rec.id), dockerName, network: name, error: err.message });
    }
    return bound;
  }

  /** Called after CreateNetwork and on the network create event: learns the Docker name. */
  async learnName(nid: string, dockerName?: string): Promise<void> {
    await this.mutex.run(nid, async () => {
      const rec = this.records.get(nid);
      if (!rec || rec.dockerName) return;
      let name = dockerName;
      if (name === undefined) {
        const net = await this.dockerNetwork(nid);
        if (!net) return;
        name = net.name;
      }
      await this.bind(rec, name);
    });
  }

  private conf(rec: NetworkRecord & { name: string }, spec?: PoolSpec): ReturnType<typeof ipamConfFor> {
    const ov = this.overlayOf(cidrOf(rec.pool));
    // An overlay network: the CNI side's very pool (one range set per block of this host).
    if (ov) return overlayIpamConf(ov);
    return ipamConfFor(rec.name, spec ?? { pool: cidrOf(rec.pool), subPool: undefined }, cidrOf(rec.gateway).ip);
  }

  /** This host's state of the overlay network whose IPv4 subnet is `pool`, when it is one. */
  private overlayOf(pool: Cidr): LocalOverlayState | undefined {
    return this.overlayDir === undefined ? undefined : localStateForSubnet(this.overlayDir, networkOf(pool));
  }

  /** The network a pool serves: by subnet among the records, else the Docker network that uses it. */
  private async recordForPool(spec: PoolSpec): Promise<NetworkRecord & { name: string }> {
    const subnet = formatCidr(networkOf(spec.pool));
    const rec = this.records.all().find((r) => r.pool === subnet);
    if (rec) return rec.name ? (rec as NetworkRecord & { name: string }) : this.networkRecord(rec.id);
    if (!this.docker) throw new NotFound(`no vxnet docker network has subnet ${subnet}`);
    let nets: DockerNetwork[];
    try {
      nets = await this.docker.networks();
    } catch (err) {
      throw new PluginNotAvailable(`cannot ask Docker which network has subnet ${subnet}: ${(err as Error).message}`);
    }
    const match = nets.find((n) => n.ipamDriver === this.plugin && n.subnets.some((s) => s === subnet));
    if (!match) throw new NotFound(`no Docker network with IPAM driver ${this.plugin} has subnet ${subnet}`);
    return this.mutex.run(match.id, async () => {
      const again = this.records.get(match.id);
      if (again?.name) return again as NetworkRecord & { name: string };
      return (await this.recoverRecord(match.id, match)) as NetworkRecord & { name: string };
    });
  }

  // ---- IPAM ----

  private async requestPool(b: Body): Promise<Reply> {
    const spec = requestPoolSpec(b);
    this.log.debug('pool requested', { pool: formatCidr(spec.pool), subPool: spec.subPool && formatCidr(spec.subPool) });
    return { PoolID: poolId(spec), Pool: formatCidr(spec.pool), Data: {} };
  }

  private async requestAddress(b: Body): Promise<Reply> {
    const m = 'RequestAddress';
    const spec = parsePoolId(str(b, 'PoolID', m), m);
    const address = optStr(b, 'Address', m);
    const options = strMap(b, 'Options', m);
    const requested = address === '' ? undefined : bareIp(address);
    if (address !== '' && (!requested || requested.family !== 4)) throw new DecodingFailure(`${m}: "Address" ${JSON.stringify(address)} is not an IPv4 address`);
    if (requested && !contains(networkOf(spec.pool), requested)) {
      throw new AddressUnavailable(`${address} is not in the network's subnet ${formatCidr(spec.pool)}`);
    }
    const ov = this.overlayOf(spec.pool);
    if (options.RequestAddressType === GATEWAY_REQUEST) {
      if (ov) {
        // The bridge's address in this host's block: containers route other blocks through it.
        const block = v4Block(ov);
        const gw = gatewayOf(block);
        if (requested && requested.value !== gw.value) {
          throw new AddressUnavailable(`on overlay network "${ov.network}" this host's gateway is ${formatIp(gw)} (its block ${formatCidr(block)}); drop --gateway`);
        }
        return { Address: `${formatIp(gw)}/${block.prefix}`, Data: {} };
      }
      const gw = requested ?? defaultGateway(spec.pool);
      return { Address: `${formatIp(gw)}/${spec.pool.prefix}`, Data: {} };
    }
    const rec = await this.recordForPool(spec);
    try {
      const conf = this.conf(rec, spec);
      // Overlay: IPv4 only (Docker networks here are IPv4), from this host's block.
      const sets = ov ? conf.rangeSets.flatMap((set, i) => (set[0]?.subnet.ip.family === 4 ? [i] : [])) : undefined;
      const ip = await reservePending(this.store, conf, { ...(requested ? { requested } : {}), ...(sets ? { sets } : {}) });
      this.log.debug('address reserved', { network: rec.name, address: ip.address, pending: ip.allocation.containerId });
      return { Address: ip.address, Data: {} };
    } catch (err) {
      if (err instanceof NetworkConflict) {
        throw new NetworkConflict(`docker network ${rec.dockerName ?? shortId(rec.id)} (subnet ${rec.pool}) conflicts with vxnet network "${rec.name}": ${err.message}`);
      }
      throw err;
    }
  }

  private async releaseAddress(b: Body): Promise<Reply> {
    const m = 'ReleaseAddress';
    const spec = parsePoolId(str(b, 'PoolID', m), m);
    const ip = bareIp(str(b, 'Address', m));
    if (!ip) throw new DecodingFailure(`${m}: "Address" ${JSON.stringify(b.Address)} is not an IP address`);
    const subnet = formatCidr(networkOf(spec.pool));
    const rec = this.records.all().find((r) => r.pool === subnet && r.name);
    const released = await releaseDockerAddress(this.store, ip, rec?.name);
    for (const a of released) this.log.info('address released', { network: a.network, address: a.address, endpoint: shortId(a.containerId), container: a.name });
    return {};
  }

  // ---- networks ----

  private async createNetwork(b: Body): Promise<Reply> {
    const nid = dockerId(b, 'NetworkID', 'CreateNetwork');
    let options = parseNetworkOptions(b.Options);
    const data = parsePoolData(b);
    if (data.addressSpace !== LOCAL_ADDRESS_SPACE) {
      throw new UnsupportedField(`the ${this.plugin} network driver needs its IPAM driver too: docker network create -d ${this.plugin} --ipam-driver ${this.plugin} --subnet CIDR ...`);
    }
    const ov = this.overlayOf(data.pool);
    if (ov) {
      if (options.network !== undefined && options.network !== ov.network) {
        throw new NetworkConflict(`subnet ${formatCidr(data.pool)} is overlay network "${ov.network}" on this host; -o network=${options.network} names another network`);
      }
      options = { ...options, network: ov.network };
    }
    const rec = await this.mutex.run(nid, async () => {
      const existing = this.records.get(nid);
      if (existing && existing.pool === formatCidr(data.pool)) return existing;
      for (const r of this.records.all()) {
        if (r.id === nid) continue;
        if (overlap(cidrOf(r.pool), data.pool)) {
          throw new NetworkConflict(`subnet ${formatCidr(data.pool)} overlaps subnet ${r.pool} of docker network ${r.dockerName ?? shortId(r.id)}`);
        }
        if (options.network && r.name === options.network) {
          throw new NetworkConflict(`vxnet network "${options.network}" is docker network ${r.dockerName ?? shortId(r.id)} already`);
        }
      }
      const record: NetworkRecord = { id: nid, pool: formatCidr(data.pool), gateway: formatCidr(data.gateway), options, created: this.now() };
      if (options.network) {
        // The name is known now: refuse a conflicting definition before Docker stores the network.
        const bound = { ...record, name: options.network };
        try {
          await registerPool(this.store, this.conf(bound));
        } catch (err) {
          if (err instanceof NetworkConflict) throw new NetworkConflict(`vxnet network "${options.network}": ${err.message}`);
          throw err;
        }
        this.records.put(bound);
        return bound;
      }
      this.records.put(record);
      return record;
    });
    this.log.info('network created', { networkId: shortId(nid), network: rec.name, subnet: rec.pool, gateway: rec.gateway, options });
    if (!rec.name && this.docker) {
      // Docker stores the network when this call returns; learn its name then (or from the create event).
      setImmediate(() => { void this.learnNameSoon(nid); });
    }
    return {};
  }

  /** Polls Docker (bounded) until it lists the new network, then binds its name. */
  private async learnNameSoon(nid: string): Promise<void> {
    const deadline = this.now() + 10_000;
    for (let delay = 20; this.now() < deadline; delay = Math.min(delay * 2, 1000)) {
      const rec = this.records.get(nid);
      if (!rec || rec.dockerName) return;
      try {
        const net = await this.docker?.network(nid);
        if (net) { await this.learnName(nid, net.name); return; }
      } catch (err) {
        this.log.debug('network name lookup failed; retrying', { networkId: shortId(nid), error: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, delay));
    }
    this.log.warn('docker network name still unknown; it will be looked up when a container attaches', { networkId: shortId(nid) });
  }

  private async deleteNetwork(b: Body): Promise<Reply> {
    const nid = dockerId(b, 'NetworkID', 'DeleteNetwork');
    await this.mutex.run(nid, () => this.removeNetwork(nid, 'docker network removed'));
    return {};
  }

  /** Forgets a Docker network: its Docker allocations go; the bridge goes when no runtime uses the network any more. */
  private async removeNetwork(nid: string, reason: string): Promise<void> {
    const rec = this.records.get(nid);
    if (!rec) return;
    if (rec.name) {
      const name = rec.name;
      const { released, remaining } = await releaseDockerNetwork(this.store, name, reason);
      for (const a of released) await this.dp.removeLink(endpointHostVeth(a.containerId)).catch(() => false);
      const ov = this.overlayOf(cidrOf(rec.pool));
      if (remaining === 0 && !rec.ipamOnly && ov) {
        const spec = routedSpecOf(ov, rec.options);
        await this.dp.teardownRoutedNetwork(spec);
        this.log.info('network removed', { networkId: shortId(nid), network: name, overlayDevice: spec.device, released: released.length, reason });
      } else if (remaining === 0 && !rec.ipamOnly) {
        const bridge = rec.options.bridge ?? (await this.dp.findBridgeOf(name)) ?? defaultBridgeName(name);
        const removed = await this.dp.teardownNetwork({ network: name, bridge, natTable: rec.options.natTable, subnets: [cidrOf(rec.pool)] });
        this.log.info('network removed', { networkId: shortId(nid), network: name, bridge, bridgeRemoved: removed, released: released.length, reason });
      } else {
        this.log.info('network removed; the vxnet network stays in use', { networkId: shortId(nid), network: name, allocations: remaining, reason });
      }
    }
    this.records.delete(nid);
  }

  // ---- endpoints ----

  private async createEndpoint(b: Body): Promise<Reply> {
    const { nid, eid } = this.ids(b, 'CreateEndpoint');
    const iface = b.Interface ?? {};
    if (!isObject(iface)) throw new DecodingFailure('CreateEndpoint: "Interface" must be an object');
    const address = optStr(iface, 'Address', 'CreateEndpoint');
    const mac = optStr(iface, 'MacAddress', 'CreateEndpoint');
    if (optStr(iface, 'AddressIPv6', 'CreateEndpoint') !== '') throw new UnsupportedField('vxnet\'s Docker driver supports IPv4 only');
    if (address === '') throw new InvalidNetworkConfig(`endpoint ${shortId(eid)} has no IPv4 address: the network must use --ipam-driver ${this.plugin}`);
    const ip = bareIp(address);
    if (!ip) throw new DecodingFailure(`CreateEndpoint: "Interface.Address" ${JSON.stringify(address)} is not an address`);
    const rec = await this.networkRecord(nid);
    if (!contains(cidrOf(rec.pool), ip)) throw new AddressUnavailable(`${formatIp(ip)} is not in subnet ${rec.pool} of network "${rec.name}"`);
    await claimForEndpoint(this.store, this.conf(rec), eid, ip);
    this.log.info('endpoint created', { networkId: shortId(nid), network: rec.name, endpoint: shortId(eid), address });
    // Only what Docker left empty: echoing Address back makes Docker roll the endpoint back.
    return mac === '' ? { Interface: { MacAddress: endpointMac(eid) } } : {};
  }

  private async endpointOperInfo(b: Body): Promise<Reply> {
    const { eid } = this.ids(b, 'EndpointOperInfo');
    return { Value: { 'vxnet.hostVeth': endpointHostVeth(eid) } };
  }

  private async deleteEndpoint(b: Body): Promise<Reply> {
    const { nid, eid } = this.ids(b, 'DeleteEndpoint');
    // Docker moved the container end back (Leave); removing either end removes the pair.
    await this.dp.removeLink(endpointHostVeth(eid));
    await this.dp.removeLink(endpointContainerVeth(eid));
    this.log.info('endpoint deleted', { networkId: shortId(nid), endpoint: shortId(eid) });
    return {};
  }

  private async join(b: Body): Promise<Reply> {
    const { nid, eid } = this.ids(b, 'Join');
    const sandbox = str(b, 'SandboxKey', 'Join');
    const rec = await this.networkRecord(nid);
    const name = rec.name;
    const allocation = await endpointAllocation(this.store, name, eid);
    const pool = cidrOf(rec.pool);
    const gateway = cidrOf(rec.gateway);
    const ov = this.overlayOf(pool);
    const mtu = rec.options.mtu ?? ov?.mtu;
    const host = endpointHostVeth(eid);
    const container = endpointContainerVeth(eid);
    let bridge: string | undefined;
    if (ov) {
      // Overlay: routed, as the CNI plugin attaches (datapath/routed.ts), in the overlay's MTU.
      const ip = bareIp(allocation.address);
      if (!ip) throw new AttachmentDrifted(`endpoint ${shortId(eid)} holds an invalid address ${JSON.stringify(allocation.address)}`);
      await this.mutex.run(nid, () => this.dp.ensureRoutedNetwork(routedSpecOf(ov, rec.options)));
      await this.dp.createVeth({ host, container, bridge: undefined, mtu, mac: endpointMac(eid) });
      await this.dp.routeToEndpoint({ host, ips: [ip] });
    } else {
      bridge = await this.mutex.run(nid, async () => {
        const br = rec.options.bridge ?? (await this.dp.findBridgeOf(name)) ?? defaultBridgeName(name);
        await this.dp.ensureBridge({
          network: name, name: br, mtu, gateways: rec.ipamOnly ? [] : [gateway], subnets: [pool], ipMasq: rec.options.ipMasq, natTable: rec.options.natTable,
        });
        return br;
      });
      await this.dp.createVeth({ host, container, bridge, mtu, mac: endpointMac(eid) });
    }
    await recordSandbox(this.store, name, eid, sandbox);
    this.log.info('endpoint joined', { networkId: shortId(nid), network: name, endpoint: shortId(eid), address: allocation.address, ...(bridge ? { bridge } : { routed: true }), hostVeth: host, sandbox });
    return {
      InterfaceName: { SrcName: container, DstPrefix: 'eth' },
      Gateway: formatIp(gateway.ip),
      StaticRoutes: [],
      DisableGatewayService: false,
    };
  }

  private async programExternal(b: Body): Promise<Reply> {
    this.ids(b, 'ProgramExternalConnectivity');
    const options = b.Options;
    const portmap = isObject(options) ? options['com.docker.network.portmap'] : undefined;
    if (Array.isArray(portmap) && portmap.length > 0) {
      throw new UnsupportedField('vxnet does not publish ports (-p/--publish): reach the container at its own address');
    }
    return {};
  }

  // ---- reconcile ----

  /**
   * Brings the store in line with Docker: container names filled in, addresses of endpoints
   * Docker no longer has released (Docker does not always tell: a daemon crash, vxnetd down
   * during a teardown), records of networks Docker removed forgotten. Needs the Docker API.
   */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { checked: 0, released: [], named: 0, networksRemoved: [], orphansRemoved: [] };
    report.orphansRemoved = await this.sweepOrphans();
    if (!this.docker) return report;
    const nets = await this.docker.networks();
    const relevant = nets.filter((n) => n.driver === this.plugin || n.ipamDriver === this.plugin);
    const byId = new Map(relevant.map((n) => [n.id, n]));
    for (const rec of this.records.all()) {
      if (!nets.some((n) => n.id === rec.id)) {
        await this.mutex.run(rec.id, () => this.removeNetwork(rec.id, 'docker reconcile: network gone'));
        report.networksRemoved.push(rec.id);
      } else if (!rec.dockerName) {
        const n = byId.get(rec.id);
        if (n) await this.learnName(rec.id, n.name);
      }
    }
    // Endpoints Docker has, from an inspect of each network (the list leaves them out).
    const names = new Map<string, string>();
    for (const n of relevant) {
      const full = await this.docker.network(n.id);
      for (const [eid, e] of full?.endpoints ?? []) names.set(eid, e.name);
    }
    report.named = await nameEndpoints(this.store, names);
    const { checked, released } = await releaseForgotten(this.store, (eid) => names.has(eid),
      { now: this.now(), endpointGraceMs: this.endpointGraceMs, pendingGraceMs: this.pendingGraceMs });
    report.checked = checked;
    report.released = released;
    for (const a of released) {
      const pending = isPending(a);
      if (!pending) {
        await this.dp.removeLink(endpointHostVeth(a.containerId)).catch(() => false);
        await this.dp.removeLink(endpointContainerVeth(a.containerId)).catch(() => false);
      }
      this.log.warn('released the address of an endpoint Docker no longer has', { network: a.network, address: a.address, endpoint: shortId(a.containerId), container: a.name, pending });
    }
    return report;
  }

  /**
   * A container end (vxy...) stays in the host namespace only between Join and Docker moving
   * it, and between Leave and DeleteEndpoint: milliseconds. One seen at two reconciles in a row
   * belongs to a Join Docker gave up on without a DeleteEndpoint; removing it removes the pair.
   */
  private async sweepOrphans(): Promise<string[]> {
    const now = await this.dp.linksNamed(CONTAINER_VETH_PREFIX).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const name of now) {
      if (!this.orphanCandidates.has(name)) continue;
      if (await this.dp.removeLink(name).catch(() => false)) removed.push(name);
    }
    this.orphanCandidates = new Set(now.filter((n) => !removed.includes(n)));
    if (removed.length) this.log.warn('removed veth pairs of endpoints Docker never took', { links: removed });
    return removed;
  }

  /** Fills in container names for one network's endpoints (after a network connect event). */
  async refreshNames(nid: string): Promise<number> {
    const rec = this.records.get(nid);
    if (!rec?.name || !this.docker) return 0;
    const net = await this.docker.network(nid);
    if (!net) return 0;
    const names = new Map([...net.endpoints].map(([eid, e]) => [eid, e.name]));
    return nameEndpoints(this.store, names, rec.name);
  }
}

/** The IPAM config of an overlay network on this host: what the CNI plugin's overlay mode builds. */
function overlayIpamConf(ov: LocalOverlayState): ReturnType<typeof ipamConfFor> {
  return parseIpamConf(ov.network, { ranges: blockRanges(ov.blocks) });
}

/** This host's IPv4 block of an overlay network; PluginNotAvailable when it has none. */
function v4Block(ov: LocalOverlayState): Cidr {
  const block = ov.blocks.find((b) => b.ip.family === 4);
  if (!block) throw new PluginNotAvailable(`overlay network "${ov.network}" has no IPv4 block on this host (yet): is vxnetd's overlay agent running with this network?`);
  return block;
}
