// The edge's certificates, checked before any config names them: a missing, unreadable or bad
// file (no certificate, no key, a key that is not the certificate's) must never reach
// `haproxy -c`, where it would fail the whole config (and one container's label would take the
// edge's TLS down). So every file is read and parsed here first (node:crypto, OpenSSL's own
// parser), a bad one becomes a note naming the endpoint and label that asked for it (or a
// warning naming the --cert-dir file), and it is left out; everything else is served.
//
// Where certificates come from:
//   --cert-dir DIR       every regular file in it (HAProxy's `crt DIR` form: not hidden, not
//                        .key/.ocsp/.issuer/.sctl), the key in the file or beside it as FILE.key;
//                        HAProxy picks among them by the names they hold (CN, SANs); the first
//                        by name is the default for clients without SNI or with an unknown name
//   HAPROXY_n_SSL_CERT   files named by a backend's label: served for that backend's vhosts only
//                        (crt-list lines with its vhosts as SNI filters), and on its service
//                        port's frontend (`bind ... ssl crt FILE`)
// Both go into one crt-list file, DIR/crt-list.<digest of its text>, that the HTTPS frontend
// binds. Its text carries each certificate's sha256, and its name is part of haproxy.cfg, so a
// renewed certificate changes the config text and reloads; a refused candidate never
// overwrites the list the running config names.
//
// `checkPem`, `withTls`, `crtListText` are pure; `CertFiles` reads files (cached by stat).
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync, unlinkSync, existsSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, EdgeModel, Note, Tls, TlsCert } from './model';

export type CertCheck =
  | { readonly ok: true; readonly cert: TlsCert; readonly names: readonly string[]; readonly notAfter: Date }
  | { readonly ok: false; readonly reason: string };

const sha256 = (...texts: string[]): string => {
  const h = createHash('sha256');
  for (const t of texts) h.update(t).update('\0');
  return h.digest('hex');
};

/** The DNS names a certificate answers for: its DNS SANs, else its CN. */
function namesOf(x: X509Certificate): string[] {
  const sans = (x.subjectAltName ?? '').split(',').map((s) => s.trim()).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase());
  if (sans.length) return sans;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/** Does a certificate name (maybe `*.example.com`) cover host? */
export const covers = (name: string, host: string): boolean =>
  name === host || (name.startsWith('*.') && host.endsWith(name.slice(1)) && !host.slice(0, -(name.length - 1)).includes('.'));

/**
 * A PEM text as HAProxy reads a `crt` file: the leaf certificate first, then its chain, and the
 * private key in the same text or in keyText (FILE.key). Pure.
 */
export function checkPem(path: string, text: string, keyText?: string): CertCheck {
  if (!/-----BEGIN CERTIFICATE-----/.test(text)) return { ok: false, reason: 'holds no PEM certificate' };
  let x: X509Certificate;
  try { x = new X509Certificate(text); } catch (err) { return { ok: false, reason: `its certificate does not parse (${(err as Error).message})` }; }
  const keySource = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text) ? text : keyText;
  if (keySource === undefined) return { ok: false, reason: `holds no private key (in the file or in ${path}.key)` };
  let key: KeyObject;
  try { key = createPrivateKey(keySource); } catch (err) { return { ok: false, reason: `its private key does not parse (${(err as Error).message}; an encrypted key is not usable)` }; }
  if (!x.checkPrivateKey(key)) return { ok: false, reason: 'its private key is not the certificate\'s' };
  return { ok: true, cert: { path, sha256: sha256(text, keyText ?? '') }, names: namesOf(x), notAfter: new Date(x.validTo) };
}

/** HAProxy's `crt DIR` skips these: they are a certificate's companions, not certificates. */
const COMPANION = /\.(key|ocsp|issuer|sctl)$/;

/** Reads and checks certificate files; a file's answer is kept while its (and its .key's) stat stays the same. */
export class CertFiles {
  private readonly cache = new Map<string, { sig: string; check: CertCheck }>();

