// A test CA made with `openssl` in a directory the caller owns (and removes): leaf
// certificates for given host names, as HAProxy's `crt` files (certificate then key, one PEM).
// EC P-256 keys: a few milliseconds each, where RSA would cost ~100 ms.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  readonly dir: string;
  /** The CA certificate (PEM path), what clients trust. */
  readonly caFile: string;
  readonly caPem: string;
  /** A leaf for `hosts` (the first is the CN, all are DNS SANs): the combined PEM's path. */
  leaf(name: string, hosts: readonly string[], o?: { keyApart?: boolean; days?: number }): string;
}

const openssl = (args: string[]): void => { execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] }); };
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function testCa(dir: string): TestCa {
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  openssl(['req', '-x509', ...EC, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=vxt test CA']);
  return {
    dir, caFile, caPem: readFileSync(caFile, 'utf8'),
    leaf(name, hosts, o = {}) {
      const key = join(dir, `${name}.keyfile`);
      const csr = join(dir, `${name}.csr`);
      const crt = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}\n`);
      openssl(['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${hosts[0] ?? name}`]);
      openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', crt, '-days', String(o.days ?? 2), '-extfile', ext]);
      const pem = join(dir, `${name}.pem`);
      if (o.keyApart) {
        writeFileSync(pem, readFileSync(crt));
        writeFileSync(`${pem}.key`, readFileSync(key));
      } else {
        writeFileSync(pem, Buffer.concat([readFileSync(crt), readFileSync(key)]));
      }
      return pem;
    },
  };
}
