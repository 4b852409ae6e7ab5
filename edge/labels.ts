// Marathon-LB's labels on the endpoint catalog -> the edge model. Pure.
//
// Port index n is the endpoint's port n in the catalog (catalog/endpoint.ts), as Marathon's port
// index was. Endpoints of one service (`vxnet.service` / Compose service, else the endpoint's
// name) and one port index make one backend, their containers its servers: what Marathon-LB
// made of an app's tasks. Per-port labels:
//   HAPROXY_GROUP, HAPROXY_n_GROUP  comma list; the endpoint is served when it names --group
//                                   (or --group is `*`)
//   HAPROXY_n_ENABLED               false: not served; with --strict-mode only `true` serves
//   HAPROXY_n_VHOST                 comma list of host names on the shared HTTP frontend (implies http)
//   HAPROXY_n_PATH                  path prefix within the vhosts
//   HAPROXY_n_PORT                  a frontend of its own on that port (tcp unless VHOST or MODE)
//   HAPROXY_n_MODE, _BALANCE, _STICKY, _REDIRECT_TO_HTTPS, _BIND_ADDR, _BACKEND_WEIGHT
//   HAPROXY_n_HEALTHCHECK_PATH, _HEALTHCHECK_INTERVAL, _HEALTHCHECK_RISE, _HEALTHCHECK_FALL
//   HAPROXY_n_SSL_CERT              comma list of PEM files on the edge host (./certs.ts checks
//                                   them before they reach a config), HAPROXY_n_USE_HSTS
// Label values become haproxy.cfg text, so each is checked against a strict shape here (no
// whitespace, quotes or comment characters where HAProxy would read them as more words): a
// container's labels must not write the edge's config. A value that fails is a Note and its
// port is not served; nothing here throws.
import type { Endpoint } from '../catalog/endpoint';
import { formatIp, parseIp } from '../ipam/addr';
import type { Backend, EdgeModel, HealthCheck, Mode, Note, Server } from './model';

export interface LabelOptions {
  /** `--group`: serve endpoints whose HAPROXY_GROUP names it; `*` serves every group (and none). */
  readonly group: string;
  /** `--strict-mode`: a port is served only with HAPROXY_n_ENABLED=true. */
  readonly strictMode: boolean;
}

export const DEFAULT_GROUP = 'external';
export const DEFAULT_HEALTH: Omit<HealthCheck, 'path'> = { intervalMs: 2000, rise: 2, fall: 3 };

const PER_PORT = new Set(['GROUP', 'VHOST', 'PORT', 'MODE', 'BALANCE', 'PATH', 'STICKY', 'REDIRECT_TO_HTTPS', 'BIND_ADDR',
  'BACKEND_WEIGHT', 'ENABLED', 'HEALTHCHECK_PATH', 'HEALTHCHECK_INTERVAL', 'HEALTHCHECK_RISE', 'HEALTHCHECK_FALL', 'SSL_CERT', 'USE_HSTS']);
/** Marathon-LB labels vxnet knows but does not implement yet: reported, not silently dropped. */
const NOT_YET = new Set(['BIND_OPTIONS', 'AUTH', 'BACKEND_HEALTHCHECK_PORT_INDEX', 'HTTP_BACKEND_PROXYPASS_PATH']);

const HOST_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const PATH_RE = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;
// `roundrobin`, `leastconn`, `uri len 16`, `hdr(host)`, `url_param userid`: words of HAProxy's
// balance line, no quotes or comments; whether HAProxy knows the algorithm is `haproxy -c`'s call.
const BALANCE_RE = /^[a-z][a-z0-9_-]*(\([A-Za-z0-9_.-]*\))?( [A-Za-z0-9_.-]+)*$/;
const NAME_RE = /[^A-Za-z0-9_.-]/g;
// A certificate path becomes a crt-list word and a `crt` argument: absolute, plain characters,
// no `..` (a label names a file, it does not walk the tree).
const CERT_PATH_RE = /^(\/[A-Za-z0-9_@+=.-]+)+$/;