  check(path: string): CertCheck {
    const sig = [path, `${path}.key`].map((p) => {
      try { const s = statSync(p); return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`; } catch { return '-'; }
    }).join('|');
    const hit = this.cache.get(path);
    if (hit && hit.sig === sig) return hit.check;
    const check = this.read(path);
    this.cache.set(path, { sig, check });
    return check;
  }

  private read(path: string): CertCheck {
    let text: string;
    try {
      if (!statSync(path).isFile()) return { ok: false, reason: 'is not a regular file' };
      text = readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { ok: false, reason: code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable' : `cannot be read (${code ?? String(err)})` };
    }
    let keyText: string | undefined;
    try { keyText = readFileSync(`${path}.key`, 'utf8'); } catch { keyText = undefined; }
    return checkPem(path, text, keyText);
  }

  /** Every certificate file of --cert-dir, sorted by name, each checked. */
  dir(dir: string): Array<{ path: string; check: CertCheck }> {
    let names: string[];
    try { names = readdirSync(dir); } catch (err) {
      return [{ path: dir, check: { ok: false, reason: `cannot be listed (${(err as NodeJS.ErrnoException).code ?? String(err)})` } }];
    }
    return names.filter((n) => !n.startsWith('.') && !COMPANION.test(n)).sort()
      .map((n) => join(dir, n))
      .filter((p) => { try { return statSync(p).isFile(); } catch { return false; } })
      .map((path) => ({ path, check: this.check(path) }));
  }
}

/** The port index of a backend (`SERVICE_n`). */
const portIndex = (b: Backend): string => /_(\d+)$/.exec(b.name)?.[1] ?? '0';

/**
 * The model with its certificates checked: each backend keeps the HAPROXY_n_SSL_CERT files that
 * passed (the others are notes naming the endpoint whose labels decide the backend), the TLS
 * set lists them with --cert-dir's good ones, and REDIRECT_TO_HTTPS is dropped (a note) while
 * no certificate exists, since there is no HTTPS frontend to send anyone to. Pure.
 */
export function withTls(model: EdgeModel, check: (path: string) => CertCheck, dirCerts: readonly TlsCert[], now = new Date()): { model: EdgeModel; notes: Note[] } {
  const notes: Note[] = [];
  const label = new Map<string, TlsCert>();
  const resolved = model.backends.map((b): Backend => {
    if (!b.sslCerts.length) return b;
    const endpoint = b.servers[0]?.id ?? b.name;
    const key = `HAPROXY_${portIndex(b)}_SSL_CERT`;
    const kept: string[] = [];
    for (const path of b.sslCerts) {
      const c = check(path);
      if (!c.ok) { notes.push({ endpoint, label: key, message: `certificate ${path} ${c.reason}; left out, backend ${b.name} served without it` }); continue; }
      kept.push(path);
      label.set(path, c.cert);
      if (c.notAfter < now) notes.push({ endpoint, label: key, message: `certificate ${path} expired on ${c.notAfter.toISOString()}; served, clients will refuse it` });
      const uncovered = b.vhosts.filter((h) => !c.names.some((n) => covers(n, h)));
      if (uncovered.length) notes.push({ endpoint, label: key, message: `certificate ${path} (${c.names.join(', ') || 'no names'}) does not name ${uncovered.join(', ')}; clients will refuse it there` });
    }
    return { ...b, sslCerts: kept };
  });
  const tls: Tls = { dirCerts: [...dirCerts], labelCerts: [...label.values()].sort((a, b) => (a.path < b.path ? -1 : 1)) };
  const anyCert = tls.dirCerts.length > 0 || resolved.some((b) => b.sslCerts.length && b.vhosts.length);
  const backends = anyCert ? resolved : resolved.map((b) => {
    if (!b.redirectToHttps) return b;
    notes.push({ endpoint: b.servers[0]?.id ?? b.name, label: `HAPROXY_${portIndex(b)}_REDIRECT_TO_HTTPS`, message: 'no certificate for the HTTPS frontend (--cert-dir or HAPROXY_n_SSL_CERT); not redirected' });
    return { ...b, redirectToHttps: false };
  });
  return { model: { ...model, backends, ...(tls.dirCerts.length || tls.labelCerts.length ? { tls } : {}) }, notes };
}

/**
 * The crt-list the HTTPS frontend binds: --cert-dir's certificates (no filter: HAProxy uses their
 * names; the first is the default), then each label certificate with the vhosts of the backends
 * that name it as SNI filters. Each line follows a comment with its digest. '' when there is no
 * vhost certificate: then there is no HTTPS frontend. Pure.
 */
export function crtListText(backends: readonly Pick<Backend, 'sslCerts' | 'vhosts'>[], tls: Tls | undefined): string {
  if (!tls) return '';
  const lines: string[] = [];
  for (const c of tls.dirCerts) lines.push(`# sha256 ${c.sha256}`, c.path);
  const digest = new Map(tls.labelCerts.map((c) => [c.path, c.sha256]));
  const sni = new Map<string, Set<string>>();
  for (const b of backends) {
    if (!b.vhosts.length) continue;
    for (const p of b.sslCerts) {
      if (!digest.has(p)) continue;
      const set = sni.get(p) ?? new Set<string>();
      for (const h of b.vhosts) set.add(h);
      sni.set(p, set);
    }
  }
  for (const [p, hosts] of [...sni].sort((a, b) => (a[0] < b[0] ? -1 : 1))) lines.push(`# sha256 ${digest.get(p) as string}`, `${p} ${[...hosts].sort().join(' ')}`);
  return lines.length ? `# Written by vxnet-lb: the HTTPS frontend's certificates.\n${lines.join('\n')}\n` : '';
}

/** The crt-list's file: named by its text's digest, so each config names the list it was checked with. */
export const crtListPath = (dir: string, text: string): string => join(dir, `crt-list.${sha256(text).slice(0, 16)}`);

/** Writes the crt-list `text` to its file (once: the name is the digest). */
export function writeCrtList(dir: string, text: string): void {
  if (!text) return;
  const p = crtListPath(dir, text);
  if (existsSync(p)) return;
  writeFileSync(`${p}.new`, text, { mode: 0o600 });
  renameSync(`${p}.new`, p);
}

/** Removes the crt-lists of `dir` that none of `configs` (texts) names any more. */
export function pruneCrtLists(dir: string, configs: readonly string[]): void {
  let names: string[];
  try { names = readdirSync(dir); } catch { return; }
  for (const n of names) {
    if (!/^crt-list\.[0-9a-f]{16}$/.test(n)) continue;
    const p = join(dir, n);
    if (!configs.some((c) => c.includes(p))) { try { unlinkSync(p); } catch { /* gone already */ } }
  }
}
