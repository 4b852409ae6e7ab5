// vxnetctl dns ls: the endpoints vxnetd's DNS knows, from its HTTP API (/v1/endpoints, beside
// the Mesos-DNS routes); vxnetctl dns query: one question to vxnet's DNS server, answered the
// way dig prints it. Pure helpers (what to ask, where, how to print) around two I/O calls.
import { readFileSync } from 'node:fs';
import type { Answer } from 'dns-packet';
import { type QueryResult, query } from '../dns/client';
import { DEFAULT_API_URL } from '../dns/mesos-api';
import type { EndpointView } from '../dns/mesos-view';
import { reverseName } from '../dns/names';
import { type HostPort, parseHostPort } from '../dns/upstreams';
import { parseIp } from '../ipam/addr';
import { DecodingFailure, IoFailure, NotFound, VxnetError } from '../lib/errors';
import { type ApiAuth, apiAuth, apiRequest, remoteError } from './api-client';
import { QUERY_TYPES, UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { type Column, renderTable } from './table';

/** Written by vxnetd when its DNS starts: {nameservers, domain, search}. */
export const DNS_JSON = '/run/vxnet/dns.json';
/** What a container's resolv.conf gets when vxnetd says nothing (DC/OS's first Spartan address). */
export const FALLBACK_SERVER = '198.51.100.1:53';
export const FALLBACK_DOMAIN = 'vxnet';
const API_TIMEOUT_MS = 5000;


type Env = Readonly<Record<string, string | undefined>>;

/** The API's base URL: --api, else $VXNET_API, else Mesos-DNS's port on loopback. */
export function apiUrl(values: Values, env: Env): string {
  const text = values.api ?? (env.VXNET_API || DEFAULT_API_URL);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--api ${JSON.stringify(text)}: not a URL (expected http://HOST:PORT)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--api ${JSON.stringify(text)}: expected an http:// or https:// URL`);
  return url.href.replace(/\/+$/, '');
}

export interface DnsJson {
  readonly nameservers: readonly string[];
  readonly domain?: string;
}

/** vxnetd's dns.json, or undefined when it is not there or not readable as one (the defaults apply). */
export function parseDnsJson(text: string | undefined): DnsJson | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as { nameservers?: unknown; domain?: unknown };
    const nameservers = Array.isArray(v.nameservers) ? v.nameservers.filter((n): n is string => typeof n === 'string') : [];
    return { nameservers, ...(typeof v.domain === 'string' && v.domain !== '' ? { domain: v.domain } : {}) };
  } catch {
    return undefined;
  }
}

export interface QueryPlan {
  readonly server: HostPort;
  /** Fully qualified, with the trailing dot. */
  readonly name: string;
  readonly type: string;
}

/** Why `name` cannot be put in a question (dns-packet would encode it anyway), or undefined. */
function questionProblem(name: string): string | undefined {
  const labels = name.replace(/\.$/, '').split('.');
  if (Buffer.byteLength(name.replace(/\.$/, '')) > 253) return 'longer than 253 bytes';
  for (const l of labels) {
    if (l.length === 0) return 'an empty label';
    if (Buffer.byteLength(l) > 63) return `label "${l.slice(0, 20)}..." is longer than 63 bytes`;
  }
  return undefined;
}

/**
 * What `dns query NAME [TYPE]` asks and of whom. A name without a dot gets the domain (from
 * dns.json, else vxnet); an address asked without a type, or as PTR, becomes its reverse
 * name, as `dig -x`. The server: --server, else dns.json's first nameserver, else 198.51.100.1.
 */
export function queryPlan(positionals: readonly string[], values: Values, dnsJson: DnsJson | undefined): QueryPlan {
  const [nameText, typeText] = positionals;
  if (nameText === undefined || nameText === '') throw new UsageError('dns query needs a NAME (see vxnetctl dns query --help)');
  const type = (typeText ?? '').toUpperCase();
  if (typeText !== undefined && !(QUERY_TYPES as readonly string[]).includes(type)) {
    throw new UsageError(`unknown record type "${typeText}" (one of ${QUERY_TYPES.join(', ')})`);
  }
  let server: HostPort | undefined;
  if (values.server !== undefined) {
    server = parseHostPort(values.server);
    if (!server || server.port === 0) throw new UsageError(`--server ${JSON.stringify(values.server)}: expected ADDRESS[:PORT] or [IPV6]:PORT`);
  } else {
    server = dnsJson?.nameservers.map((n) => parseHostPort(n)).find((hp) => hp !== undefined && hp.port !== 0) ?? parseHostPort(FALLBACK_SERVER);
  }
  const ip = parseIp(nameText);
  if (ip && (type === '' || type === 'PTR')) return { server: server as HostPort, name: `${reverseName(ip)}.`, type: 'PTR' };
  let name = nameText;
  if (!name.includes('.')) name = `${name}.${(dnsJson?.domain ?? FALLBACK_DOMAIN).replace(/\.$/, '')}`;
  if (!name.endsWith('.')) name += '.';
  const problem = questionProblem(name);
  if (problem) throw new UsageError(`"${nameText}" is not a DNS name: ${problem}`);
  return { server: server as HostPort, name, type: type || 'A' };
}

