// vxnetd's own records of the Docker networks it drives, one JSON file per network under
// <data-dir>/docker/networks/ (written to a temporary file and renamed, so a kill -9 leaves
// the old record or the new one). Addresses are not here: they live in the IPAM store with
// everyone else's. Endpoints are not here either: an endpoint is its allocation (containerId =
// endpoint id) plus names derived from its id, so nothing about it can go stale.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Cidr, formatCidr, parseCidr } from '../ipam/addr';
import { IoFailure } from '../lib/errors';
import { NETWORK_NAME_RE, type NetworkOptions } from './model';
import { isObject } from '../lib/guards';

/**
 * How a network attaches: `bridge` (one host, a Linux bridge) or `overlay` (its subnet is an
 * overlay network's: routed over the agent's VXLAN device). Decided once, when the network is
 * created or recovered, from the overlay agent's local state.
 */
export type NetworkMode = 'bridge' | 'overlay';

export interface NetworkRecord {
  /** Docker's network id. */
  readonly id: string;
  /** The Docker network's name, once known (Docker's CreateNetwork does not carry it). */
  readonly dockerName?: string;
  /** The vxnet network (the IPAM store's key): -o network, else the Docker network's name. */
  readonly name?: string;
  /** IPv4 subnet (a network address). */
  readonly pool: Cidr;
  /** Gateway address with the prefix Docker gives containers. */
  readonly gateway: Cidr;
  /** The IPv6 subnet and gateway of a network created with --ipv6 (dual stack); absent: IPv4 only. */
  readonly v6?: { readonly pool: Cidr; readonly gateway: Cidr };
  readonly options: NetworkOptions;
  /** Undefined only in records written before the field existed (see Networks.isOverlay). */
  readonly mode?: NetworkMode;
  /** A network of another driver that only uses vxnet's IPAM (no CreateNetwork came). */
  readonly ipamOnly?: boolean;
  /** Epoch ms. */
  readonly created: number;
}

/** A record whose vxnet network name is bound. */
export type BoundRecord = NetworkRecord & { readonly name: string };

/** The file's JSON: the record with its addresses as text. */
export function encodeRecord(r: NetworkRecord): string {
  const { v6, ...rest } = r;
  return `${JSON.stringify({
    ...rest, pool: formatCidr(r.pool), gateway: formatCidr(r.gateway), ...(v6 ? { pool6: formatCidr(v6.pool), gateway6: formatCidr(v6.gateway) } : {}),
  }, null, 2)}\n`;
}

function decodeOptions(v: unknown): NetworkOptions {
  if (!isObject(v)) throw new Error('"options" is not an object');
  const optional = <T>(key: string, ok: (x: unknown) => x is T): T | undefined => {
    const x = v[key];
    if (x === undefined || x === null) return undefined;
    if (!ok(x)) throw new Error(`"options.${key}" is ${JSON.stringify(x)}`);
    return x;
  };
  const isString = (x: unknown): x is string => typeof x === 'string';
  const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);
  const isBool = (x: unknown): x is boolean => typeof x === 'boolean';
  const network = optional('network', (x): x is string => isString(x) && NETWORK_NAME_RE.test(x));
  const natTable = optional('natTable', isString);
  const ipMasq = optional('ipMasq', isBool);
  const internal = optional('internal', isBool) ?? false;
  return {
    network, bridge: optional('bridge', isString), mtu: optional('mtu', isNumber),
    ipMasq: ipMasq ?? !internal, natTable: natTable ?? 'vxnet', internal,
  };
}

