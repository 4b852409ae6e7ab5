// How endpoints are kept in etcd: one key per endpoint, `PREFIX HOST/ID` with HOST and the
// endpoint id URI-escaped (an id holds slashes: HOST/NETWORK/CONTAINERID), the value the
// Endpoint as JSON. Pure. What is read back is validated field by field: a value another
// version or a hand-edit wrote must be skipped, never reach the DNS zone half-formed.
import type { Endpoint, EndpointHealth, EndpointPort } from './endpoint';

const HEALTH: readonly EndpointHealth[] = ['starting', 'healthy', 'unhealthy'];

export const DEFAULT_PREFIX = '/vxnet/endpoints/';

/** The key prefix of every endpoint of one host. */
export const hostPrefix = (prefix: string, host: string): string => `${prefix}${encodeURIComponent(host)}/`;

export const endpointKey = (prefix: string, e: Pick<Endpoint, 'host' | 'id'>): string => `${hostPrefix(prefix, e.host)}${encodeURIComponent(e.id)}`;

/** The host and endpoint id a key names, or undefined for a key of another shape. */
export function parseEndpointKey(prefix: string, key: string): { host: string; id: string } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1 || rest.indexOf('/', slash + 1) !== -1) return undefined;
  try {
    return { host: decodeURIComponent(rest.slice(0, slash)), id: decodeURIComponent(rest.slice(slash + 1)) };
  } catch {
    return undefined;
  }
}

/** The value written for an endpoint. */
export const encodeEndpoint = (e: Endpoint): string => JSON.stringify(normalise(e));

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

function port(v: unknown): EndpointPort | undefined {
  if (!isRecord(v)) return undefined;
  const { port: p, protocol, name } = v;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) return undefined;
  if (protocol !== 'tcp' && protocol !== 'udp') return undefined;
  if (name !== undefined && typeof name !== 'string') return undefined;
  return { port: p, protocol, ...(name !== undefined ? { name } : {}) };
}

/** Only the Endpoint's own fields, in one order: equal endpoints encode to equal text. */
function normalise(e: Endpoint): Endpoint {
  return {
    id: e.id, host: e.host, runtime: e.runtime, containerId: e.containerId, network: e.network, name: e.name,
    aliases: [...e.aliases], addresses: [...e.addresses], labels: { ...e.labels },
    ports: e.ports.map((p) => ({ port: p.port, protocol: p.protocol, ...(p.name !== undefined ? { name: p.name } : {}) })),
    ...(e.service !== undefined ? { service: e.service } : {}),
    ...(e.health !== undefined ? { health: e.health } : {}),
  };
}

/**
 * The endpoint a key's value holds, or the reason it cannot be used: not JSON, a field
 * missing or of the wrong type, or an id or host other than the key's.
 */
export function decodeEndpoint(prefix: string, key: string, value: string): { endpoint: Endpoint } | { error: string } {
  const k = parseEndpointKey(prefix, key);
  if (!k) return { error: 'not an endpoint key (PREFIX HOST/ID)' };
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    return { error: 'value is not JSON' };
  }
  if (!isRecord(raw)) return { error: 'value is not an object' };
  for (const f of ['id', 'host', 'runtime', 'containerId', 'network', 'name'] as const) {
    if (typeof raw[f] !== 'string') return { error: `${f}: not a string` };
  }
  if (raw.id !== k.id) return { error: `id ${JSON.stringify(raw.id)} is not the key's ${JSON.stringify(k.id)}` };
  if (raw.host !== k.host) return { error: `host ${JSON.stringify(raw.host)} is not the key's ${JSON.stringify(k.host)}` };
  // Ids are HOST/NETWORK/CONTAINERID: an entry must not claim another host's endpoint.
  if (!k.id.startsWith(`${k.host}/`)) return { error: `id ${JSON.stringify(k.id)} is not under host ${JSON.stringify(k.host)}` };
  if (!isStringArray(raw.aliases)) return { error: 'aliases: not a list of strings' };
  if (!isStringArray(raw.addresses)) return { error: 'addresses: not a list of strings' };
  if (!isRecord(raw.labels) || !Object.values(raw.labels).every((v) => typeof v === 'string')) return { error: 'labels: not a map of strings' };
  if (!Array.isArray(raw.ports)) return { error: 'ports: not a list' };
  const ports: EndpointPort[] = [];
  for (const [i, p] of raw.ports.entries()) {
    const ok = port(p);
    if (!ok) return { error: `ports[${i}]: not {port 1-65535, protocol tcp|udp, name?}` };
    ports.push(ok);
  }
  if (raw.service !== undefined && typeof raw.service !== 'string') return { error: 'service: not a string' };
  if (raw.health !== undefined && !HEALTH.includes(raw.health as EndpointHealth)) return { error: `health: not one of ${HEALTH.join(', ')}` };
  return {
    endpoint: normalise({
      id: raw.id as string, host: raw.host as string, runtime: raw.runtime as string, containerId: raw.containerId as string,
      network: raw.network as string, name: raw.name as string, aliases: raw.aliases, addresses: raw.addresses,
      labels: raw.labels as Record<string, string>, ports, ...(raw.service !== undefined ? { service: raw.service as string } : {}),
      ...(raw.health !== undefined ? { health: raw.health as EndpointHealth } : {}),
    }),
  };
}
