// The placed edge model -> haproxy.cfg text. Pure; the same model always gives the same text
// (vxnet-lb writes the file only when the text changed).
//
// Shape (run as `haproxy -W -S MASTER_SOCKET -f FILE`, master-worker, so a reload hands the
// listening sockets to the new worker and the old one finishes its requests):
//   global     stats socket (admin level: the Runtime API), hard-stop-after for old workers
//   defaults   timeouts; retries with redispatch and `retry-on conn-failure empty-response` so a
//              request that met a server going away is retried on another (a container killed
//              before it was drained)
//   frontend http_in      every vhost backend: host (and path) ACLs, ordered by ACL weight,
//                         then longest path first, then name; REDIRECT_TO_HTTPS vhosts a 301
//                         to https_in
//   frontend https_in     the same rules behind TLS (`ssl crt-list`, ./certs.ts), only when
//                         some vhost certificate exists
//   frontend NAME_port    a backend with HAPROXY_n_PORT
//   backend NAME          server slots s1..sN (./slots.ts): filled ones as `server`, free runs
//                         as `server-template` disabled (sticky backends write each free slot
//                         as a `server` line of its own, since its cookie is its name)
import { dirname } from 'node:path';
import type { PlacedBackend, PlacedModel } from './slots';
import { slotName } from './slots';
import type { Server } from './model';
import { crtListPath, crtListText } from './certs';

export interface ConfigOptions {
  /** The Runtime API socket (`stats socket ... level admin`). */
  readonly statsSocket: string;
  /** The shared HTTP frontend's port (vhosts), default 80. */
  readonly httpPort: number;
  /** Address it binds, `*` for all. */
  readonly httpBind: string;
  /** HAProxy's stats page, `ADDR:PORT`; none when undefined. */
  readonly statsListen?: string;
  /** How long an old worker may finish its requests after a reload (hard-stop-after), seconds. */
  readonly hardStopAfterS: number;
  /** `timeout connect`, default 1000 ms. */
  readonly connectTimeoutMs?: number;
  /** global maxconn; HAProxy derives it from the file limit when absent (systemd's LimitNOFILE). */
  readonly maxconn?: number;
  /** The HTTPS frontend's port (same address as the HTTP one), default 443. */
  readonly httpsPort?: number;
  /** Where the crt-list file goes (./certs.ts crtListPath); default: the stats socket's directory. */
  readonly crtListDir?: string;
}

export const DEFAULT_CONFIG: Omit<ConfigOptions, 'statsSocket'> = { httpPort: 80, httpBind: '*', hardStopAfterS: 30 };

