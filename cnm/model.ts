// The Docker side of a vxnet network, as pure functions: pool ids, driver options (-o), the
// IPAM config a Docker network stands for, the names and MAC of an endpoint's veth pair, and
// the checks on Docker's request bodies. No I/O here; the driver's modules (cnm/README.md) do
// the work.
import { createHash } from 'node:crypto';
import { Cidr, Family, Ip, contains, defaultGatewayOf, familyBits, formatCidr, lastOf, networkOf, offsetIp, parseCidr, parseIp } from '../ipam/addr';
import { IpamConf, ipamConfOf } from '../ipam/config';
import { IpRange, hostRange } from '../ipam/range';
import type { LocalOverlayState } from '../overlay/local';
import { gatewayOf } from '../overlay/plan';
import { DecodingFailure, InvalidNetworkConfig, UnsupportedField } from '../lib/errors';
import { hostVethName } from '../datapath/names';
import { DOCKER_IFNAME } from '../ipam/docker';

/** Our address spaces (GetDefaultAddressSpaces): Docker hands them back in RequestPool and IPv4Data. */
export const LOCAL_ADDRESS_SPACE = 'vxnet';
export const GLOBAL_ADDRESS_SPACE = 'vxnet-global';

/** The key RequestGateway uses in RequestAddress Options. */
export const GATEWAY_REQUEST = 'com.docker.network.gateway';

import { isObject } from '../lib/guards';

// ---- request bodies ----

/** Parses a request body: empty means {}, anything else must be a JSON object. */
export function parseBody(text: string, method: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DecodingFailure(`${method}: the request body is not valid JSON (${(err as Error).message})`);
  }
  if (value === null) return {};
  if (!isObject(value)) throw new DecodingFailure(`${method}: the request body must be a JSON object`);
  return value;
}

/** A required non-empty string field. */
export function str(body: Record<string, unknown>, key: string, method: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v === '') throw new DecodingFailure(`${method}: "${key}" must be a non-empty string, got ${JSON.stringify(v ?? null)}`);
  return v;
}

