// The vxnet plugin's network configuration, canonicalized once: defaults filled in and every
// invalid field rejected with its name (InvalidNetworkConfig, code 7). Pure: in overlay mode
// the host's local overlay state comes through the `readOverlay` argument (bridge mode never
// calls it, so it reads no file).
import { InvalidNetworkConfig, TryAgainLater, UnsupportedField, VxnetError } from '../lib/errors';
import { Cidr } from '../ipam/addr';
import { IpamConf, parseIpamConf } from '../ipam/config';
import { DEFAULT_DNS_STATE } from '../dns/state';
import { DEFAULT_LOCAL_DIR, LocalOverlayState, blockRanges, subnetsOf } from '../overlay/local';
import { shortageError } from '../overlay/plan';
import { defaultBridgeName } from '../datapath/names';
import { CniResult, parseResult } from './result';
import { isObject } from '../lib/guards';

export interface OverlayConf {
  /** Directory of the agent's local state files (`overlayStateDir`, default /run/vxnet/overlay). */
  readonly stateDir: string;
  /** The file read, for messages. */
  readonly stateFile: string;
  /** The host's state; undefined when the agent has not written it (ADD and CHECK fail, DEL and GC work). */
  readonly state: LocalOverlayState | undefined;
  /** What to masquerade: the network's whole subnets (from the state), else its blocks. */
  readonly subnets: readonly Cidr[];
}

export interface VxnetNetConf {
  readonly name: string;
  /** Overlay mode only ("mode":"overlay"). */
  readonly overlay: OverlayConf | undefined;
  readonly bridge: string;
  readonly isGateway: boolean;
  readonly ipMasq: boolean;
  readonly mtu: number | undefined;
  readonly hairpinMode: boolean;
  /** nftables table (family ip/ip6) vxnet keeps its NAT in. */
  readonly natTable: string;
  /** In-process IPAM (type vxnet-ipam or absent), or the name of a plugin to exec from CNI_PATH. */
  readonly ipamType: string;
  /** Canonical IPAM config; undefined when IPAM is delegated to another plugin. */
  readonly ipam: IpamConf | undefined;
  readonly mac: string | undefined;
  readonly prevResult: CniResult | undefined;
  readonly dns: CniResult['dns'];
  /** Where vxnetd says where its DNS is served ("dnsState"; default /run/vxnet/dns.json): the result's dns when neither the config nor IPAM gives one. */
  readonly dnsState: string;
}

const IFNAME_RE = /^[^/:\s]{1,15}$/;
const MAC_RE = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;
const TABLE_RE = /^[a-zA-Z][a-zA-Z0-9_-]{0,31}$/;

function bool(conf: Record<string, unknown>, key: string, def: boolean): boolean {
  const v = conf[key];
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw new InvalidNetworkConfig(`${key}: ${JSON.stringify(v)} must be true or false`);
  return v;
}

function dnsStateOf(conf: Record<string, unknown>): string {
  const file = conf.dnsState ?? DEFAULT_DNS_STATE;
  if (typeof file !== 'string' || !file.startsWith('/')) throw new InvalidNetworkConfig(`dnsState: ${JSON.stringify(file)} must be an absolute path`);
  return file;
}

/** Reads the host's overlay state of a network from a directory; undefined when there is none. */
export type OverlayStateReader = (dir: string, network: string) => LocalOverlayState | undefined;

/** Path of the state file for messages (the agent URI-encodes the network name). */
const stateFileOf = (dir: string, network: string): string => `${dir.replace(/\/+$/, '')}/${encodeURIComponent(network)}.json`;

/**
 * Thrown by ADD and CHECK in overlay mode when the host has no block of the network. When the
 * agent found the subnet full it says so (state.noBlock): PoolExhausted while every holder is
 * alive, TryAgainLater once a dead host's block is in its grace period (the agent claims it
 * when that ends). Otherwise the agent has not written a block (yet): TryAgainLater.
 */
export function missingOverlayState(conf: VxnetNetConf, now = Date.now()): VxnetError {
  const o = conf.overlay as OverlayConf;
  const short = o.state?.noBlock;
  if (short) return shortageError(conf.name, short, now, o.state?.hostId, o.stateFile);
  return new TryAgainLater(o.state
    ? `network ${conf.name}: the overlay state at ${o.stateFile} lists no block for this host yet; is vxnetd running with --store etcd://... and this network defined?`
    : `network ${conf.name}: no overlay state at ${o.stateFile}; is vxnetd running with --store etcd://... and this network defined?`);
}

const IPAM_RANGE_FIELDS = ['ranges', 'subnet', 'rangeStart', 'rangeEnd', 'gateway'] as const;

function overlayConf(name: string, conf: Record<string, unknown>, ipamRaw: Record<string, unknown>, ipamType: string,
  runtimeConfig: Record<string, unknown>, readOverlay: OverlayStateReader | undefined): { overlay: OverlayConf; ipam: IpamConf } {
  const dir = conf.overlayStateDir ?? DEFAULT_LOCAL_DIR;
  if (typeof dir !== 'string' || !dir.startsWith('/')) throw new InvalidNetworkConfig(`overlayStateDir: ${JSON.stringify(dir)} must be an absolute path`);
  if (ipamType !== 'vxnet-ipam') {
    throw new InvalidNetworkConfig(`ipam.type: ${JSON.stringify(ipamType)} cannot be used in overlay mode: addresses come from this host's blocks through vxnet's own IPAM (omit ipam.type or set "vxnet-ipam")`);
  }
  for (const f of IPAM_RANGE_FIELDS) {
    if (ipamRaw[f] !== undefined) {
      throw new InvalidNetworkConfig(`ipam.${f}: not allowed in overlay mode: addresses come from the blocks the overlay agent leased for this host (see ${stateFileOf(dir, name)})`);
    }
  }
  const state = readOverlay?.(dir, name);
  const blocks = state?.blocks ?? [];
  // runtimeConfig.ipRanges is ignored: the only ranges are this host's blocks.
  const { ipRanges: _ignored, ...rc } = runtimeConfig;
  const ipam: IpamConf = blocks.length > 0
    ? parseIpamConf(name, { ...ipamRaw, ranges: blockRanges(blocks) }, rc)
    // No block (yet): no ranges, but routes and dataDir still validated; DEL and GC need only the store.
    : { ...parseIpamConf(name, { ...ipamRaw, ranges: [[{ subnet: '192.0.2.0/24' }]] }, rc), rangeSets: [] };
  return {
    overlay: { stateDir: dir, stateFile: stateFileOf(dir, name), state, subnets: state ? subnetsOf(state) : blocks },
    ipam,
  };
}

