// The Docker networks vxnetd drives, as typed records (cnm/state.ts): the vxnet network name
// each one is bound to, which Docker's calls never carry (from -o network at once, else from
// Docker: the create event, or a lookup by id); how each attaches (bridge or overlay, decided
// once, when it is created or recovered); and the IPAM config each stands for, built from
// parsed values. Only an overlay network's config needs a file: this host's blocks, which the
// agent may change, read from that one network's state file when asked.
import { Cidr, Family, formatCidr, networkOf, lastOf, parseCidr, sameIp } from '../ipam/addr';
import { IpamConf, subnetsOf as definitionSubnets } from '../ipam/config';
import { registerPool } from '../ipam/core';
import type { IpamStore } from '../ipam/store/types';
import { InvalidNetworkConfig, NetworkConflict, NotFound, PluginNotAvailable, UnsupportedField } from '../lib/errors';
import type { Logger } from '../lib/log';
import { LocalOverlayState, localStateForSubnet, readLocalState, subnetsOf as overlaySubnets } from '../overlay/local';
import { gatewayOf, shortageError } from '../overlay/plan';
import type { DockerApi, DockerNetwork } from './docker';
import type { KeyedMutex } from '../lib/mutex';
import { FamilyPool, NETWORK_NAME_RE, NetworkOptions, PoolSpec, defaultGateway, ipamConfFor, overlayIpamConf, parseNetworkOptions, shortId } from './model';
import type { BoundRecord, NetworkRecord, NetworkRecords } from './state';

/** This host's overlay agent's local state (overlay/local.ts), as the driver reads it. */
export interface OverlayStates {
  /** The overlay network one of whose subnets is `subnet`: reads every state file, so only when a network is created or recovered. */
  forSubnet(subnet: Cidr): LocalOverlayState | undefined;
  /** One overlay network's state: its file alone. */
  of(network: string): LocalOverlayState | undefined;
}

/** The agent's state files in dir; none when vxnetd has no overlay directory. */
export function overlayStatesIn(dir: string | undefined): OverlayStates {
  if (dir === undefined) return { forSubnet: () => undefined, of: () => undefined };
  return { forSubnet: (subnet) => localStateForSubnet(dir, networkOf(subnet)), of: (network) => readLocalState(dir, network) };
}

/**
 * A host waiting for a block of the network (the agent found every block taken) says so in the
 * CNI plugin's words (overlay/plan.ts shortageError): who holds the blocks, when one may come free.
 */
function refuseWaiting(ov: LocalOverlayState, now = Date.now()): void {
  if (ov.blocks.length === 0 && ov.noBlock) throw shortageError(ov.network, ov.noBlock, now, ov.hostId);
}

/** This host's block of an overlay network in one family; the shortage, or PluginNotAvailable, when it has none. */
export function familyBlock(ov: LocalOverlayState, family: Family = 4): Cidr {
  const block = ov.blocks.find((b) => b.ip.family === family);
  if (block) return block;
  refuseWaiting(ov);
  throw new PluginNotAvailable(`overlay network "${ov.network}" has no IPv${family} block on this host (yet): is vxnetd's overlay agent running with this network${family === 6 ? ' and does the network have an IPv6 subnet' : ''}?`);
}

/** The gateway Docker gives an overlay network's containers: this host's block's, with the block's prefix. */
export const overlayGateway = (ov: LocalOverlayState, family: Family = 4): Cidr => {
  const block = familyBlock(ov, family);
  return { ip: gatewayOf(block), prefix: block.prefix };
};

/** A network's subnets, IPv4 first. */
export const recordSubnets = (rec: NetworkRecord): Cidr[] => [rec.pool, ...(rec.v6 ? [rec.v6.pool] : [])];

export const overlaps = (a: Cidr, b: Cidr): boolean => {
  const na = networkOf(a);
  const nb = networkOf(b);
  return na.ip.value <= lastOf(nb).value && nb.ip.value <= lastOf(na).value;
};

export const samePool = (a: Cidr, b: Cidr): boolean => a.prefix === b.prefix && sameIp(networkOf(a).ip, networkOf(b).ip);

export interface NetworksOptions {
  readonly records: NetworkRecords;
  readonly store: IpamStore;
  readonly docker: DockerApi | undefined;
  readonly log: Logger;
  readonly plugin: string;
  readonly now: () => number;
  readonly mutex: KeyedMutex;
  readonly overlays: OverlayStates;
}

export class Networks {
  private readonly records: NetworkRecords;
  private readonly store: IpamStore;
  private readonly docker: DockerApi | undefined;
  private readonly log: Logger;
  private readonly plugin: string;
  private readonly now: () => number;
  private readonly mutex: KeyedMutex;
  readonly overlays: OverlayStates;

  constructor(o: NetworksOptions) {
    this.records = o.records;
    this.store = o.store;
    this.docker = o.docker;
    this.log = o.log;
    this.plugin = o.plugin;
    this.now = o.now;
    this.mutex = o.mutex;
    this.overlays = o.overlays;
    for (const r of this.records.all()) if (r.mode === undefined) this.isOverlay(r);
  }

