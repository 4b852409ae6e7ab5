// vxnetctl vip ls / vip show NAME: the VIPs vxnetd serves, from its HTTP API (/v1/vips,
// /v1/vips/NAME), as the kernel was given them: VIP, protocol, port, addresses, and each backend
// with its host and state. Pure helpers (checking the answer, the rows) around one GET.
import type { VipView } from '../vip/model';
import { DecodingFailure, NotFound } from '../lib/errors';
import { UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { apiAuth } from './api-client';
import { apiGet, apiUrl } from './dns';
import { type Column, renderTable } from './table';

export const LS_COLUMNS: readonly Column[] = [
  { header: 'VIP' }, { header: 'PROTO' }, { header: 'PORT', align: 'right' }, { header: 'ADDRESSES' },
  { header: 'BACKEND' }, { header: 'HOST' }, { header: 'STATE' }, { header: 'WEIGHT', align: 'right' },
];

const hostPort = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** One row per backend; the VIP's own columns on its first row only. A VIP with no backend gets one row saying so. */
export function lsRows(vips: readonly VipView[]): string[][] {
  const rows: string[][] = [];
  for (const v of vips) {
    const head = [v.name !== undefined ? `/${v.name}` : v.addresses[0] ?? '', v.protocol, String(v.port), v.addresses.join(',') || '(pending)'];
    const blank = ['', '', '', ''];
    if (v.backends.length === 0) rows.push([...head, '(none)', '', '', '']);
    v.backends.forEach((b, i) => rows.push([...(i === 0 ? head : blank), `${b.name || b.endpoint} ${hostPort(b.ip, b.port)}`, b.host, b.state, String(b.weight)]));
  }
  return rows;
}

const isBackend = (b: unknown): boolean => {
  const x = b as Record<string, unknown> | null;
  return x !== null && typeof x === 'object' && typeof x.endpoint === 'string' && typeof x.ip === 'string' && typeof x.port === 'number'
    && typeof x.host === 'string' && typeof x.state === 'string' && typeof x.weight === 'number';
};

/** The API's VIP list, checked enough that a table can be drawn from it. */
export function parseVips(body: unknown, url: string): VipView[] {
  const ok = Array.isArray(body) && body.every((v) => {
    const x = v as Record<string, unknown> | null;
    return x !== null && typeof x === 'object' && typeof x.vip === 'string' && (x.protocol === 'tcp' || x.protocol === 'udp')
      && typeof x.port === 'number' && Array.isArray(x.addresses) && Array.isArray(x.backends) && x.backends.every(isBackend);
  });
  if (!ok) throw new DecodingFailure(`${url}: not a list of VIPs (is this vxnetd's HTTP API, with VIPs on?)`);
  return body as VipView[];
}

export async function runVip(command: 'vip ls' | 'vip show', values: Values, positionals: readonly string[], ctx: Ctx): Promise<void> {
  const base = apiUrl(values, ctx.env);
  let vips: VipView[];
  if (command === 'vip ls') {
    vips = parseVips((await apiGet(base, '/v1/vips', [], apiAuth(values, ctx.env))).body, `${base}/v1/vips`);
  } else {
    const what = positionals[0];
    if (what === undefined || what === '') throw new UsageError('vip show needs a NAME or an ADDRESS (see vxnetctl vip show --help)');
    const path = `/v1/vips/${encodeURIComponent(what.replace(/^\//, ''))}`;
    const r = await apiGet(base, path, [404], apiAuth(values, ctx.env));
    if (r.status === 404) throw new NotFound(`no VIP named or at "${what}" (vxnetctl vip ls lists them)`);
    vips = parseVips(r.body, `${base}${path}`);
  }
  if (ctx.json) {
    writeJson(ctx, { api: base, vips });
    return;
  }
  ctx.stdout(vips.length ? renderTable(LS_COLUMNS, lsRows(vips)) : `(no VIPs known to ${base})\n`);
}