export const bindOf = (addr: string, port: number): string => (addr === '*' ? `*:${port}` : addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);
export const serverAddr = (s: Pick<Server, 'address' | 'port'>): string => (s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`);
const seconds = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** The options every slot of a backend shares (checks, cookie), after the address. */
function slotOptions(b: PlacedBackend, i: number): string {
  const parts: string[] = [];
  if (b.health) parts.push(`check inter ${seconds(b.health.intervalMs)} rise ${b.health.rise} fall ${b.health.fall}`);
  if (b.sticky) parts.push(`cookie ${slotName(i)}`);
  return parts.length ? ` ${parts.join(' ')}` : '';
}

// Marathon-LB's HSTS max-age (half a year); sent only over TLS, where browsers heed it (RFC 6797).
const HSTS = 'http-response set-header Strict-Transport-Security max-age=15768000 if { ssl_fc }';

/** RFC 9110's idempotent methods: the ones an L7 retry may send twice. */
const IDEMPOTENT_METHODS = 'GET HEAD OPTIONS TRACE PUT DELETE';

function backendLines(b: PlacedBackend): string[] {
  const out = [`backend ${b.name}`, `  mode ${b.mode}`, `  balance ${b.balance}`];
  // retry-on empty-response sends a request again after the server closed without an answer,
  // which may be after it did the work: RFC 9110 9.2.2 forbids a proxy to retry non-idempotent
  // requests automatically, and HAProxy does not tell them apart itself. A POST or PATCH that
  // meets a dying server gets a 502, as it would without retries; conn-failure (never sent)
  // is still retried for every method.
  if (b.mode === 'http') out.push(`  http-request disable-l7-retry unless { method ${IDEMPOTENT_METHODS} }`);
  if (b.health?.path) out.push(`  option httpchk GET ${b.health.path}`);
  if (b.hsts) out.push(`  ${HSTS}`);
  if (b.sticky) out.push('  cookie VXLB_SERVER insert indirect nocache');
  const free: number[] = [];
  const flush = (): void => {
    if (!free.length) return;
    const [a, z] = [free[0] as number, free[free.length - 1] as number];
    out.push(`  server-template s ${a + 1}-${z + 1} 0.0.0.0:0 disabled${slotOptions(b, a)}`);
    free.length = 0;
  };
  b.slots.forEach((s, i) => {
    if (!s) {
      if (b.sticky) out.push(`  server ${slotName(i)} 0.0.0.0:0 disabled${slotOptions(b, i)}`);
      else free.push(i);
      return;
    }
    flush();
    out.push(`  server ${slotName(i)} ${serverAddr(s)} weight ${s.weight}${slotOptions(b, i)}`);
  });
  flush();
  return out;
}

/** Rule order on the shared frontend: ACL weight (higher first), then the longer path, then the name. */
export function ruleOrder(a: PlacedBackend, b: PlacedBackend): number {
  return b.aclWeight - a.aclWeight || (b.path?.length ?? 0) - (a.path?.length ?? 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function httpFrontend(model: PlacedModel, o: ConfigOptions, tls: boolean): string[] {
  const vhosted = model.backends.filter((b) => b.vhosts.length).sort(ruleOrder);
  // idle-close-on-response: after a reload the old worker closes a keep-alive connection only
  // after answering its next request (Connection: close), not while a client sends on it
  // (measured: ~2.6 read errors per reload under wrk without it). HTTP frontends only.
  const out = ['frontend http_in', `  bind ${bindOf(o.httpBind, o.httpPort)}`, '  mode http', '  option forwardfor', '  option idle-close-on-response',
    // The Host header without its port, lowercase: what the vhost ACLs compare.
    '  http-request set-var(txn.vxlb_host) req.hdr(host),field(1,:),lower'];
  out.push(...vhostRules(vhosted));
  const httpsPort = o.httpsPort ?? 443;
  // To the HTTPS frontend: the host without the client's port (it named the HTTP one), the
  // HTTPS port unless it is 443; path and query follow (redirect prefix).
  const to = `https://%[var(txn.vxlb_host)]${httpsPort === 443 ? '' : `:${httpsPort}`}`;
  for (const b of vhosted) {
    if (b.redirectToHttps && tls) out.push(`  http-request redirect prefix ${to} code 301 if host_${b.name}${b.path ? ` path_${b.name}` : ''}`);
  }
  for (const b of vhosted) out.push(`  use_backend ${b.name} if host_${b.name}${b.path ? ` path_${b.name}` : ''}`);
  return out;
}

function vhostRules(vhosted: readonly PlacedBackend[]): string[] {
  const out: string[] = [];
  for (const b of vhosted) {
    out.push(`  acl host_${b.name} var(txn.vxlb_host) -m str ${b.vhosts.join(' ')}`);
    if (b.path) out.push(`  acl path_${b.name} path_beg ${b.path}`);
  }
  return out;
}

function httpsFrontend(model: PlacedModel, o: ConfigOptions, crtList: string): string[] {
  const vhosted = model.backends.filter((b) => b.vhosts.length).sort(ruleOrder);
  const out = ['frontend https_in', `  bind ${bindOf(o.httpBind, o.httpsPort ?? 443)} ssl crt-list ${crtList} alpn h2,http/1.1`, '  mode http',
    '  option forwardfor', '  option idle-close-on-response', '  http-request set-header X-Forwarded-Proto https',
    '  http-request set-var(txn.vxlb_host) req.hdr(host),field(1,:),lower'];
  out.push(...vhostRules(vhosted));
  for (const b of vhosted) out.push(`  use_backend ${b.name} if host_${b.name}${b.path ? ` path_${b.name}` : ''}`);
  return out;
}

/** The crt-list the config names, its path and text ('' and no path: no HTTPS frontend). */
export function crtListOf(model: PlacedModel, o: ConfigOptions): { path: string; text: string } | undefined {
  const text = crtListText(model.backends, model.tls);
  return text ? { path: crtListPath(o.crtListDir ?? dirname(o.statsSocket), text), text } : undefined;
}