const dotted = (name: string): string => (name.endsWith('.') ? name : `${name}.`);

/** A record's data as dig prints it. */
export function recordData(a: Answer): string {
  switch (a.type) {
    case 'A': case 'AAAA': return a.data;
    case 'CNAME': case 'NS': case 'PTR': case 'DNAME': return dotted(a.data);
    case 'SRV': return `${a.data.priority ?? 0} ${a.data.weight ?? 0} ${a.data.port} ${dotted(a.data.target)}`;
    case 'MX': return `${a.data.preference ?? 0} ${dotted(a.data.exchange)}`;
    case 'SOA': {
      const d = a.data;
      return `${dotted(d.mname)} ${dotted(d.rname)} ${d.serial ?? 0} ${d.refresh ?? 0} ${d.retry ?? 0} ${d.expire ?? 0} ${d.minimum ?? 0}`;
    }
    case 'TXT': {
      const parts = Array.isArray(a.data) ? a.data : [a.data];
      return parts.map((p) => JSON.stringify(Buffer.isBuffer(p) ? p.toString('latin1') : String(p))).join(' ');
    }
    default:
      return 'data' in a ? JSON.stringify(a.data) : '';
  }
}

const recordLine = (a: Answer): string => `${dotted(a.name)}\t${'ttl' in a ? a.ttl ?? 0 : 0}\tIN\t${a.type}\t${recordData(a)}`;
const recordJson = (a: Answer): Record<string, unknown> => ({ name: dotted(a.name), ttl: 'ttl' in a ? a.ttl ?? 0 : 0, type: a.type, data: recordData(a) });

/** dig's shape: the status line, then each non-empty section. */
export function renderQuery(plan: QueryPlan, r: QueryResult): string {
  const out = [
    `;; ${plan.name} ${plan.type} from ${r.server} over ${r.transport}${r.truncatedOverUdp ? ' (truncated over udp)' : ''}: ` +
      `status: ${r.rcode}, flags: ${r.flags.join(' ')}; ANSWER: ${r.answers.length}, AUTHORITY: ${r.authorities.length}, ADDITIONAL: ${r.additionals.length}`,
  ];
  for (const [title, records] of [['ANSWER', r.answers], ['AUTHORITY', r.authorities], ['ADDITIONAL', r.additionals]] as const) {
    if (records.length === 0) continue;
    out.push('', `;; ${title} SECTION:`, ...records.map(recordLine));
  }
  return out.join('\n') + '\n';
}

export function queryJson(plan: QueryPlan, r: QueryResult): Record<string, unknown> {
  return {
    server: r.server, transport: r.transport, truncatedOverUdp: r.truncatedOverUdp, name: plan.name, type: plan.type,
    rcode: r.rcode, flags: r.flags, answers: r.answers.map(recordJson), authorities: r.authorities.map(recordJson),
    additionals: r.additionals.map(recordJson), elapsedMs: Math.round(r.elapsedMs * 1000) / 1000,
  };
}

const RCODE_MEANING: Readonly<Record<string, string>> = {
  NXDOMAIN: 'no such name', SERVFAIL: 'the server failed (an upstream did not answer?)', REFUSED: 'the server refused to answer this client',
  FORMERR: 'the server could not read the query', NOTIMP: 'the server does not implement this query',
};

/** The failure for a non-NOERROR answer (printed after the answer itself), else undefined. */
export function rcodeFailure(plan: QueryPlan, r: QueryResult): VxnetError | undefined {
  if (r.rcode === 'NOERROR') return undefined;
  const message = `${plan.name} ${plan.type}: ${r.rcode} from ${r.server}${RCODE_MEANING[r.rcode] ? ` (${RCODE_MEANING[r.rcode]})` : ''}`;
  return r.rcode === 'NXDOMAIN' ? new NotFound(message) : new IoFailure(message);
}

