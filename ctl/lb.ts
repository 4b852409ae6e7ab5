// vxnetctl lb ls: what vxnet-lb serves, from its local listener (GET /v1/lb, edge/api.ts).
// vxnet-lb holds what neither of HAProxy's own views has alone: `show stat` knows slots and
// states but not which endpoint a slot holds nor the vhost rules, and state.json has no live
// state and needs root (its directory is 0700); so the answer comes from vxnet-lb itself,
// which joins its running model with `show stat`. Pure helpers (checking the answer, the rows)
// around one GET.
import { DecodingFailure, IoFailure } from '../lib/errors';
import type { LbView } from '../edge/view';
import { UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { type Column, renderTable } from './table';

export const DEFAULT_LB_URL = 'http://127.0.0.1:9091';
const TIMEOUT_MS = 5000;

export function lbUrl(values: Values, env: Readonly<Record<string, string | undefined>>): string {
  const text = values.lb ?? (env.VXNET_LB || DEFAULT_LB_URL);
  let url: URL;
  try { url = new URL(text); } catch { throw new UsageError(`--lb ${JSON.stringify(text)}: not a URL (expected http://HOST:PORT)`); }
  if (url.protocol !== 'http:') throw new UsageError(`--lb ${JSON.stringify(text)}: expected an http:// URL`);
  return url.href.replace(/\/+$/, '');
}

export const FRONTEND_COLUMNS: readonly Column[] = [{ header: 'FRONTEND' }, { header: 'BIND' }, { header: 'MODE' }, { header: 'VHOSTS' }, { header: 'PATH' }, { header: 'BACKEND' }];
export const SERVER_COLUMNS: readonly Column[] = [
  { header: 'BACKEND' }, { header: 'MODE' }, { header: 'BALANCE' }, { header: 'SLOT' }, { header: 'ENDPOINT' }, { header: 'ADDRESS' },
  { header: 'WEIGHT', align: 'right' }, { header: 'STATE' }, { header: 'SESSIONS', align: 'right' },
];

/** One row per rule (a frontend without rules: one row saying so). */
export function frontendRows(v: LbView): string[][] {
  const rows: string[][] = [];
  for (const f of v.frontends) {
    if (!f.rules.length) rows.push([f.name, f.bind, f.mode, '(no rules)', '', '']);
    f.rules.forEach((r, i) => rows.push([i ? '' : f.name, i ? '' : f.bind, i ? '' : f.mode, r.vhosts.join(',') || '*',
      `${r.path ?? ''}${r.redirectToHttps ? ' (-> https)' : ''}`, r.backend]));
  }
  return rows;
}

/** One row per server under its backend; a backend's own columns on its first row only. */
export function serverRows(v: LbView): string[][] {
  const rows: string[][] = [];
  for (const b of v.backends) {
    const head = [b.name, b.mode, `${b.balance}${b.sticky ? ' sticky' : ''}`];
    if (!b.servers.length) rows.push([...head, '', '(no servers)', '', '', b.status ? b.status.toLowerCase() : '', '']);
    b.servers.forEach((s, i) => rows.push([...(i ? ['', '', ''] : head), s.slot, s.endpoint, s.address, String(s.weight),
      s.draining && s.state !== 'drain' ? `${s.state} (leaving)` : s.state, String(s.sessions)]));
  }
  return rows;
}

/** The listener's answer, checked enough that the tables can be drawn from it. */
export function parseLbView(body: unknown, url: string): LbView {
  const x = body as Record<string, unknown> | null;
  const ok = x !== null && typeof x === 'object' && Array.isArray(x.frontends) && Array.isArray(x.backends)
    && (x.backends as unknown[]).every((b) => { const y = b as Record<string, unknown> | null; return y !== null && typeof y === 'object' && typeof y.name === 'string' && Array.isArray(y.servers); })
    && (x.frontends as unknown[]).every((f) => { const y = f as Record<string, unknown> | null; return y !== null && typeof y === 'object' && typeof y.name === 'string' && Array.isArray(y.rules); });
  if (!ok) throw new DecodingFailure(`${url}: not vxnet-lb's view (is this vxnet-lb's --metrics-listen?)`);
  return body as LbView;
}

export function renderLb(v: LbView): string {
  const head = `HAProxy ${v.haproxy.up ? `running (master pid ${v.haproxy.pid ?? '?'})` : 'NOT answering'}; reloads ${v.reloads}, Runtime API changes ${v.runtimeChanges}, refused configs ${v.refused}\n\n`;
  return `${head}${renderTable(FRONTEND_COLUMNS, frontendRows(v))}\n${v.backends.length ? renderTable(SERVER_COLUMNS, serverRows(v)) : '(no backends)\n'}`;
}

export async function runLb(values: Values, ctx: Ctx): Promise<void> {
  const base = lbUrl(values, ctx.env);
  const url = `${base}/v1/lb`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), headers: { accept: 'application/json' } });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS / 1000} s` : e.cause?.code ?? e.cause?.message ?? e.message;
    throw new IoFailure(`cannot reach vxnet-lb at ${base}: ${why} (is vxnet-lb running here? --lb URL or $VXNET_LB)`);
  }
  let body: unknown;
  try { body = JSON.parse(await res.text()); } catch { throw new DecodingFailure(`${url}: HTTP ${res.status}, not JSON (is this vxnet-lb's --metrics-listen?)`); }
  if (!res.ok) throw new IoFailure(`${url}: HTTP ${res.status}${typeof (body as { error?: unknown })?.error === 'string' ? `: ${(body as { error: string }).error}` : ''}`);
  const view = parseLbView(body, url);
  if (ctx.json) { writeJson(ctx, { lb: base, ...view }); return; }
  ctx.stdout(renderLb(view));
}