const bool = (v: string): boolean | undefined => (/^(true|1|yes)$/i.test(v) ? true : /^(false|0|no)$/i.test(v) ? false : undefined);
function int(v: string, min: number, max: number): number | undefined {
  if (!/^\d{1,9}$/.test(v)) return undefined;
  const n = Number(v);
  return n >= min && n <= max ? n : undefined;
}
/** `2`, `2s`, `500ms`, `1m` -> milliseconds (bare numbers are seconds, as Marathon's health checks were). */
export function parseInterval(v: string): number | undefined {
  const m = /^(\d{1,6})(ms|s|m)?$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  return ms >= 100 && ms <= 3_600_000 ? ms : undefined;
}

/** The name of an endpoint's backend for port n: its service, else its name (else its id). */
export function backendName(e: Endpoint, n: number): string {
  const base = (e.service ?? (e.name || e.containerId)).replace(NAME_RE, '_');
  return `${base}_${n}`;
}

/** The settings of one port of one endpoint, before servers are merged into backends. */
interface PortSpec {
  readonly settings: Omit<Backend, 'servers' | 'name'>;
  readonly server: Server;
}

const groupsOf = (v: string | undefined): string[] => (v ?? '').split(',').map((g) => g.trim()).filter(Boolean);

/** Reads port n of endpoint e; undefined (with notes) when it is not served. */
function portSpec(e: Endpoint, n: number, get: (key: string) => string | undefined, opts: LabelOptions, notes: Note[]): PortSpec | undefined {
  const note = (key: string | undefined, message: string): undefined => {
    notes.push({ endpoint: e.id, ...(key ? { label: key } : {}), message });
    return undefined;
  };
  const L = (k: string): string => `HAPROXY_${n}_${k}`;
  const groups = groupsOf(get(L('GROUP')) ?? get('HAPROXY_GROUP'));
  if (opts.group !== '*' && !groups.includes(opts.group)) return undefined;
  const enabledText = get(L('ENABLED'));
  const enabled = enabledText === undefined ? undefined : bool(enabledText);
  if (enabledText !== undefined && enabled === undefined) return note(L('ENABLED'), `"${enabledText}" is not true or false; port not served`);
  if (enabled === false || (opts.strictMode && enabled !== true)) return undefined;

  const port = e.ports[n];
  if (!port) return note(undefined, `HAPROXY_${n}_* labels but the endpoint has ${e.ports.length} port(s) (index ${n} does not exist)`);
  if (port.protocol !== 'tcp') return note(undefined, `port ${n} (${port.port}/${port.protocol}) is not TCP; HAProxy serves TCP only`);
  const address = e.addresses.find((a) => !a.includes(':')) ?? e.addresses[0];
  if (!address) return note(undefined, 'no address');

  const vhostText = get(L('VHOST'));
  const vhosts = vhostText === undefined ? [] : [...new Set(vhostText.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean))].sort();
  for (const h of vhosts) if (!HOST_RE.test(h) || h.length > 253) return note(L('VHOST'), `"${h}" is not a host name; port not served`);
  const portText = get(L('PORT'));
  const servicePort = portText === undefined ? undefined : int(portText, 1, 65535);
  if (portText !== undefined && servicePort === undefined) return note(L('PORT'), `"${portText}" is not a port (1-65535); port not served`);
  if (!vhosts.length && servicePort === undefined) return note(undefined, `port ${n}: neither HAPROXY_${n}_VHOST nor HAPROXY_${n}_PORT, nothing to serve it on`);

  const modeText = get(L('MODE'));
  if (modeText !== undefined && modeText !== 'http' && modeText !== 'tcp') return note(L('MODE'), `"${modeText}" is not http or tcp; port not served`);
  const mode: Mode = (modeText as Mode | undefined) ?? (vhosts.length ? 'http' : 'tcp');
  if (mode === 'tcp' && vhosts.length) {
    note(L('VHOST'), 'needs http mode (HAPROXY_n_MODE is tcp); the vhosts are ignored');
    vhosts.length = 0;
    if (servicePort === undefined) return undefined;
  }
  const balance = get(L('BALANCE')) ?? 'roundrobin';
  if (!BALANCE_RE.test(balance)) return note(L('BALANCE'), `"${balance}" is not a balance algorithm; port not served`);
  let path = get(L('PATH'));
  if (path !== undefined && !PATH_RE.test(path)) return note(L('PATH'), `"${path}" is not a path starting with /; port not served`);
  if (path !== undefined && !vhosts.length) { note(L('PATH'), 'needs HAPROXY_n_VHOST; ignored'); path = undefined; }
  const flag = (k: string): boolean | undefined => {
    const v = get(L(k));
    if (v === undefined) return false;
    const b = bool(v);
    if (b === undefined) note(L(k), `"${v}" is not true or false; taken as false`);
    return b ?? false;
  };
  const sticky = flag('STICKY') ?? false;
  const redirectToHttps = flag('REDIRECT_TO_HTTPS') ?? false;
  if ((sticky || redirectToHttps) && mode !== 'http') note(undefined, `port ${n}: STICKY and REDIRECT_TO_HTTPS need http mode; ignored`);
  const hsts = flag('USE_HSTS') ?? false;
  if (hsts && mode !== 'http') note(L('USE_HSTS'), 'needs http mode; ignored');
  const certText = get(L('SSL_CERT'));
  const sslCerts = certText === undefined ? [] : [...new Set(certText.split(',').map((p) => p.trim()).filter(Boolean))].sort();
  for (const p of sslCerts) {
    if (!CERT_PATH_RE.test(p) || p.split('/').includes('..')) return note(L('SSL_CERT'), `"${p}" is not an absolute file path (letters, digits, _ @ + = . -); port not served`);
  }
  const bindText = get(L('BIND_ADDR'));
  let bindAddr = '*';
  if (bindText !== undefined && bindText !== '*') {
    const ip = parseIp(bindText);
    if (!ip) return note(L('BIND_ADDR'), `"${bindText}" is not an IP address; port not served`);
    bindAddr = formatIp(ip);
  }
  const weightText = get(L('BACKEND_WEIGHT'));
  const aclWeight = weightText === undefined ? 0 : int(weightText, 0, 1_000_000);
  if (aclWeight === undefined) return note(L('BACKEND_WEIGHT'), `"${weightText}" is not a whole number; port not served`);

  let health: HealthCheck | undefined;
  const hcPath = get(L('HEALTHCHECK_PATH'));
  const hcInterval = get(L('HEALTHCHECK_INTERVAL'));
  const hcRise = get(L('HEALTHCHECK_RISE'));
  const hcFall = get(L('HEALTHCHECK_FALL'));
  if (hcPath !== undefined || hcInterval !== undefined || hcRise !== undefined || hcFall !== undefined) {
    if (hcPath !== undefined && !PATH_RE.test(hcPath)) return note(L('HEALTHCHECK_PATH'), `"${hcPath}" is not a path starting with /; port not served`);
    if (hcPath !== undefined && mode !== 'http') return note(L('HEALTHCHECK_PATH'), 'an HTTP check needs http mode; port not served');
    const intervalMs = hcInterval === undefined ? DEFAULT_HEALTH.intervalMs : parseInterval(hcInterval);
    if (intervalMs === undefined) return note(L('HEALTHCHECK_INTERVAL'), `"${hcInterval}" is not an interval (100ms to 1h: 2, 2s, 500ms); port not served`);
    const rise = hcRise === undefined ? DEFAULT_HEALTH.rise : int(hcRise, 1, 100);
    if (rise === undefined) return note(L('HEALTHCHECK_RISE'), `"${hcRise}" is not 1-100; port not served`);
    const fall = hcFall === undefined ? DEFAULT_HEALTH.fall : int(hcFall, 1, 100);
    if (fall === undefined) return note(L('HEALTHCHECK_FALL'), `"${hcFall}" is not 1-100; port not served`);
    health = { ...(hcPath !== undefined ? { path: hcPath } : {}), intervalMs, rise, fall };
  }
  return {
    settings: {
      mode, balance, sticky: sticky && mode === 'http', redirectToHttps: redirectToHttps && mode === 'http', health, vhosts, path,
      aclWeight, servicePort, bindAddr, sslCerts, hsts: hsts && mode === 'http',
    },
    server: { id: e.id, address, port: port.port, weight: 1 },
  };
}

