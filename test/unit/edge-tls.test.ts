// edge/certs.ts and the TLS half of edge/labels.ts and edge/config.ts: HAPROXY_n_SSL_CERT and
// _USE_HSTS read; certificate files checked (good, key beside it, no key, another key, not PEM,
// missing) with a test CA made by openssl; a bad certificate a note naming the endpoint and
// label, and left out; no certificate: no HTTPS frontend and no redirect; the crt-list (cert-dir
// first, label certificates with their vhosts as SNI filters); the config text, and
// `haproxy -c` accepting it with the test certificates, without a warning.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Endpoint } from '../../catalog/endpoint';
import { CertFiles, checkPem, covers, crtListText, pruneCrtLists, withTls, writeCrtList } from '../../edge/certs';
import { crtListOf, DEFAULT_CONFIG, renderConfig } from '../../edge/config';
import { classify } from '../../edge/diff';
import { edgeModel } from '../../edge/labels';
import { parseFlags } from '../../edge/flags';
import { formatNote, type Backend, type Server } from '../../edge/model';
import { UsageError } from '../../lib/usage';
import { place } from '../../edge/slots';
import { testCa } from '../edge/helpers/certs';

const dir = mkdtempSync(join(tmpdir(), 'vxt-edge-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ca = testCa(dir);
const aPem = ca.leaf('a', ['a.example', 'www.a.example']);
const bPem = ca.leaf('b', ['b.example'], { keyApart: true });
const wild = ca.leaf('wild', ['*.w.example']);
const other = ca.leaf('other', ['other.example']);
// A certificate with another certificate's key: parses, but HAProxy would refuse it.
const mismatched = join(dir, 'mismatched.pem');
writeFileSync(mismatched, readFileSync(join(dir, 'a.crt'), 'utf8') + readFileSync(join(dir, 'other.keyfile'), 'utf8'));
const noKey = join(dir, 'nokey.pem');
writeFileSync(noKey, readFileSync(join(dir, 'a.crt')));
const garbage = join(dir, 'garbage.pem');
writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');

const ep = (c: string, labels: Record<string, string>): Endpoint => ({
  id: `h1/blue/${c}`, host: 'h1', runtime: 'cni', containerId: c, network: 'blue', name: c, aliases: [],
  addresses: ['10.0.0.1'], labels: { HAPROXY_GROUP: 'external', ...labels }, ports: [{ port: 8080, protocol: 'tcp' }],
});
const opts = { group: 'external', strictMode: false };

t.test('labels: SSL_CERT and USE_HSTS', async (t) => {
  const { model, notes } = edgeModel([ep('a', { HAPROXY_0_VHOST: 'a.example', HAPROXY_0_SSL_CERT: `${bPem}, ${aPem}`, HAPROXY_0_USE_HSTS: 'true' })], opts);
  t.same(notes, []);
  t.match(model.backends[0], { sslCerts: [aPem, bPem].sort(), hsts: true });
  for (const bad of ['relative.pem', '/etc/../etc/shadow', '/x y.pem', '/a.pem\n  bind :1']) {
    const r = edgeModel([ep('a', { HAPROXY_0_VHOST: 'a.example', HAPROXY_0_SSL_CERT: bad })], opts);
    t.same(r.model.backends, [], `not served: ${JSON.stringify(bad)}`);
    t.match(r.notes.map(formatNote).join('\n'), /label HAPROXY_0_SSL_CERT: .* is not an absolute file path/s);
  }
  const tcp = edgeModel([ep('a', { HAPROXY_0_PORT: '1000', HAPROXY_0_USE_HSTS: 'true' })], opts);
  t.match(tcp.model.backends[0], { hsts: false });
  t.match(formatNote(tcp.notes[0]!), /HAPROXY_0_USE_HSTS: needs http mode/);
});

t.test('checkPem and CertFiles: what HAProxy would load, and why not', async (t) => {
  const files = new CertFiles();
  const a = files.check(aPem);
  t.ok(a.ok, 'certificate and key in one file');
  if (a.ok) t.same(a.names, ['a.example', 'www.a.example']);
  t.ok(files.check(bPem).ok, 'the key beside it as FILE.key');
  t.same(files.check(aPem), a, 'cached while the file is unchanged');
  const reasons: Array<[string, RegExp]> = [
    [noKey, /holds no private key/], [mismatched, /private key is not the certificate's/], [garbage, /certificate does not parse/],
    [join(dir, 'missing.pem'), /does not exist/], [dir, /not a regular file/], [join(dir, 'ca.key'), /holds no PEM certificate/],
  ];
  for (const [p, re] of reasons) {
    const c = files.check(p);
    t.match(c, { ok: false, reason: re }, `${p.replace(dir, '')}: ${c.ok ? 'ok' : c.reason}`);
  }
  t.match(checkPem('/x', readFileSync(join(dir, 'a.crt'), 'utf8'), readFileSync(join(dir, 'b.keyfile'), 'utf8')), { ok: false });
  // A renewed file (new content, same path) gives a new digest.
  const renewed = join(dir, 'renewed.pem');
  writeFileSync(renewed, readFileSync(aPem));
  const before = files.check(renewed);
  writeFileSync(renewed, readFileSync(join(dir, 'other.pem')));
  const after = files.check(renewed);
  t.ok(before.ok && after.ok && before.cert.sha256 !== after.cert.sha256, 'a renewed certificate: a new digest');
  t.ok(covers('*.w.example', 'x.w.example') && !covers('*.w.example', 'a.b.w.example') && !covers('*.w.example', 'w.example') && covers('a.example', 'a.example'));
  const certDir = join(dir, 'certdir');
  mkdirSync(certDir);
  writeFileSync(join(certDir, 'z.pem'), readFileSync(aPem));
  writeFileSync(join(certDir, 'b.pem'), readFileSync(bPem));
  writeFileSync(join(certDir, 'b.pem.key'), readFileSync(`${bPem}.key`));
  writeFileSync(join(certDir, 'README'), 'notes\n');
  writeFileSync(join(certDir, '.hidden'), 'x');
  t.same(files.dir(certDir).map((d) => [d.path.replace(`${certDir}/`, ''), d.check.ok]), [['README', false], ['b.pem', true], ['z.pem', true]],
    'the directory form: companions (.key) and hidden files skipped, each file checked');
});

t.test('withTls: bad certificates are notes and left out; no certificate, no redirect', async (t) => {
  const files = new CertFiles();
  const check = (p: string) => files.check(p);
  const labelled = edgeModel([
    ep('a', { HAPROXY_0_VHOST: 'a.example', HAPROXY_0_SSL_CERT: aPem, HAPROXY_0_USE_HSTS: 'true' }),
    ep('b', { HAPROXY_0_VHOST: 'b.example', HAPROXY_0_SSL_CERT: `${mismatched},${bPem}`, HAPROXY_0_REDIRECT_TO_HTTPS: 'true' }),
    ep('c', { HAPROXY_0_VHOST: 'c.example', HAPROXY_0_SSL_CERT: join(dir, 'missing.pem') }),
    ep('d', { HAPROXY_0_VHOST: 'd.example', HAPROXY_0_SSL_CERT: other }),
  ], opts);
  const { model, notes } = withTls(labelled.model, check, []);
  t.same(model.backends.map((b) => [b.name, b.sslCerts]), [['a_0', [aPem]], ['b_0', [bPem]], ['c_0', []], ['d_0', [other]]], 'only the good ones stay; every backend is served');
  const text = notes.map(formatNote).join('\n');
  t.match(text, `endpoint h1/blue/b label HAPROXY_0_SSL_CERT: certificate ${mismatched} its private key is not the certificate's; left out`);
  t.match(text, `endpoint h1/blue/c label HAPROXY_0_SSL_CERT: certificate ${join(dir, 'missing.pem')} does not exist; left out`);
  t.match(text, /endpoint h1\/blue\/d label HAPROXY_0_SSL_CERT: certificate .*other.pem \(other.example\) does not name d.example/);
  t.same(model.tls?.labelCerts.map((c) => c.path), [aPem, bPem, other].sort());

  const plain = withTls(edgeModel([ep('b', { HAPROXY_0_VHOST: 'b.example', HAPROXY_0_REDIRECT_TO_HTTPS: 'true', HAPROXY_0_SSL_CERT: noKey })], opts).model, check, []);
  t.match(plain.model.backends[0], { redirectToHttps: false, sslCerts: [] });
  t.equal(plain.model.tls, undefined);
  t.match(plain.notes.map(formatNote).join('\n'), /HAPROXY_0_REDIRECT_TO_HTTPS: no certificate for the HTTPS frontend/);
  const text2 = renderConfig(place(undefined, plain.model, 4), { ...DEFAULT_CONFIG, statsSocket: join(dir, 'admin.sock') });
  t.notMatch(text2, /https_in|ssl|redirect/, 'no certificate: no HTTPS frontend, no redirect');
  const withDir = withTls(edgeModel([ep('b', { HAPROXY_0_VHOST: 'b.example', HAPROXY_0_REDIRECT_TO_HTTPS: 'true' })], opts).model, check, [{ path: '/d/x.pem', sha256: 'f'.repeat(64) }]);
  t.match(withDir.model.backends[0], { redirectToHttps: true }, 'a --cert-dir certificate is enough to redirect');
});

const srv: Server = { id: 'h1/blue/c1', address: '127.0.0.1', port: 8080, weight: 1 };
const backend = (name: string, more: Partial<Backend>): Backend => ({
  name, mode: 'http', balance: 'roundrobin', sticky: false, redirectToHttps: false, sslCerts: [], hsts: false, health: undefined, vhosts: [`${name}.example`],
  path: undefined, aclWeight: 0, servicePort: undefined, bindAddr: '*', servers: [srv], ...more,
});

t.test('crt-list and config text; haproxy -c accepts them', async (t) => {
  const files = new CertFiles();
  const dirCert = files.check(wild);
  if (!dirCert.ok) { t.fail('wild cert'); return; }
  const raw = {
    backends: [
      backend('a', { vhosts: ['a.example', 'www.a.example'], sslCerts: [aPem], hsts: true }),
      backend('a2', { vhosts: ['a.example'], path: '/v2', sslCerts: [aPem] }),
      backend('b', { vhosts: ['b.example'], sslCerts: [bPem], redirectToHttps: true }),
      backend('c', { vhosts: ['c.w.example'], redirectToHttps: true, path: '/x' }),
      backend('t', { mode: 'tcp', vhosts: [], servicePort: 18443, bindAddr: '127.0.0.1', sslCerts: [aPem, bPem] }),
    ],
  };
  const { model, notes } = withTls(raw, (p) => files.check(p), [dirCert.cert]);
  t.same(notes, []);
  const list = crtListText(model.backends, model.tls);
  const lines = list.split('\n').filter((l) => l && !l.startsWith('#'));
  t.same(lines, [wild, `${aPem} a.example www.a.example`, `${bPem} b.example`], 'the cert-dir first (the default), then one line per label certificate with its vhosts');
  t.match(list, /# sha256 [0-9a-f]{64}\n/);
  t.equal(crtListText([], undefined), '');

  const o = { ...DEFAULT_CONFIG, statsSocket: join(dir, 'admin.sock'), httpPort: 8080, httpsPort: 8443, crtListDir: dir };
  const placed = place(undefined, model, 4);
  const text = renderConfig(placed, o);
  const crt = crtListOf(placed, o);
  t.ok(crt, 'a crt-list');
  t.match(text, `frontend https_in\n  bind *:8443 ssl crt-list ${crt!.path} alpn h2,http/1.1\n  mode http\n`);
  t.match(text, /frontend https_in\n(?:.*\n)*  use_backend a2 if host_a2 path_a2\n  use_backend c if host_c path_c\n  use_backend a if host_a\n  use_backend b if host_b\n/, 'the same rules behind TLS');
  t.match(text, /  http-request redirect prefix https:\/\/%\[var\(txn.vxlb_host\)\]:8443 code 301 if host_c path_c\n  http-request redirect prefix https:\/\/%\[var\(txn.vxlb_host\)\]:8443 code 301 if host_b\n/, 'longer paths first, as the rules');
  t.match(renderConfig(placed, { ...o, httpsPort: 443 }), /http-request redirect prefix https:\/\/%\[var\(txn.vxlb_host\)\] code 301 if host_b\n/, 'port 443 is left out of Location');
  t.match(text, /backend a\n  mode http\n  balance roundrobin\n  http-request disable-l7-retry unless \{ method GET HEAD OPTIONS TRACE PUT DELETE \}\n  http-response set-header Strict-Transport-Security max-age=15768000 if \{ ssl_fc \}\n/);
  t.notMatch(text.slice(text.indexOf('backend b\n')), /Strict-Transport-Security/, 'HSTS only where asked');
  t.match(text, new RegExp(`frontend t_port\n  # ${aPem} sha256 [0-9a-f]{64}\n  # ${bPem} sha256 [0-9a-f]{64}\n  bind 127.0.0.1:18443 ssl crt ${aPem} crt ${bPem}\n  mode tcp\n`), 'a service port with certificates terminates TLS');
  t.equal(renderConfig(placed, o), text, 'the same model, the same text');
  // A renewed certificate: another crt-list digest, so another config text, and a reload.
  const renewedTls = { ...model.tls!, labelCerts: model.tls!.labelCerts.map((c) => (c.path === bPem ? { ...c, sha256: '0'.repeat(64) } : c)) };
  const renewed = place(placed, { ...model, tls: renewedTls }, 4);
  t.not(crtListOf(renewed, o)!.path, crt!.path, 'a renewal names another crt-list');
  t.same(classify(placed, renewed), { kind: 'reload', reasons: ['certificates changed'] });

  const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (haproxy.status !== 0) { t.comment('haproxy not installed: -c skipped'); return; }
  writeCrtList(dir, crt!.text);
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, text);
  const r = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
  t.equal(r.status, 0, `haproxy -c accepts it: ${r.stdout}${r.stderr}`);
  t.notMatch(`${r.stdout}${r.stderr}`, /WARNING/, 'without a warning');
  pruneCrtLists(dir, [text]);
  t.same(readdirSync(dir).filter((n) => n.startsWith('crt-list.')), [crt!.path.replace(`${dir}/`, '')], 'the named crt-list stays');
  pruneCrtLists(dir, []);
  t.same(readdirSync(dir).filter((n) => n.startsWith('crt-list.')), [], 'one no config names goes');
});

t.test('flags: --cert-dir, --https-port', async (t) => {
  t.match(parseFlags([], {}), { certDir: undefined, httpsPort: 443 });
  t.match(parseFlags(['--cert-dir', '/etc/vxnet-lb/certs', '--https-port', '8443'], {}), { certDir: '/etc/vxnet-lb/certs', httpsPort: 8443 });
  t.throws(() => parseFlags(['--https-port', '0'], {}), UsageError);
  t.throws(() => parseFlags(['--cert-dir', ''], {}), UsageError);
});
