// vxnetctl's client of vxnetd's HTTP API (`--api URL` or $VXNET_API): one request at a time,
// over http or https (node's own, so `--api-ca FILE` can name the operator's CA), with the
// bearer token from `--api-token-file` or $VXNET_API_TOKEN. The operator API's error JSON
// (`{"error": {"code", "message"}}`) comes back as the same VxnetError class it was on the
// server, so a remote `ipam release` fails the way a local one does.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as errors from '../lib/errors';
import { DecodingFailure, IoFailure, VxnetError } from '../lib/errors';
import { UsageError, type Values } from './args';

export const API_TIMEOUT_MS = 10_000;

type Env = Readonly<Record<string, string | undefined>>;

export interface ApiAuth {
  readonly token?: string;
  readonly ca?: Buffer;
}

/** The API to use instead of the local store: --api, else $VXNET_API; undefined: local. */
export function remoteApi(values: Values, env: Env): string | undefined {
  const text = values.api ?? (env.VXNET_API || undefined);
  if (text === undefined) return undefined;
  let url: URL;
  try { url = new URL(text); } catch { throw new UsageError(`--api ${JSON.stringify(text)}: not a URL (expected http://HOST:PORT or https://HOST:PORT)`); }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--api ${JSON.stringify(text)}: expected an http:// or https:// URL`);
  return url.href.replace(/\/+$/, '');
}

/** The token (--api-token-file's first line, else $VXNET_API_TOKEN) and the CA (--api-ca). */
export function apiAuth(values: Values, env: Env): ApiAuth {
  let token: string | undefined;
  const file = values['api-token-file'];
  if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8').split('\n')[0].trim();
    } catch (err) {
      throw new IoFailure(`--api-token-file ${file}: cannot read it: ${(err as Error).message}`);
    }
    if (token === '') throw new IoFailure(`--api-token-file ${file}: empty (the first line is the token)`);
  } else if (env.VXNET_API_TOKEN) {
    token = env.VXNET_API_TOKEN.trim();
  }
  let ca: Buffer | undefined;
  const caFile = values['api-ca'];
  if (caFile !== undefined) {
    try { ca = readFileSync(caFile); } catch (err) { throw new IoFailure(`--api-ca ${caFile}: cannot read it: ${(err as Error).message}`); }
  }
  return { ...(token !== undefined ? { token } : {}), ...(ca ? { ca } : {}) };
}

/** One request; resolves with the status and the parsed JSON body whatever the status. */
export function apiRequest(base: string, method: string, path: string, o: { auth?: ApiAuth; body?: unknown; timeoutMs?: number } = {}): Promise<{ status: number; body: unknown }> {
  const url = new URL(base + path);
  const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (o.auth?.token !== undefined) headers.authorization = `Bearer ${o.auth.token}`;
  if (payload) { headers['content-type'] = 'application/json'; headers['content-length'] = String(payload.length); }
  const timeoutMs = o.timeoutMs ?? API_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = { method, headers, timeout: timeoutMs, ...(o.auth?.ca ? { ca: o.auth.ca } : {}) };
    const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => reject(new IoFailure(`${url.href}: ${err.message}`)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
        } catch {
          reject(new DecodingFailure(`${url.href}: HTTP ${res.statusCode}, not JSON (is this vxnetd's HTTP API?)`));
        }
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'TIMEOUT' ? err.message : err.code ? `${err.code}${/CERT|SELF_SIGNED|VERIFY/.test(err.code) ? ` (${err.message}; --api-ca FILE trusts the operator's CA)` : ''}` : err.message;
      reject(new IoFailure(`cannot reach vxnetd's API at ${base}: ${why} (is vxnetd running with its HTTP API? --api URL or $VXNET_API)`));
    });
    req.end(payload);
  });
}

/** The VxnetError class the server named, with its message; others by status. */
export function remoteError(status: number, body: unknown, url: string): Error {
  const e = (body as { error?: unknown } | null)?.error;
  if (e && typeof e === 'object') {
    const { code, message } = e as { code?: unknown; message?: unknown };
    const text = typeof message === 'string' ? message : `HTTP ${status}`;
    if (status === 401) return new IoFailure(`${url}: ${text} (give the token: --api-token-file FILE or $VXNET_API_TOKEN)`);
    if (code === 'BadRequest') return new UsageError(text);
    const cls = typeof code === 'string' ? (errors as unknown as Record<string, unknown>)[code] : undefined;
    if (typeof cls === 'function' && (cls as { prototype: unknown }).prototype instanceof VxnetError) {
      return new (cls as new (m: string) => VxnetError)(text);
    }
    return new IoFailure(`${url}: HTTP ${status}: ${text}`);
  }
  return new IoFailure(`${url}: HTTP ${status}${typeof e === 'string' ? `: ${e}` : ''}`);
}

/** A request to the operator API; its answer on 2xx, else the server's error rethrown. */
export async function apiCall<T>(base: string, auth: ApiAuth, method: string, path: string, body?: unknown): Promise<T> {
  const r = await apiRequest(base, method, path, { auth, ...(body !== undefined ? { body } : {}) });
  if (r.status < 200 || r.status >= 300) throw remoteError(r.status, r.body, `${base}${path}`);
  return r.body as T;
}