/** A record from its file's text; throws an Error saying what is wrong. */
export function decodeRecord(text: string): NetworkRecord {
  const v: unknown = JSON.parse(text);
  if (!isObject(v)) throw new Error('not a network record');
  if (typeof v.id !== 'string' || !/^[0-9a-f]{64}$/.test(v.id)) throw new Error('"id" is not a Docker id');
  const pool = typeof v.pool === 'string' ? parseCidr(v.pool) : undefined;
  if (!pool || pool.ip.family !== 4) throw new Error(`"pool" ${JSON.stringify(v.pool)} is not an IPv4 CIDR`);
  const gateway = typeof v.gateway === 'string' ? parseCidr(v.gateway) : undefined;
  if (!gateway || gateway.ip.family !== 4) throw new Error(`"gateway" ${JSON.stringify(v.gateway)} is not an IPv4 address/prefix`);
  let v6: NetworkRecord['v6'];
  if (v.pool6 !== undefined || v.gateway6 !== undefined) {
    const pool6 = typeof v.pool6 === 'string' ? parseCidr(v.pool6) : undefined;
    if (!pool6 || pool6.ip.family !== 6) throw new Error(`"pool6" ${JSON.stringify(v.pool6 ?? null)} is not an IPv6 CIDR`);
    const gateway6 = typeof v.gateway6 === 'string' ? parseCidr(v.gateway6) : undefined;
    if (!gateway6 || gateway6.ip.family !== 6) throw new Error(`"gateway6" ${JSON.stringify(v.gateway6 ?? null)} is not an IPv6 address/prefix`);
    v6 = { pool: pool6, gateway: gateway6 };
  }
  const optionalText = (key: string): string | undefined => {
    const x = v[key];
    if (x === undefined) return undefined;
    if (typeof x !== 'string') throw new Error(`"${key}" is ${JSON.stringify(x)}`);
    return x;
  };
  const name = optionalText('name');
  if (name !== undefined && !NETWORK_NAME_RE.test(name)) throw new Error(`"name" ${JSON.stringify(name)} is not a network name`);
  const dockerName = optionalText('dockerName');
  const mode = optionalText('mode');
  if (mode !== undefined && mode !== 'bridge' && mode !== 'overlay') throw new Error(`"mode" ${JSON.stringify(mode)} is neither bridge nor overlay`);
  const created = typeof v.created === 'number' ? v.created : 0;
  return {
    id: v.id, pool, gateway, ...(v6 ? { v6 } : {}), options: decodeOptions(v.options), created,
    ...(name !== undefined ? { name } : {}), ...(dockerName !== undefined ? { dockerName } : {}),
    ...(mode !== undefined ? { mode } : {}), ...(v.ipamOnly === true ? { ipamOnly: true } : {}),
  };
}

export class NetworkRecords {
  private readonly dir: string;
  private readonly byId = new Map<string, NetworkRecord>();

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'docker', 'networks');
  }

  /** Reads every record; unreadable files are reported and skipped. */
  load(onBad: (file: string, err: Error) => void): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const f of fs.readdirSync(this.dir)) {
      if (!f.endsWith('.json')) continue;
      const file = path.join(this.dir, f);
      try {
        const r = decodeRecord(fs.readFileSync(file, 'utf8'));
        if (`${r.id}.json` !== f) throw new Error(`the record of network ${r.id.slice(0, 12)} is in the wrong file`);
        this.byId.set(r.id, r);
      } catch (err) {
        onBad(file, err as Error);
      }
    }
  }

  get(id: string): NetworkRecord | undefined {
    return this.byId.get(id);
  }

  all(): NetworkRecord[] {
    return [...this.byId.values()];
  }

  put(r: NetworkRecord): void {
    const file = path.join(this.dir, `${r.id}.json`);
    const tmp = `${file}.tmp`;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeSync(fd, encodeRecord(r));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
    } catch (err) {
      throw new IoFailure(`cannot record docker network ${r.id.slice(0, 12)} in ${this.dir}: ${(err as Error).message}`);
    }
    this.byId.set(r.id, r);
  }

  delete(id: string): void {
    try {
      fs.rmSync(path.join(this.dir, `${id}.json`), { force: true });
    } catch (err) {
      throw new IoFailure(`cannot remove the record of docker network ${id.slice(0, 12)}: ${(err as Error).message}`);
    }
    this.byId.delete(id);
  }
}
