// VIP labels, DC/OS's (Marathon's) spelling: `VIP_<n>=/NAME:PORT` (a named VIP, its address
// derived from the name: ./address.ts) or `VIP_<n>=IP:PORT` (`[V6]:PORT` for IPv6), optionally
// prefixed `tcp://` or `udp://`. n is the endpoint's port index (`Endpoint.ports[n]`): the VIP's
// PORT fronts the endpoint's port n, so a VIP on 80 can front containers listening on 8080.
// Without a prefix the protocol is port n's. Pure: no I/O.
//
// Names are one DNS label (they become NAME.l4lb.DOMAIN): lower-cased, a leading "/" (DC/OS's
// app ids) dropped. DC/OS squashed `/group/app` into `groupapp`; that makes two ids one name
// without anyone noticing, so a "/" inside a name is refused instead.
import type { Endpoint } from '../catalog/endpoint';
import { type Ip, formatIp, parseIp } from '../ipam/addr';
import { InvalidVip } from '../lib/errors';

export type VipProtocol = 'tcp' | 'udp';

/** One VIP label as written: what it asks for, before the endpoint's port is looked up. */
export interface VipLabel {
  /** The label's key, as written (`VIP_0`). */
  readonly key: string;
  /** n of `VIP_<n>`: the endpoint's port index. */
  readonly index: number;
  /** Given by `tcp://` / `udp://`; else the endpoint's port n decides. */
  readonly protocol?: VipProtocol;
  /** A named VIP's name (one DNS label, lower case); or `ip`. */
  readonly name?: string;
  readonly ip?: Ip;
  /** The VIP's port: what clients connect to. */
  readonly port: number;
}

/** A VIP label resolved against its endpoint: the VIP's identity and the endpoint's port behind it. */
export interface VipRef {
  readonly key: string;
  readonly name?: string;
  readonly ip?: Ip;
  readonly protocol: VipProtocol;
  readonly port: number;
  /** The endpoint's port n: where the backends listen. */
  readonly targetPort: number;
}

const KEY = /^vip_(\d{1,3})$/i;
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** True for keys of the form VIP_<n> (any case, as DC/OS accepted `vip_0`). */
export const isVipKey = (key: string): boolean => KEY.test(key);

function parsePort(text: string, what: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new InvalidVip(`${what}: port ${JSON.stringify(text)} is not 1-65535`);
  return port;
}

/** Parses one `VIP_<n>` label; throws InvalidVip saying what is wrong with it. */
export function parseVipLabel(key: string, value: string): VipLabel {
  const what = `${key}=${value}`;
  const k = KEY.exec(key);
  if (!k) throw new InvalidVip(`${what}: the key is not VIP_<n>`);
  const index = Number(k[1]);
  let rest = value.trim();
  let protocol: VipProtocol | undefined;
  const scheme = /^(tcp|udp):\/\//i.exec(rest);
  if (scheme) {
    protocol = (scheme[1] as string).toLowerCase() as VipProtocol;
    rest = rest.slice(scheme[0].length);
  } else {
    const other = /^([a-z][a-z0-9+.-]*):\/\//i.exec(rest);
    if (other) throw new InvalidVip(`${what}: protocol ${JSON.stringify(other[1])} is neither tcp nor udp`);
  }
  if (rest.startsWith('/')) {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw new InvalidVip(`${what}: expected /NAME:PORT`);
    const name = rest.slice(1, colon).toLowerCase();
    if (!NAME.test(name)) {
      throw new InvalidVip(`${what}: VIP name ${JSON.stringify(rest.slice(1, colon))} is not one DNS label (1-63 of a-z, 0-9, "-", not starting or ending with "-")`);
    }
    return { key, index, ...(protocol ? { protocol } : {}), name, port: parsePort(rest.slice(colon + 1), what) };
  }
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2] as string;
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0 || rest.indexOf(':') !== colon) throw new InvalidVip(`${what}: expected /NAME:PORT, IPV4:PORT or [IPV6]:PORT`);
    host = rest.slice(0, colon);
    portText = rest.slice(colon + 1);
  }
  const ip = parseIp(host);
  if (!ip || (v6 && ip.family !== 6)) throw new InvalidVip(`${what}: ${JSON.stringify(host)} is not an IP address`);
  return { key, index, ...(protocol ? { protocol } : {}), ip, port: parsePort(portText, what) };
}

/** The text a VIP is known by: `/web:80/tcp`, `10.0.0.1:80/udp`, `[fd00::1]:80/tcp`. */
export function vipKey(v: { name?: string; ip?: Ip; protocol: VipProtocol; port: number }): string {
  const where = v.name !== undefined ? `/${v.name}` : v.ip ? (v.ip.family === 6 ? `[${formatIp(v.ip)}]` : formatIp(v.ip)) : '?';
  return `${where}:${v.port}/${v.protocol}`;
}

export interface EndpointVips {
  readonly refs: VipRef[];
  /** Label key -> why it was ignored. */
  readonly problems: Map<string, string>;
}

/** The VIPs an endpoint's labels ask for, each resolved against its port n. Never throws: bad labels are problems. */
export function vipRefsOf(e: Endpoint): EndpointVips {
  const refs: VipRef[] = [];
  const problems = new Map<string, string>();
  for (const [key, value] of Object.entries(e.labels)) {
    if (!isVipKey(key)) continue;
    try {
      const label = parseVipLabel(key, value);
      const target = e.ports[label.index];
      if (!target) {
        const have = e.ports.length ? e.ports.map((p, i) => `${i}: ${p.port}/${p.protocol}`).join(', ') : 'none';
        throw new InvalidVip(`${key}=${value}: the endpoint has no port ${label.index} (its ports: ${have}; set vxnet.ports or expose ports)`);
      }
      refs.push({
        key, ...(label.name !== undefined ? { name: label.name } : {}), ...(label.ip ? { ip: label.ip } : {}),
        protocol: label.protocol ?? target.protocol, port: label.port, targetPort: target.port,
      });
    } catch (err) {
      if (!(err instanceof InvalidVip)) throw err;
      problems.set(key, err.message);
    }
  }
  return { refs, problems };
}