export function renderConfig(model: PlacedModel, o: ConfigOptions): string {
  const crtList = crtListOf(model, o);
  const lines = [
    '# Written by vxnet-lb from the endpoint catalog; edits are overwritten.',
    'global',
    `  stats socket ${o.statsSocket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 2m',
    ...(o.maxconn ? [`  maxconn ${o.maxconn}`] : []),
    `  hard-stop-after ${o.hardStopAfterS}s`,
    ...(model.tls ? ['  ssl-default-bind-options ssl-min-ver TLSv1.2'] : []),
    '',
    'defaults',
    '  mode http',
    // A container gone without a drain (killed, then its interface deleted) leaves connects to
    // its address hanging (SYNs to a MAC that is gone) until the catalog takes it out; a short
    // connect timeout sends those requests to another server (retry-on + redispatch) within a
    // second. Backends are in the cluster: a connect takes microseconds to milliseconds.
    `  timeout connect ${o.connectTimeoutMs ?? 1000}ms`,
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-keep-alive 10s',
    '  timeout check 5s',
    '  retries 3',
    '  option redispatch 1',
    // A request that met a server going away is sent again, to another server: one refused or
    // timed out on connect (conn-failure), and one sent on a connection the server closed
    // without an answer (empty-response: a container killed with requests in flight, or an
    // idle server connection it closed as HAProxy reused it; ~200 in a bench run scaling
    // 1->5->1 ten times, every one a client error without it). empty-response is an L7 retry:
    // HAProxy copies each request into a retry buffer before sending it, which is most of what
    // this config costs per request beyond a plain hand-written one (bench/README.md). Not
    // response-timeout: an answer late by `timeout server` is from a server that got the
    // request, and sending it again may do its work twice.
    '  retry-on conn-failure empty-response',
    '',
  ];
  if (o.statsListen) lines.push('frontend stats', `  bind ${o.statsListen}`, '  mode http', '  stats enable', '  stats uri /haproxy?stats', '  stats refresh 5s', '');
  lines.push(...httpFrontend(model, o, crtList !== undefined), '');
  if (crtList) lines.push(...httpsFrontend(model, o, crtList.path), '');
  const digest = new Map((model.tls?.labelCerts ?? []).map((c) => [c.path, c.sha256]));
  for (const b of model.backends) {
    if (b.servicePort === undefined) continue;
    const certs = b.sslCerts.filter((p) => digest.has(p));
    lines.push(`frontend ${b.name}_port`);
    // The digest makes a renewed certificate a changed config (a reload).
    for (const p of certs) lines.push(`  # ${p} sha256 ${digest.get(p) as string}`);
    lines.push(`  bind ${bindOf(b.bindAddr, b.servicePort)}${certs.map((p) => ` ssl crt ${p}`).slice(0, 1).join('')}${certs.slice(1).map((p) => ` crt ${p}`).join('')}`, `  mode ${b.mode}`);
    if (b.mode === 'http') lines.push('  option forwardfor', '  option idle-close-on-response');
    lines.push(`  default_backend ${b.name}`, '');
  }
  for (const b of model.backends) lines.push(...backendLines(b), '');
  return lines.join('\n');
}

/**
 * The backends a refusal of `text` points at: HAProxy names `[FILE:LINE]`; the line's section
 * (a backend, its `NAME_port` frontend, or its rules on http_in) gives the backend. Pure.
 */
export function blame(text: string, haproxyOutput: string): string[] {
  const lines = text.split('\n');
  const out = new Set<string>();
  for (const m of haproxyOutput.matchAll(/\[[^\]\n]*:(\d+)\]/g)) {
    const n = Number(m[1]);
    const line = lines[n - 1] ?? '';
    let section = '';
    for (let i = n - 1; i >= 0; i--) {
      if (/^\S/.test(lines[i] ?? '')) { section = lines[i] as string; break; }
    }
    const backend = /^backend (\S+)/.exec(section)?.[1]
      ?? /^frontend (\S+)_port$/.exec(section)?.[1]
      ?? (section === 'frontend http_in' || section === 'frontend https_in' ? /(?:host|path)_(\S+)|use_backend (\S+)/.exec(line)?.slice(1).find(Boolean) : undefined);
    if (backend) out.add(backend);
  }
  return [...out].sort();
}

/** HAProxy's ALERT and WARNING lines, without its NOTICE chatter. */
export const haproxyWords = (output: string): string =>
  output.split('\n').filter((l) => /\[(ALERT|WARNING)\]/.test(l)).map((l) => l.replace(/^\[(ALERT|WARNING)\]\s+\(\d+\) : /, '$1: ')).join('\n') || output.trim();
