// Who may call the API on vxnetd's listener (every route on it: /api, /v1, /ui, /metrics).
// With a token configured (--api-token-file or $VXNET_API_TOKEN), every request needs
// `Authorization: Bearer TOKEN` (or `?access_token=TOKEN`, RFC 6750 2.3, for what cannot set
// headers: a browser's EventSource); compared in constant time. Without one (only possible
// on a loopback listener), reads are open and mutations are taken from loopback clients only.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { HttpError, sendError } from '../lib/http-errors';
import { isMutation } from './router';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Whether `given` is `token`, in time independent of where they differ (both hashed first: lengths do not leak either). */
export function tokenMatches(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

/** The bearer token of a request: the Authorization header's, else ?access_token=. */
export function bearerOf(req: Pick<Request, 'headers' | 'url'>): string | undefined {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1] : '';
  }
  const q = new URL(req.url ?? '/', 'http://x').searchParams.get('access_token');
  return q ?? undefined;
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\./.test(a);
}

/**
 * The web view's own files (GET /ui, /ui/...: bin/vxnetd/ui.ts) hold no data and are served
 * without the token: a browser cannot send a header when it opens a page, and the page's token
 * form is one of them. Everything the page shows it asks /api/v1/* for, with the token.
 */
export const isWebViewFile = (method: string, path: string): boolean => (method === 'GET' || method === 'HEAD') && (path === '/ui' || path.startsWith('/ui/'));

export function authMiddleware(o: { token: string | undefined }): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (o.token !== undefined && !isWebViewFile(req.method, req.path)) {
      const given = bearerOf(req);
      if (given === undefined) { sendError(res, new HttpError(401, 'Unauthorized', 'this API needs a bearer token: Authorization: Bearer TOKEN', { 'www-authenticate': 'Bearer realm="vxnetd"' })); return; }
      if (!tokenMatches(given, o.token)) { sendError(res, new HttpError(401, 'Unauthorized', 'wrong bearer token', { 'www-authenticate': 'Bearer realm="vxnetd", error="invalid_token"' })); return; }
      next();
      return;
    }
    if (isMutation(req.method, req.path) && !isLoopbackAddress(req.socket.remoteAddress)) {
      sendError(res, new HttpError(403, 'Forbidden', 'mutations without a configured token are taken from loopback clients only (start vxnetd with --api-token-file)'));
      return;
    }
    next();
  };
}