  get(nid: string): NetworkRecord | undefined {
    return this.records.get(nid);
  }

  all(): NetworkRecord[] {
    return this.records.all();
  }

  put(rec: NetworkRecord): void {
    this.records.put(rec);
  }

  forget(nid: string): void {
    this.records.delete(nid);
  }

  /** The record whose subnet is pool, if any. */
  withPool(pool: Cidr): NetworkRecord | undefined {
    return this.records.all().find((r) => recordSubnets(r).some((p) => samePool(p, pool)));
  }

  /**
   * Whether the network is an overlay network's: its recorded mode. A record from before the
   * mode existed is decided when the agent's state shows its subnet, and stored so; until then
   * it is served as a bridge network, as before (after a reboot the agent writes its state only
   * once it runs, so a missing file is no proof).
   */
  isOverlay(rec: NetworkRecord): boolean {
    if (rec.mode !== undefined) return rec.mode === 'overlay';
    if (!this.overlays.forSubnet(rec.pool)) return false;
    // The stored record, not the caller's copy: it may have been bound (or forgotten) since.
    const cur = this.records.get(rec.id);
    if (cur && cur.mode === undefined) this.records.put({ ...cur, mode: 'overlay' });
    return true;
  }

  /**
   * The overlay network behind a pool, if it is one: a recorded network's own state file, else
   * (a network being created: Docker asks for its gateway first) a scan of every state file.
   */
  overlayForPool(pool: Cidr): LocalOverlayState | undefined {
    const rec = this.withPool(pool);
    if (!rec) return this.overlays.forSubnet(pool);
    return this.isOverlay(rec) && rec.name !== undefined ? this.overlayState({ ...rec, name: rec.name }) : undefined;
  }

  /** This host's state of an overlay network; PluginNotAvailable while the agent has written none. */
  overlayState(rec: BoundRecord): LocalOverlayState {
    const ov = this.overlays.of(rec.name);
    if (!ov) throw new PluginNotAvailable(`overlay network "${rec.name}" has no state on this host (yet): is vxnetd's overlay agent running with this network?`);
    return ov;
  }

  /**
   * The IPAM config the network stands for: an overlay network's is the CNI side's very pool
   * (one range set per block of this host); a bridge network's is its subnet, cut to the
   * --ip-range of the pool Docker asks from when given.
   */
  conf(rec: BoundRecord, spec?: PoolSpec): IpamConf {
    if (this.isOverlay(rec)) {
      const ov = this.overlayState(rec);
      refuseWaiting(ov);
      return overlayIpamConf(ov);
    }
    // The pool Docker asks from carries its --ip-range; the other family's is the whole subnet.
    const v4 = spec?.pool.ip.family === 4 ? spec : { pool: rec.pool, subPool: undefined };
    const v6: FamilyPool | undefined = rec.v6
      ? { spec: spec?.pool.ip.family === 6 ? spec : { pool: rec.v6.pool, subPool: undefined }, gateway: rec.v6.gateway.ip }
      : undefined;
    return ipamConfFor(rec.name, v4, rec.gateway.ip, v6);
  }

  /**
   * The subnet of one family of a vxnet network that exists already (RequestPool without
   * --subnet, tied to it by --ipam-opt network=NAME): an overlay network's from the agent's
   * state, else the pool the CNI side (or another Docker network) registered in the store.
   */
  async subnetOfNetwork(network: string, family: Family): Promise<Cidr> {
    const ov = this.overlays.of(network);
    const subnets = ov ? overlaySubnets(ov)
      : await this.store.view(async (tx) => {
        const pool = await tx.getPool(network);
        return pool ? definitionSubnets(pool.definition).map(parseCidr).filter((c): c is Cidr => c !== undefined) : undefined;
      });
    if (!subnets) throw new NotFound(`--ipam-opt network=${network}: no vxnet network "${network}" is known on this host (no pool in the store, no overlay state); give --subnet`);
    const mine = subnets.filter((c) => c.ip.family === family);
    if (mine.length === 0) throw new InvalidNetworkConfig(`--ipam-opt network=${network}: vxnet network "${network}" has no IPv${family} subnet (it has ${subnets.map(formatCidr).join(', ')})`);
    if (mine.length > 1) throw new UnsupportedField(`--ipam-opt network=${network}: vxnet network "${network}" has ${mine.length} IPv${family} subnets (${mine.map(formatCidr).join(', ')}); a Docker network takes one: give --subnet`);
    return networkOf(mine[0] as Cidr);
  }

  // ---- names ----

  /** The record of a Docker network with its vxnet name bound; recovers a lost record from Docker. */
  async bound(nid: string): Promise<BoundRecord> {
    const rec = this.records.get(nid) ?? (await this.recover(nid));
    if (rec.name !== undefined) return rec as BoundRecord;
    const net = await this.dockerNetwork(nid);
    if (!net) throw new NotFound(`docker network ${shortId(nid)} is not known to Docker`);
    return this.bind(rec, net.name);
  }

