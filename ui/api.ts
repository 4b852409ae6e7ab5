// The web view's client of the operator API (the resources' types are in types.ts): every
// request carries the bearer token when the operator gave one (kept in sessionStorage: gone
// with the tab, never in a cookie); a 401 asks for it again.

export type * from './types';

/** A request the API refused or could not answer: its status and vxnet's error code and message. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

const TOKEN_KEY = 'vxnet.api.token';

/** sessionStorage's part the page uses (absent under Node, in the unit tests). */
interface TokenStorage { getItem(key: string): string | null; setItem(key: string, value: string): void; removeItem(key: string): void }
const storage = (): TokenStorage | undefined => (globalThis as { sessionStorage?: TokenStorage }).sessionStorage;

export function storedToken(): string | undefined {
  try { return storage()?.getItem(TOKEN_KEY) ?? undefined; } catch { return undefined; }
}

export function storeToken(token: string | undefined): void {
  try {
    if (token) storage()?.setItem(TOKEN_KEY, token);
    else storage()?.removeItem(TOKEN_KEY);
  } catch { /* storage off: the token lives as long as the page */ }
}

/** Headers for the API: Accept, and Authorization when a token is set. */
export function authHeaders(token: string | undefined, accept = 'application/json'): Record<string, string> {
  const h: Record<string, string> = { Accept: accept };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

export class Api {
  private token: string | undefined = storedToken();
  /** Called on a 401 (no token, or a wrong one). */
  onUnauthorized: (err: ApiError) => void = () => undefined;

  constructor(readonly base = '/api/v1') {}

  hasToken(): boolean { return this.token !== undefined; }
  getToken(): string | undefined { return this.token; }
  setToken(token: string | undefined): void {
    this.token = token || undefined;
    storeToken(this.token);
  }

  async get<T>(path: string, query: Record<string, string | undefined> = {}): Promise<T> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, v);
    const url = `${this.base}${path}${q.size ? `?${q.toString()}` : ''}`;
    let res: Response;
    try {
      res = await fetch(url, { headers: authHeaders(this.token) });
    } catch (e) {
      throw new ApiError(0, 'IoFailure', `vxnetd did not answer (${(e as Error).message})`);
    }
    if (!res.ok) throw await errorOf(res, this);
    return (await res.json()) as T;
  }
}

/** The API's error body {error: {code, message}}, or the status line when the body is not one. */
export async function errorOf(res: Response, api?: Api): Promise<ApiError> {
  let code = `HTTP ${res.status}`;
  let message = res.statusText || code;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch { /* not JSON */ }
  const err = new ApiError(res.status, code, message);
  if (res.status === 401 && api) api.onUnauthorized(err);
  return err;
}
