// The web view (ui/, built by Vite into dist/ui/) as static files on the HTTP API's listener:
// GET /ui redirects to /ui/; /ui/ is index.html (revalidated on every load: `no-cache`), and
// /ui/assets/* are Vite's content-hashed files (a new build gets new names: cached for a year,
// `immutable`). Content types from the file extension (express.static); every response says
// nosniff, a Content-Security-Policy that lets the page load and call only this origin, no
// framing and no referrer. The files hold no data: the page asks /api/v1/* for it, with the
// token when one is configured, so they are served without one (the token form is one of them).
import { IoFailure } from '../../lib/errors';
import { sendError } from '../../lib/http-errors';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RequestHandler, Router } from 'express';
import { bundled, distDir } from '../../lib/native';

/** dist/ui/: beside the bundle when vxnetd runs built, the repository's dist/ui/ from source (tests). */
export function uiDir(): string {
  return bundled ? path.join(distDir(), 'ui') : path.join(__dirname, '..', '..', 'dist', 'ui');
}

export const UI_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

/** The router serving the web view from dir (default uiDir()); mount it at the root. */
export function webView(dir = uiDir()): Router {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const router = express.Router({ strict: true });
  const headers: RequestHandler = (_req, res, next) => { res.set(UI_HEADERS); next(); };
  router.get('/ui', (req, res) => {
    const q = req.originalUrl.indexOf('?');
    res.redirect(301, `/ui/${q >= 0 ? req.originalUrl.slice(q) : ''}`);
  });
  router.use('/ui', headers, (req, res, next) => {
    if (fs.existsSync(path.join(dir, 'index.html'))) { next(); return; }
    sendError(res, new IoFailure(`the web view is not built (${dir} has no index.html): npm run build`));
  }, express.static(dir, {
    index: 'index.html',
    redirect: false,
    dotfiles: 'ignore',
    fallthrough: true,
    setHeaders: (res, file) => {
      res.setHeader('Cache-Control', path.relative(dir, file).startsWith(`assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  }));
  return router;
}
