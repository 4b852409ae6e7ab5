// The vxnet plugin's network configuration, canonicalized once: defaults filled in and every
// invalid field rejected with its name (InvalidNetworkConfig, code 7). Pure.
import { InvalidNetworkConfig, UnsupportedField } from '../lib/errors';
import { IpamConf, parseIpamConf } from '../ipam/config';
import { defaultBridgeName } from './names';
import { CniResult, parseResult } from './result';

export interface VxnetNetConf {
  readonly name: string;
  readonly bridge: string;
  readonly isGateway: boolean;
  readonly isDefaultGateway: boolean;
  readonly ipMasq: boolean;
  readonly mtu: number | undefined;
  readonly hairpinMode: boolean;
  /** nftables table (family ip/ip6) vxnet keeps its NAT in. */
  readonly natTable: string;
  /** In-process IPAM (type vxnet-ipam or absent), or the name of a plugin to exec from CNI_PATH. */
  readonly ipamType: string;
  /** Canonical IPAM config; undefined when IPAM is delegated to another plugin. */
  readonly ipam: IpamConf | undefined;
  readonly rawIpam: Record<string, unknown>;
  readonly mac: string | undefined;
  readonly aliases: readonly string[];
  readonly prevResult: CniResult | undefined;
  readonly dns: CniResult['dns'];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const IFNAME_RE = /^[^/:\s]{1,15}$/;
const MAC_RE = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;
const TABLE_RE = /^[a-zA-Z][a-zA-Z0-9_-]{0,31}$/;

function bool(conf: Record<string, unknown>, key: string, def: boolean): boolean {
  const v = conf[key];
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw new InvalidNetworkConfig(`${key}: ${JSON.stringify(v)} must be true or false`);
  return v;
}

export function parseVxnetConf(conf: Record<string, unknown>, cniArgs: ReadonlyMap<string, string>): VxnetNetConf {
  const name = conf.name as string;
  if (conf.mode !== undefined && conf.mode !== 'bridge') {
    throw new UnsupportedField(`mode: ${JSON.stringify(conf.mode)} is not supported by this version (only "bridge")`);
  }
  const bridge = conf.bridge === undefined ? defaultBridgeName(name) : conf.bridge;
  if (typeof bridge !== 'string' || !IFNAME_RE.test(bridge)) {
    throw new InvalidNetworkConfig(`bridge: ${JSON.stringify(bridge)} is not a valid interface name (1-15 characters, no "/", ":" or whitespace)`);
  }
  const mtu = conf.mtu;
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
  const ipam = ipamType === 'vxnet-ipam' ? parseIpamConf(name, ipamRaw, runtimeConfig) : undefined;

  // MAC sources in the bridge plugin's precedence: CNI_ARGS MAC=, args.cni.mac, runtimeConfig.mac (last wins).
  let mac: unknown = cniArgs.get('MAC');
  if (isObject(conf.args) && isObject(conf.args.cni) && conf.args.cni.mac !== undefined) mac = conf.args.cni.mac;
  if (runtimeConfig.mac !== undefined) mac = runtimeConfig.mac;
  if (mac !== undefined && (typeof mac !== 'string' || !MAC_RE.test(mac))) throw new InvalidNetworkConfig(`mac: ${JSON.stringify(mac)} is not a MAC address`);

  const aliases = runtimeConfig.aliases;
  const aliasList = Array.isArray(aliases) ? aliases.filter((a): a is string => typeof a === 'string') : [];

  return {
    name, bridge,
    isGateway: bool(conf, 'isGateway', true) || isDefaultGateway,
    isDefaultGateway,
    ipMasq: bool(conf, 'ipMasq', false),
    mtu: mtu as number | undefined,
    hairpinMode, natTable, ipamType, ipam, rawIpam: ipamRaw,
    mac: mac as string | undefined,
    aliases: aliasList,
    prevResult: conf.prevResult === undefined ? undefined : parseResult(conf.prevResult),
    dns: isObject(conf.dns) ? (conf.dns as CniResult['dns']) : undefined,
  };
}