  /** The network a pool serves: by subnet among the records, else the Docker network that uses it. */
  async forPool(spec: PoolSpec): Promise<BoundRecord> {
    const rec = this.withPool(spec.pool);
    if (rec) return rec.name !== undefined ? (rec as BoundRecord) : this.bound(rec.id);
    const subnet = formatCidr(networkOf(spec.pool));
    if (!this.docker) throw new NotFound(`no vxnet docker network has subnet ${subnet}`);
    let nets: DockerNetwork[];
    try {
      nets = await this.docker.networks();
    } catch (err) {
      throw new PluginNotAvailable(`cannot ask Docker which network has subnet ${subnet}: ${(err as Error).message}`);
    }
    const match = nets.find((n) => n.ipamDriver === this.plugin && n.subnets.some((s) => { const c = parseCidr(s); return c !== undefined && samePool(c, spec.pool); }));
    if (!match) throw new NotFound(`no Docker network with IPAM driver ${this.plugin} has subnet ${subnet}`);
    return this.mutex.run(match.id, async () => {
      const again = this.records.get(match.id);
      if (again?.name !== undefined) return again as BoundRecord;
      return this.recover(match.id, match);
    });
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

  /** Polls Docker (bounded) until it lists a network just created, then binds its name. */
  async learnNameSoon(nid: string): Promise<void> {
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
  private async recover(nid: string, known?: DockerNetwork): Promise<BoundRecord> {
    const net = known ?? (await this.dockerNetwork(nid));
    if (!net) throw new NotFound(`docker network ${shortId(nid)} is not known to vxnet nor to Docker`);
    if (net.ipamDriver !== this.plugin) {
      throw new UnsupportedField(`docker network ${net.name} uses IPAM driver "${net.ipamDriver || 'default'}": vxnet networks need --ipam-driver ${this.plugin}`);
    }
    const subnet = net.subnets.map(parseCidr).find((c): c is Cidr => c !== undefined && c.ip.family === 4);
    if (!subnet) throw new InvalidNetworkConfig(`docker network ${net.name} has no IPv4 subnet`);
    const pool = networkOf(subnet);
    const subnet6 = net.subnets.map(parseCidr).find((c): c is Cidr => c !== undefined && c.ip.family === 6);
    const ours = net.driver === this.plugin;
    let options: NetworkOptions = parseNetworkOptions(ours ? { 'com.docker.network.generic': net.options } : {});
    const ov = this.overlays.forSubnet(pool);
    if (ov) {
      if (options.network !== undefined && options.network !== ov.network) {
        throw new NetworkConflict(`subnet ${formatCidr(pool)} is overlay network "${ov.network}" on this host; docker network ${net.name} names network "${options.network}"`);
      }
      options = { ...options, network: ov.network };
    }
    const rec: NetworkRecord = {
      id: net.id, pool, gateway: ov ? overlayGateway(ov) : { ip: defaultGateway(pool), prefix: pool.prefix },
      ...(subnet6 ? { v6: { pool: networkOf(subnet6), gateway: ov ? overlayGateway(ov, 6) : { ip: defaultGateway(subnet6), prefix: subnet6.prefix } } } : {}),
      options, mode: ov ? 'overlay' : 'bridge', created: this.now(), ...(ours ? {} : { ipamOnly: true }),
    };
    this.records.put(rec);
    this.log.warn('recovered the record of a docker network from Docker', { networkId: shortId(nid), dockerName: net.name, ipamOnly: !ours, mode: rec.mode });
    return this.bind(rec, net.name);
  }

  /** Binds a record to its vxnet network name and registers the pool; a conflict is logged and refused at attach time. */
  private async bind(rec: NetworkRecord, dockerName: string): Promise<BoundRecord> {
    const name = rec.options.network ?? dockerName;
    if (!NETWORK_NAME_RE.test(name)) throw new InvalidNetworkConfig(`docker network name ${JSON.stringify(name)} is not a valid vxnet network name`);
    const bound: BoundRecord = { ...rec, name, dockerName };
    if (rec.name !== name || rec.dockerName !== dockerName) this.records.put(bound);
    // An overlay network's pool is the agent's and the CNI side's; with no state yet, the first RequestAddress registers it.
    if (this.isOverlay(bound) && !this.overlays.of(name)) return bound;
    try {
      await registerPool(this.store, this.conf(bound));
      this.log.info('docker network bound to vxnet network', { networkId: shortId(rec.id), dockerName, network: name, subnet: formatCidr(rec.pool) });
    } catch (err) {
      if (!(err instanceof NetworkConflict)) throw err;
      this.log.error('docker network conflicts with the vxnet network of the same name; containers cannot attach until one is removed',
        { networkId: shortId(rec.id), dockerName, network: name, error: err.message });
    }
    return bound;
  }
}