/** An optional string field ('' when absent or null). */
export function optStr(body: Record<string, unknown>, key: string, method: string): string {
  const v = body[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new DecodingFailure(`${method}: "${key}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

/** An optional map of strings (null and absent are {}). */
export function strMap(body: Record<string, unknown>, key: string, method: string): Record<string, string> {
  const v = body[key];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new DecodingFailure(`${method}: "${key}" must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw new DecodingFailure(`${method}: "${key}.${k}" must be a string, got ${JSON.stringify(x)}`);
    out[k] = x;
  }
  return out;
}

/** Docker's ids are 64 hex digits; anything else is not from Docker. */
export function dockerId(body: Record<string, unknown>, key: string, method: string): string {
  const v = str(body, key, method);
  if (!/^[0-9a-f]{64}$/.test(v)) throw new DecodingFailure(`${method}: "${key}" must be 64 lowercase hex digits (a Docker id), got ${JSON.stringify(v)}`);
  return v;
}

export const shortId = (id: string): string => id.slice(0, 12);

// ---- pools ----

/** What RequestPool asked for; PoolID encodes it, so pools need no state of their own. */
export interface PoolSpec {
  /** The subnet, IPv4 or IPv6 (RequestPool's V6 says which Docker wants). */
  readonly pool: Cidr;
  /** --ip-range (--ip-range of the IPv6 --subnet for an IPv6 pool), when given. */
  readonly subPool: Cidr | undefined;
}

const POOL_PREFIX = 'vxnet:';

/**
 * vxnet:POOL[:SUBPOOL]. IPv6 CIDRs hold colons too; a CIDR always ends in /digits, so the
 * split is still unambiguous (the address before "/" has no "/", the prefix has no ":").
 */
export const poolId = (spec: PoolSpec): string =>
  `${POOL_PREFIX}${formatCidr(spec.pool)}${spec.subPool ? `:${formatCidr(spec.subPool)}` : ''}`;

const POOL_ID_RE = /^([0-9a-fA-F.:]+\/\d{1,3})(?::([0-9a-fA-F.:]+\/\d{1,3}))?$/;

/** A PoolID back into its spec, checked as RequestPool checked it (Docker hands back what we gave). */
export function parsePoolId(id: string, method: string): PoolSpec {
  const bad = (why: string): DecodingFailure => new DecodingFailure(`${method}: PoolID ${JSON.stringify(id)} is not a vxnet pool id (vxnet:CIDR[:CIDR]): ${why}`);
  if (!id.startsWith(POOL_PREFIX)) throw bad(`no "${POOL_PREFIX}" prefix`);
  const m = POOL_ID_RE.exec(id.slice(POOL_PREFIX.length));
  const pool = m ? parseCidr(m[1] ?? '') : undefined;
  const subPool = m?.[2] === undefined ? undefined : parseCidr(m[2]);
  if (!m || !pool || (m[2] !== undefined && !subPool)) throw bad('not CIDRs');
  const why = poolSpecProblem(pool, subPool, pool.ip.family);
  if (why) throw bad(why);
  return { pool, subPool };
}

const familyName = (family: Family): string => (family === 4 ? 'IPv4' : 'IPv6');
const exampleOf = (family: Family): string => (family === 4 ? '10.232.0.0/24' : 'fd00:232::/64');
/** The flag a pool of the family comes from, in the words of `docker network create`. */
const subnetFlag = (family: Family): string => (family === 4 ? '--subnet' : '--subnet (IPv6, with --ipv6)');

/** What is wrong with a pool of `family` and its --ip-range, in the flags' words; undefined when nothing. */
function poolSpecProblem(pool: Cidr, subPool: Cidr | undefined, family: Family): string | undefined {
  const text = formatCidr(pool);
  if (pool.ip.family !== family) return `${subnetFlag(family)} ${text} is not an ${familyName(family)} CIDR such as ${exampleOf(family)}`;
  const net = networkOf(pool);
  if (net.ip.value !== pool.ip.value) return `--subnet ${text} has host bits set; the network is ${formatCidr(net)}`;
  const most = familyBits(family) - 2;
  if (pool.prefix > most) return `--subnet ${text} is too small to allocate from (at most /${most})`;
  if (!subPool) return undefined;
  const sub = formatCidr(subPool);
  if (subPool.ip.family !== family) return `--ip-range ${sub} is not an ${familyName(family)} CIDR`;
  if (subPool.prefix < pool.prefix || !contains(pool, subPool.ip)) return `--ip-range ${sub} is not inside --subnet ${text}`;
  const { first, last } = hostBounds({ pool, subPool });
  if (first > last) return `--ip-range ${sub} holds no host address of --subnet ${text}`;
  return undefined;
}

/** What RequestPool asks for: a pool spec, or (no --subnet) the vxnet network whose subnet of that family it is. */
export type PoolRequest =
  | { readonly kind: 'spec'; readonly spec: PoolSpec }
  | { readonly kind: 'network'; readonly network: string; readonly family: Family };

/** The --ipam-opt key that ties a pool without --subnet to a vxnet network. */
export const IPAM_NETWORK_OPTION = 'network';

/**
 * Checks a RequestPool body: a pool given with --subnet (IPv6 when V6), or none with
 * `--ipam-opt network=NAME`, which the driver answers with that vxnet network's subnet.
 */
export function parsePoolRequest(body: Record<string, unknown>): PoolRequest {
  const m = 'RequestPool';
  const space = optStr(body, 'AddressSpace', m);
  const pool = optStr(body, 'Pool', m);
  const sub = optStr(body, 'SubPool', m);
  const options = strMap(body, 'Options', m);
  if (body.V6 !== undefined && body.V6 !== null && typeof body.V6 !== 'boolean') throw new DecodingFailure(`${m}: "V6" must be true or false`);
  const family: Family = body.V6 === true ? 6 : 4;
  if (space !== '' && space !== LOCAL_ADDRESS_SPACE) {
    throw new UnsupportedField(`address space ${JSON.stringify(space)} is not supported: vxnet networks are local (address space "${LOCAL_ADDRESS_SPACE}")`);
  }
  const named = options[IPAM_NETWORK_OPTION];
  if (named !== undefined && !NETWORK_NAME_RE.test(named)) {
    throw new InvalidNetworkConfig(`--ipam-opt ${IPAM_NETWORK_OPTION}=${named}: not a valid network name (letters, digits, "_", ".", "-"; starting with a letter or digit)`);
  }
  if (pool === '') {
    if (sub !== '') throw new InvalidNetworkConfig('--ip-range needs --subnet');
    if (named !== undefined) return { kind: 'network', network: named, family };
    throw new InvalidNetworkConfig(family === 4
      ? 'vxnet needs the subnet of the network: docker network create --subnet CIDR ... (or --ipam-opt network=NAME for an existing vxnet network)'
      : 'vxnet needs the IPv6 subnet of the network: docker network create --ipv6 --subnet CIDR --subnet IPV6-CIDR ... (or --ipam-opt network=NAME for an existing dual-stack vxnet network)');
  }
  const cidr = parseCidr(pool);
  if (!cidr) throw new InvalidNetworkConfig(`${subnetFlag(family)} ${JSON.stringify(pool)} is not an ${familyName(family)} CIDR such as ${exampleOf(family)}`);
  let subPool: Cidr | undefined;
  if (sub !== '') {
    const parsed = parseCidr(sub);
    if (!parsed) throw new InvalidNetworkConfig(`--ip-range ${JSON.stringify(sub)} is not an ${familyName(family)} CIDR`);
    subPool = networkOf(parsed);
  }
  const why = poolSpecProblem(cidr, subPool, family);
  if (why) throw new InvalidNetworkConfig(why);
  return { kind: 'spec', spec: { pool: cidr, subPool } };
}

/** Checks a RequestPool body that gives --subnet (the IPv4 and IPv6 pools alike). */
export function requestPoolSpec(body: Record<string, unknown>): PoolSpec {
  const r = parsePoolRequest(body);
  if (r.kind !== 'spec') throw new InvalidNetworkConfig('vxnet needs the subnet of the network: docker network create --subnet CIDR ...');
  return r.spec;
}

/** The gateway a network gets when --gateway is not given: the first address, as CNI's default. Pure. */
export const defaultGateway = (pool: Cidr): Ip => defaultGatewayOf(pool);

/** The host addresses a pool hands out: the subnet's (IPv4: less the broadcast), cut to --ip-range when given. */
function hostBounds(spec: PoolSpec): { first: bigint; last: bigint } {
  const first = offsetIp(networkOf(spec.pool).ip, 1n).value;
  const end = lastOf(spec.pool);
  const last = spec.pool.ip.family === 4 ? offsetIp(end, -1n).value : end.value;
  if (!spec.subPool) return { first, last };
  const from = networkOf(spec.subPool).ip.value;
  const to = lastOf(spec.subPool).value;
  return { first: from > first ? from : first, last: to < last ? to : last };
}

/** The host-local style range of a pool: the whole subnet, or --ip-range cut to the subnet's host addresses. */
export function poolRange(spec: PoolSpec, gateway: Ip): IpRange {
  const { first, last } = hostBounds(spec);
  const family = spec.pool.ip.family;
  return hostRange(networkOf(spec.pool), { gateway, rangeStart: { family, value: first }, rangeEnd: { family, value: last } }, `pool ${poolId(spec)}`);
}

/** One family's pool of a Docker network with its gateway. */
export interface FamilyPool {
  readonly spec: PoolSpec;
  readonly gateway: Ip;
}

/**
 * The IPAM config a Docker network stands for, keyed by the vxnet network name: one range set
 * per family, IPv4 first, as a dual-stack CNI config lists them, so both sides register the
 * same pool definition.
 */
export function ipamConfFor(network: string, spec: PoolSpec, gateway: Ip, v6?: FamilyPool): IpamConf {
  return ipamConfOf(network, [[poolRange(spec, gateway)], ...(v6 ? [[poolRange(v6.spec, v6.gateway)]] : [])]);
}

/** The range sets of a config that hand out addresses of one family (Docker asks one address per family). */
export const setsOfFamily = (conf: IpamConf, family: Family): number[] =>
  conf.rangeSets.flatMap((set, i) => (set[0]?.subnet.ip.family === family ? [i] : []));

/**
 * The IPAM config of an overlay network on this host: one range set per block of this host,
 * from the address after the block's gateway, as the CNI plugin's overlay mode builds it
 * (overlay/local.ts blockRanges), so both sides register the same pool definition.
 */
export function overlayIpamConf(ov: LocalOverlayState): IpamConf {
  return ipamConfOf(ov.network, ov.blocks.map((block) => {
    const gateway = gatewayOf(block);
    return [hostRange(block, { gateway, rangeStart: offsetIp(gateway, 1n) }, `overlay network "${ov.network}" block ${formatCidr(block)}`)];
  }));
}

// ---- driver options ----

export interface NetworkOptions {
  /** The vxnet network this Docker network is (-o network=NAME); undefined: the Docker network's name. */
  readonly network: string | undefined;
  /** Linux bridge (-o bridge=NAME); undefined: the network's existing bridge, else vx-<network>. */
  readonly bridge: string | undefined;
  readonly mtu: number | undefined;
  readonly ipMasq: boolean;
  readonly natTable: string;
  readonly internal: boolean;
}

/** The -o keys vxnet reads, with Docker's bridge driver spellings as synonyms. */
export const OPTION_KEYS: Record<string, keyof NetworkOptions> = {
  network: 'network',
  bridge: 'bridge',
  'com.docker.network.bridge.name': 'bridge',
  mtu: 'mtu',
  'com.docker.network.driver.mtu': 'mtu',
  ipMasq: 'ipMasq',
  ipmasq: 'ipMasq',
  'com.docker.network.bridge.enable_ip_masquerade': 'ipMasq',
  natTable: 'natTable',
  nattable: 'natTable',
};

const IFNAME_RE = /^[^/:\s]{1,15}$/;
const TABLE_RE = /^[a-zA-Z][a-zA-Z0-9_-]{0,31}$/;
/** CNI's rule for network names (libcni), which Docker's names also follow. */
export const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function parseBool(key: string, v: string): boolean {
  if (/^(true|1|yes|on)$/i.test(v)) return true;
  if (/^(false|0|no|off)$/i.test(v)) return false;
  throw new InvalidNetworkConfig(`-o ${key}=${v}: must be true or false`);
}

/** Parses CreateNetwork's Options: the -o map ("com.docker.network.generic") and Docker's flags. */
export function parseNetworkOptions(options: unknown): NetworkOptions {
  const m = 'CreateNetwork';
  if (options !== undefined && options !== null && !isObject(options)) throw new DecodingFailure(`${m}: "Options" must be an object`);
  const o = options ?? {};
  const genericRaw = o['com.docker.network.generic'];
  if (genericRaw !== undefined && genericRaw !== null && !isObject(genericRaw)) throw new DecodingFailure(`${m}: "Options.com.docker.network.generic" must be an object`);
  const internal = o['com.docker.network.internal'] === true;
  const out: { -readonly [K in keyof NetworkOptions]: NetworkOptions[K] } = {
    network: undefined, bridge: undefined, mtu: undefined, ipMasq: !internal, natTable: 'vxnet', internal,
  };
  for (const [key, raw] of Object.entries(genericRaw ?? {})) {
    const field = OPTION_KEYS[key];
    if (!field) {
      if (key.startsWith('com.docker.')) continue; // Docker's own, not for us
      throw new InvalidNetworkConfig(`-o ${key}: unknown option; vxnet reads ${['network', 'bridge', 'mtu', 'ipMasq', 'natTable'].join(', ')}`);
    }
    const v = typeof raw === 'string' ? raw : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;
    if (v === undefined) throw new InvalidNetworkConfig(`-o ${key}: must be a string`);
    switch (field) {
      case 'network':
        if (!NETWORK_NAME_RE.test(v)) throw new InvalidNetworkConfig(`-o ${key}=${v}: not a valid network name (letters, digits, "_", ".", "-"; starting with a letter or digit)`);
        out.network = v;
        break;
      case 'bridge':
        if (!IFNAME_RE.test(v)) throw new InvalidNetworkConfig(`-o ${key}=${v}: not a valid interface name (1-15 characters, no "/", ":" or whitespace)`);
        out.bridge = v;
        break;
      case 'mtu': {
        const n = Number(v);
        if (!/^\d+$/.test(v) || n < 576 || n > 65535) throw new InvalidNetworkConfig(`-o ${key}=${v}: must be an integer between 576 and 65535`);
        out.mtu = n;
        break;
      }
      case 'ipMasq':
        out.ipMasq = parseBool(key, v);
        if (internal && out.ipMasq) throw new InvalidNetworkConfig(`-o ${key}=${v}: an --internal network is not masqueraded`);
        break;
      case 'natTable':
        if (!TABLE_RE.test(v)) throw new InvalidNetworkConfig(`-o ${key}=${v}: not a valid nftables table name`);
        out.natTable = v;
        break;
      default:
        break;
    }
  }
  return out;
}

/** One IPv4Data or IPv6Data entry of CreateNetwork. */
export interface PoolData {
  readonly addressSpace: string;
  readonly pool: Cidr;
  readonly gateway: Cidr;
}

/** CreateNetwork's pools: the IPv4 one, and the IPv6 one of a network created with --ipv6. */
export interface NetworkPools {
  readonly v4: PoolData;
  readonly v6: PoolData | undefined;
}

/** The one entry of IPv4Data or IPv6Data; undefined when the list is empty. */
function familyData(body: Record<string, unknown>, family: Family): PoolData | undefined {
  const m = 'CreateNetwork';
  const key = family === 4 ? 'IPv4Data' : 'IPv6Data';
  const list = body[key];
  if (family === 6 && (list === undefined || list === null)) return undefined;
  if (!Array.isArray(list)) throw new DecodingFailure(`${m}: "${key}" must be a list`);
  if (list.length === 0) return undefined;
  if (list.length > 1) throw new UnsupportedField(`a vxnet network has one ${familyName(family)} subnet; this one has ${list.length}`);
  const d = list[0] as unknown;
  if (!isObject(d)) throw new DecodingFailure(`${m}: "${key}[0]" must be an object`);
  const space = optStr(d, 'AddressSpace', m);
  const pool = parseCidr(str(d, 'Pool', m));
  if (!pool || pool.ip.family !== family) throw new DecodingFailure(`${m}: "${key}[0].Pool" ${JSON.stringify(d.Pool)} is not an ${familyName(family)} CIDR`);
  const gwText = optStr(d, 'Gateway', m);
  const gateway = gwText === '' ? { ip: defaultGateway(pool), prefix: pool.prefix } : parseCidr(gwText);
  if (!gateway || !contains(networkOf(pool), gateway.ip)) throw new DecodingFailure(`${m}: "${key}[0].Gateway" ${JSON.stringify(gwText)} is not an address of ${formatCidr(pool)}`);
  const aux = d.AuxAddresses;
  if (isObject(aux) && Object.keys(aux).length > 0) throw new UnsupportedField('--aux-address is not supported by vxnet');
  return { addressSpace: space, pool: networkOf(pool), gateway };
}

export function parsePoolData(body: Record<string, unknown>): NetworkPools {
  const v4 = familyData(body, 4);
  if (!v4) throw new InvalidNetworkConfig('a vxnet network needs an IPv4 subnet: docker network create --ipam-driver vxnet --subnet CIDR ...');
  const v6 = familyData(body, 6);
  if (v6 && v6.addressSpace !== v4.addressSpace) throw new UnsupportedField(`the IPv6 pool comes from address space "${v6.addressSpace}", the IPv4 pool from "${v4.addressSpace}": give both to --ipam-driver vxnet`);
  return { v4, v6 };
}

// ---- endpoint names ----

/** Host end of an endpoint's veth pair: what CNI would call it for (endpoint id, "docker"), so vxnetctl finds it too. */
export const endpointHostVeth = (endpointId: string): string => hostVethName(endpointId, DOCKER_IFNAME);

/**
 * Container end, in the host namespace until Docker moves it into the sandbox and renames it
 * eth<n>: "vxy" + 12 hex. "y" is not a hex digit, so no host veth name ("vx" + hex) starts so.
 */
export const CONTAINER_VETH_PREFIX = 'vxy';
export const endpointContainerVeth = (endpointId: string): string =>
  CONTAINER_VETH_PREFIX + createHash('sha256').update(`container/${endpointId}`).digest('hex').slice(0, 12);

/** A stable, locally administered unicast MAC for an endpoint. */
export function endpointMac(endpointId: string): string {
  const h = createHash('sha256').update(`mac/${endpointId}`).digest();
  h[0] = (h[0] & 0xfe) | 0x02;
  return [...h.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The bare address of "ip/len" or "ip"; undefined when it is neither. */
export function bareIp(text: string): Ip | undefined {
  return parseIp(text.split('/')[0] ?? '');
}
