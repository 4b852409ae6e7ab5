// The web view's static serving (bin/vxnetd/ui.ts) on a real HTTP server: the redirect, content
// types, caching (index revalidated, hashed assets immutable), the security headers, a clear
// answer when the view is not built, nothing outside dist/ui/.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { webView } from '../../bin/vxnetd/ui';
import { apiFallback } from '../../dns/mesos-api';

async function serve(t: Test, dir: string): Promise<string> {
  const app = express();
  app.use(webView(dir));
  app.use(...apiFallback());
  const s = http.createServer(app);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const get = (url: string): Promise<Response> => fetch(url, { redirect: 'manual' });

t.test('a built view', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-ui-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(join(dir, 'assets'));
  fs.writeFileSync(join(dir, 'index.html'), '<!doctype html><title>vxnet</title>');
  fs.writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
  fs.writeFileSync(join(dir, 'assets', 'index-abc123.css'), 'body{}');
  fs.writeFileSync(join(dir, '..', `${dir.split('/').pop()}-secret`), 'outside');
  t.teardown(() => fs.rmSync(join(dir, '..', `${dir.split('/').pop()}-secret`), { force: true }));
  const base = await serve(t, dir);

  let r = await get(`${base}/ui`);
  t.equal(r.status, 301, '/ui redirects');
  t.equal(r.headers.get('location'), '/ui/', 'to /ui/');
  t.equal((await get(`${base}/ui?x=1`)).headers.get('location'), '/ui/?x=1', 'keeping the query');

  for (const path of ['/ui/', '/ui/index.html']) {
    r = await get(`${base}${path}`);
    t.equal(r.status, 200, `${path}: 200`);
    t.match(r.headers.get('content-type'), /^text\/html/, `${path}: text/html`);
    t.equal(r.headers.get('cache-control'), 'no-cache', `${path}: revalidated on each load`);
    t.match(await r.text(), '<title>vxnet</title>');
  }
  t.match(r.headers.get('content-security-policy'), /default-src 'self'.*connect-src 'self'.*frame-ancestors 'none'/, 'CSP: this origin only, no framing');
  t.equal(r.headers.get('x-content-type-options'), 'nosniff');
  t.equal(r.headers.get('x-frame-options'), 'DENY');
  t.equal(r.headers.get('referrer-policy'), 'no-referrer');

  r = await get(`${base}/ui/assets/index-abc123.js`);
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /^(text|application)\/javascript/, 'a script: javascript');
  t.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable', 'hashed assets: cached for good');
  r = await get(`${base}/ui/assets/index-abc123.css`);
  t.match(r.headers.get('content-type'), /^text\/css/, 'a stylesheet: text/css');

  r = await get(`${base}/ui/assets/missing.js`);
  t.equal(r.status, 404, 'a missing file: 404');
  t.match(r.headers.get('content-type'), /json/, 'the API\'s JSON 404');
  r = await get(`${base}/ui/..%2f${dir.split('/').pop()}-secret`);
  t.not(r.status, 200, 'nothing outside dist/ui/');
  t.equal((await get(`${base}/uix`)).status, 404, '/uix is not the view');
});

t.test('not built: a clear 503', async (t) => {
  const base = await serve(t, join(tmpdir(), 'vxt-ui-none-here'));
  const r = await get(`${base}/ui/`);
  t.equal(r.status, 503);
  const body = (await r.json()) as { error: { code: string; message: string } };
  t.equal(body.error.code, 'IoFailure');
  t.match(body.error.message, /not built.*npm run build/);
});