/** Notes on an endpoint's HAPROXY_* labels vxnet does not understand (or not yet). */
function unknownLabels(e: Endpoint, notes: Note[]): void {
  for (const key of Object.keys(e.labels).sort()) {
    if (!key.startsWith('HAPROXY_') || key === 'HAPROXY_GROUP') continue;
    const m = /^HAPROXY_(\d+)_(.+)$/.exec(key);
    if (m && PER_PORT.has(m[2] as string)) continue;
    if (m && NOT_YET.has(m[2] as string)) notes.push({ endpoint: e.id, label: key, message: 'not supported by vxnet-lb yet; ignored' });
    else notes.push({ endpoint: e.id, label: key, message: 'unknown HAPROXY_* label; ignored' });
  }
}

/** Port indexes an endpoint's labels speak of (HAPROXY_n_*), ascending. */
function portIndexes(e: Endpoint): number[] {
  const out = new Set<number>();
  for (const key of Object.keys(e.labels)) {
    const m = /^HAPROXY_(\d{1,4})_/.exec(key);
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

const sameSettings = (a: PortSpec['settings'], b: PortSpec['settings']): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * The edge model for a set of endpoints, and what the operator should hear about their labels.
 * Endpoints of one backend that disagree on its settings: the endpoint with the lowest id
 * decides (a rolling deploy changes them one container at a time), the others are noted.
 * Two backends wanting one service port (same bind address): the first by name gets it.
 */
export function edgeModel(endpoints: readonly Endpoint[], opts: LabelOptions): { model: EdgeModel; notes: Note[] } {
  const notes: Note[] = [];
  const specs = new Map<string, Array<{ e: Endpoint; spec: PortSpec }>>();
  for (const e of [...endpoints].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (!Object.keys(e.labels).some((k) => k.startsWith('HAPROXY_'))) continue;
    unknownLabels(e, notes);
    const get = (k: string): string | undefined => (Object.prototype.hasOwnProperty.call(e.labels, k) ? e.labels[k] : undefined);
    const indexes = portIndexes(e);
    // HAPROXY_GROUP alone (no per-port label) serves nothing: Marathon-LB needed a service port.
    for (const n of indexes) {
      const spec = portSpec(e, n, get, opts, notes);
      if (!spec) continue;
      const name = backendName(e, n);
      const list = specs.get(name) ?? [];
      list.push({ e, spec });
      specs.set(name, list);
    }
  }
  const backends: Backend[] = [];
  const ports = new Map<string, string>();
  for (const name of [...specs.keys()].sort()) {
    const list = specs.get(name) as Array<{ e: Endpoint; spec: PortSpec }>;
    const first = (list[0] as { spec: PortSpec }).spec.settings;
    const servers: Server[] = [];
    const seen = new Set<string>();
    for (const { e, spec } of list) {
      if (!sameSettings(first, spec.settings)) {
        notes.push({ endpoint: e.id, message: `its HAPROXY_* settings for backend ${name} differ from those of ${(list[0] as { e: Endpoint }).e.id}; that endpoint's apply` });
      }
      const at = `${spec.server.address}:${spec.server.port}`;
      if (seen.has(at)) continue;
      seen.add(at);
      servers.push(spec.server);
    }
    let settings = first;
    if (first.servicePort !== undefined) {
      const key = `${first.bindAddr}:${first.servicePort}`;
      const owner = ports.get(key);
      if (owner) {
        for (const { e } of list) notes.push({ endpoint: e.id, message: `backend ${name}: port ${key} is already backend ${owner}'s; not bound` });
        if (!first.vhosts.length) continue;
        settings = { ...first, servicePort: undefined };
      } else {
        ports.set(key, name);
      }
    }
    backends.push({ name, ...settings, servers });
  }
  return { model: { backends }, notes };
}