/**
 * Canonicalizes the plugin's config. `readOverlay` is called in overlay mode only (the
 * plugin passes overlay/local's readLocalState).
 */
export function parseVxnetConf(conf: Record<string, unknown>, cniArgs: ReadonlyMap<string, string>, readOverlay?: OverlayStateReader): VxnetNetConf {
  const name = conf.name as string;
  const mode = conf.mode ?? 'bridge';
  if (mode !== 'bridge' && mode !== 'overlay') {
    throw new UnsupportedField(`mode: ${JSON.stringify(conf.mode)} is not supported (only "bridge" or "overlay")`);
  }
  const bridge = conf.bridge === undefined ? defaultBridgeName(name) : conf.bridge;
  if (typeof bridge !== 'string' || !IFNAME_RE.test(bridge)) {
    throw new InvalidNetworkConfig(`bridge: ${JSON.stringify(bridge)} is not a valid interface name (1-15 characters, no "/", ":" or whitespace)`);
  }
  let mtu = conf.mtu;
  if (mtu !== undefined && (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535)) {
    throw new InvalidNetworkConfig(`mtu: ${JSON.stringify(mtu)} must be an integer between 576 and 65535`);
  }
  const natTable = conf.natTable ?? 'vxnet';
  if (typeof natTable !== 'string' || !TABLE_RE.test(natTable)) throw new InvalidNetworkConfig(`natTable: ${JSON.stringify(natTable)} is not a valid nftables table name`);
  const isDefaultGateway = bool(conf, 'isDefaultGateway', false);
  const hairpinMode = bool(conf, 'hairpinMode', false);
  if (hairpinMode && bool(conf, 'promiscMode', false)) throw new InvalidNetworkConfig('hairpinMode and promiscMode cannot both be set');

  const ipamRaw = conf.ipam === undefined ? {} : conf.ipam;
  if (!isObject(ipamRaw)) throw new InvalidNetworkConfig('ipam: must be an object');
  const ipamType = ipamRaw.type === undefined ? 'vxnet-ipam' : ipamRaw.type;
  if (typeof ipamType !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(ipamType)) {
    throw new InvalidNetworkConfig(`ipam.type: ${JSON.stringify(ipamType)} is not a plugin name`);
  }
  const runtimeConfig = isObject(conf.runtimeConfig) ? conf.runtimeConfig : {};
  let ipam: IpamConf | undefined;
  let overlay: OverlayConf | undefined;
  if (mode === 'overlay') {
    ({ overlay, ipam } = overlayConf(name, conf, ipamRaw, ipamType, runtimeConfig, readOverlay));
    // Routed attachment (datapath/routed.ts): everything leaves a container through its gateway.
    if (conf.isGateway === false) throw new InvalidNetworkConfig('isGateway: false is not possible in overlay mode: containers are routed through their block\'s gateway (omit isGateway)');
    // The overlay MTU (underlay minus the VXLAN overhead, or the network's) unless mtu is set.
    if (overlay.state?.blocks.length) mtu ??= overlay.state.mtu;
    if (bool(conf, 'ipMasq', false) && overlay.state && !overlay.state.subnets?.length) {
      throw new InvalidNetworkConfig(`ipMasq: the overlay state at ${overlay.stateFile} does not list the network's subnets (a vxnetd that predates the field wrote it), and masquerading only the blocks would NAT traffic between hosts' containers; upgrade and restart vxnetd, or set ipMasq false`);
    }
  } else {
    ipam = ipamType === 'vxnet-ipam' ? parseIpamConf(name, ipamRaw, runtimeConfig) : undefined;
  }

  // MAC sources in the bridge plugin's precedence: CNI_ARGS MAC=, args.cni.mac, runtimeConfig.mac (last wins).
  let mac: unknown = cniArgs.get('MAC');
  if (isObject(conf.args) && isObject(conf.args.cni) && conf.args.cni.mac !== undefined) mac = conf.args.cni.mac;
  if (runtimeConfig.mac !== undefined) mac = runtimeConfig.mac;
  if (mac !== undefined && (typeof mac !== 'string' || !MAC_RE.test(mac))) throw new InvalidNetworkConfig(`mac: ${JSON.stringify(mac)} is not a MAC address`);

  return {
    name, overlay, bridge,
    isGateway: bool(conf, 'isGateway', true) || isDefaultGateway,
    ipMasq: bool(conf, 'ipMasq', false),
    mtu: mtu as number | undefined,
    hairpinMode, natTable, ipamType, ipam,
    mac: mac as string | undefined,
    prevResult: conf.prevResult === undefined ? undefined : parseResult(conf.prevResult),
    dns: isObject(conf.dns) ? (conf.dns as CniResult['dns']) : undefined,
    dnsState: dnsStateOf(conf),
  };
}