export const LS_COLUMNS: readonly Column[] = [
  { header: 'NAME' }, { header: 'NETWORK' }, { header: 'SERVICE' }, { header: 'ADDRESSES' }, { header: 'PORTS' }, { header: 'HOST' }, { header: 'DNS NAMES' },
];

/** "http=8080/tcp,9000/udp": the ports in the endpoint's order (index n is its port n). */
const portsText = (ports: EndpointView['ports']): string => ports.map((p) => `${p.name ? `${p.name}=` : ''}${p.port}/${p.protocol}`).join(',');

export function lsRows(endpoints: readonly EndpointView[]): string[][] {
  return endpoints.map((e) => [
    [e.name, ...e.aliases].filter((n) => n !== '').join(','), e.network, e.service ?? '', e.addresses.join(','), portsText(e.ports), e.host,
    e.dnsNames.map((n) => n.replace(/\.$/, '')).join(','),
  ]);
}

/** The API's /v1/endpoints answer, checked enough that a table can be drawn from it. */
export function parseEndpoints(body: unknown, url: string): EndpointView[] {
  const ok = Array.isArray(body) && body.every((e) => {
    const v = e as Partial<Record<keyof EndpointView, unknown>>;
    return v !== null && typeof v === 'object' && typeof v.name === 'string' && typeof v.network === 'string' && typeof v.host === 'string'
      && Array.isArray(v.addresses) && Array.isArray(v.ports) && Array.isArray(v.aliases) && Array.isArray(v.dnsNames);
  });
  if (!ok) throw new DecodingFailure(`${url}: not a list of endpoints (is this vxnetd's HTTP API?)`);
  return body as EndpointView[];
}

async function fetchEndpoints(base: string, auth: ApiAuth): Promise<EndpointView[]> {
  const url = `${base}/v1/endpoints`;
  return parseEndpoints((await apiGet(base, '/v1/endpoints', [], auth)).body, url);
}

/**
 * GET base + path from vxnetd's HTTP API: the JSON body and the status. Unreachable, not JSON,
 * or an error status other than those in `accept` (the caller's to interpret): IoFailure /
 * DecodingFailure naming the URL.
 */
export async function apiGet(base: string, path: string, accept: readonly number[] = [], auth: ApiAuth = {}): Promise<{ status: number; body: unknown }> {
  const r = await apiRequest(base, 'GET', path, { auth, timeoutMs: API_TIMEOUT_MS });
  if ((r.status < 200 || r.status >= 300) && !accept.includes(r.status)) throw remoteError(r.status, r.body, `${base}${path}`);
  return r;
}

/** The dns.json vxnetctl reads: $VXNET_DNS_JSON, else /run/vxnet/dns.json. */
export const dnsJsonPath = (env: Env): string => env.VXNET_DNS_JSON || DNS_JSON;

export function readDnsJson(env: Env): DnsJson | undefined {
  try {
    return parseDnsJson(readFileSync(dnsJsonPath(env), 'utf8'));
  } catch {
    return undefined;
  }
}

export async function runDns(command: 'dns ls' | 'dns query', values: Values, positionals: readonly string[], ctx: Ctx): Promise<void> {
  if (command === 'dns ls') {
    const base = apiUrl(values, ctx.env);
    const endpoints = await fetchEndpoints(base, apiAuth(values, ctx.env));
    if (ctx.json) {
      writeJson(ctx, { api: base, endpoints });
      return;
    }
    ctx.stdout(endpoints.length ? renderTable(LS_COLUMNS, lsRows(endpoints)) : `(no endpoints known to ${base})\n`);
    return;
  }
  const plan = queryPlan(positionals, values, readDnsJson(ctx.env));
  let r: QueryResult;
  try {
    r = await query(plan.server, plan.name, plan.type);
  } catch (err) {
    if (err instanceof VxnetError) throw new IoFailure(`${plan.name} ${plan.type}: ${err.message}`);
    throw err;
  }
  if (ctx.json) writeJson(ctx, queryJson(plan, r));
  else ctx.stdout(renderQuery(plan, r));
  const failure = rcodeFailure(plan, r);
  if (failure) throw failure;
}
