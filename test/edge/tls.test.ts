// vxnet-lb's TLS with Debian's HAProxy and a test CA made with openssl: two vhosts each with its
// own certificate (one from --cert-dir, one from HAPROXY_0_SSL_CERT), each presented for its
// SNI name and verified against the CA, each vhost routed to its backend; HTTP -> HTTPS
// redirect (301, Location on the HTTPS frontend, path and query kept); HSTS on the HTTPS
// responses of the backend that asked; a bad certificate on one endpoint logged with the
// endpoint and label, that vhost and every other still served; a bad file in --cert-dir logged
// and left out; a certificate added to --cert-dir served without a restart.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../helpers/sh';
import { testCa } from './helpers/certs';
import { endpoint, feedServer, freePort, httpBackend, startLb } from './helpers/edge';
import { request } from './helpers/request';

if (spawnSync('haproxy', ['-v']).status !== 0) t.plan(0, 'haproxy is not installed (apt-get install haproxy)');
else t.setTimeout(120_000);

const G = { HAPROXY_GROUP: 'external' };

t.test('certificates per SNI, redirect, HSTS, a bad certificate left out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vxt-edge-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = testCa(dir);
  const certDir = join(dir, 'certs');
  mkdirSync(certDir);
  copyFileSync(ca.leaf('a', ['a.example']), join(certDir, 'a.pem'));
  writeFileSync(join(certDir, 'junk.pem'), 'not a certificate\n');
  const bPem = ca.leaf('b', ['b.example']);
  const dPem = ca.leaf('d', ['d.example']);
  // c's label names a certificate whose key is another's: HAProxy would refuse the whole config.
  const cBad = join(dir, 'c-bad.pem');
  writeFileSync(cBad, readFileSync(join(dir, 'd.crt'), 'utf8') + readFileSync(join(dir, 'b.keyfile'), 'utf8'));

  const feed = await feedServer(t);
  const [a1, b1, c1, d1] = await Promise.all(['a1', 'b1', 'c1', 'd1'].map((n) => httpBackend(t, n)));
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  feed.catalog.put(endpoint('a1', a1!.port, { ...G, HAPROXY_0_VHOST: 'a.example' }));
  feed.catalog.put(endpoint('b1', b1!.port, { ...G, HAPROXY_0_VHOST: 'b.example', HAPROXY_0_SSL_CERT: bPem, HAPROXY_0_REDIRECT_TO_HTTPS: 'true', HAPROXY_0_USE_HSTS: 'true' }));
  feed.catalog.put(endpoint('c1', c1!.port, { ...G, HAPROXY_0_VHOST: 'c.example', HAPROXY_0_SSL_CERT: cBad }));
  feed.catalog.put(endpoint('d1', d1!.port, { ...G, HAPROXY_0_VHOST: 'd.example' }));
  const lb = await startLb(t, { api: feed.url, httpPort, args: ['--cert-dir', certDir, '--https-port', String(httpsPort)] });
  const tls = (host: string, path = '/', verify = true) => request({ port: httpsPort, host, path, tls: verify ? { ca: ca.caPem } : {} });

  const a = await tls('a.example');
  t.match(a, { status: 200, body: 'a1 /', cert: { cn: 'a.example' } }, 'a.example: its --cert-dir certificate, verified by the test CA, routed to a1');
  t.equal(a.headers['strict-transport-security'], undefined, 'no HSTS where not asked');
  const b = await tls('b.example', '/p?q=1');
  t.match(b, { status: 200, body: 'b1 /p?q=1', cert: { cn: 'b.example' } }, 'b.example: its label certificate (SNI filter), routed to b1');
  t.equal(b.headers['strict-transport-security'], 'max-age=15768000', 'HSTS on b\'s HTTPS responses');

  const redirect = await request({ port: httpPort, host: `b.example:${httpPort}`, path: '/p?q=1' });
  t.equal(redirect.status, 301, 'HTTP on b.example: a redirect');
  t.equal(redirect.headers.location, `https://b.example:${httpsPort}/p?q=1`, 'to the HTTPS frontend, path and query kept');
  t.equal(redirect.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
  const followed = await request({ port: Number(new URL(redirect.headers.location!).port), host: 'b.example', path: '/p?q=1', tls: { ca: ca.caPem } });
  t.match(followed, { status: 200, body: 'b1 /p?q=1' }, 'and the Location serves');
  t.match(await request({ port: httpPort, host: 'a.example' }), { status: 200, body: 'a1 /' }, 'a.example is not redirected');

  // The bad certificate: logged with the endpoint and label, left out; c is still served (TLS
  // with the default certificate, and HTTP), and so is everything else.
  await pollUntil(() => /endpoint h1\/blue\/c1 label HAPROXY_0_SSL_CERT: certificate \S+c-bad.pem its private key is not the certificate's; left out/.test(lb.log()) || undefined,
    { timeoutMs: 5000, what: 'the bad certificate in the log' }).catch((err: Error) => { throw new Error(`${err.message}\n${lb.log()}`); });
  t.pass('the bad certificate is logged with its endpoint and label');
  t.equal(lb.log().match(/c-bad.pem its private key/g)?.length, 1, 'once');
  t.match(lb.log(), /--cert-dir: certificate \S+junk.pem holds no PEM certificate; left out/, 'a bad --cert-dir file is logged');
  t.match(await tls('c.example', '/', false), { status: 200, body: 'c1 /', cert: { cn: 'a.example' } }, 'c.example: served over TLS with the default certificate');
  t.match(await request({ port: httpPort, host: 'c.example' }), { status: 200, body: 'c1 /' }, 'and over HTTP');
  t.match(await tls('a.example'), { status: 200, cert: { cn: 'a.example' } }, 'the other vhosts keep their certificates');
  t.notOk(/refuses/.test(lb.log()), 'HAProxy never saw a config with the bad certificate');

  // A certificate put into --cert-dir: d.example gets it, no restart.
  t.match(await tls('d.example', '/', false), { body: 'd1 /', cert: { cn: 'a.example' } }, 'd.example before: the default certificate');
  copyFileSync(dPem, join(dir, 'd.pem.tmp'));
  renameSync(join(dir, 'd.pem.tmp'), join(certDir, 'd.pem'));
  const d = await pollUntil(async () => { const r = await tls('d.example'); return r.cert?.cn === 'd.example' ? r : undefined; }, { timeoutMs: 10_000, intervalMs: 100, what: 'd.example\'s certificate' });
  t.match(d, { status: 200, body: 'd1 /' }, 'a certificate added to --cert-dir is served (verified), without a restart');
  // (The new worker may serve before vxnet-lb has logged the reload it asked for.)
  t.ok(await pollUntil(() => /reloaded HAProxy.*certificates changed/.test(lb.log()) || undefined, { timeoutMs: 5000, what: 'the reload in the log' })
    .catch(() => t.comment(lb.log())), 'by a reload');
  await lb.stop();
});
