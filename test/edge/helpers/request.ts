// One HTTP or HTTPS request to the edge on 127.0.0.1 with a Host header (and for HTTPS an SNI
// name, a CA to verify against or none), on a fresh connection: status, headers, body, and the
// certificate the server presented. Status 0: no answer (the error is the body).
import * as http from 'node:http';
import * as https from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** HTTPS: the presented certificate's CN and DNS SANs. */
  cert?: { cn: string; san: string };
}

export interface RequestOptions {
  port: number;
  host: string;
  path?: string;
  headers?: Record<string, string>;
  /** HTTPS with this SNI name (default: host); ca: verify against it, else accept any certificate. */
  tls?: { servername?: string; ca?: string };
  timeoutMs?: number;
}

export function request(o: RequestOptions): Promise<Answer> {
  return new Promise((resolve) => {
    const common = { host: '127.0.0.1', port: o.port, path: o.path ?? '/', headers: { host: o.host, ...o.headers }, agent: false, timeout: o.timeoutMs ?? 5000 };
    const done = (res: http.IncomingMessage): void => {
      let body = '';
      let cert: Answer['cert'];
      const sock = res.socket as TLSSocket;
      if (o.tls && typeof sock.getPeerCertificate === 'function') {
        const c = sock.getPeerCertificate();
        cert = { cn: String(c.subject?.CN ?? ''), san: c.subjectaltname ?? '' };
      }
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ...(cert ? { cert } : {}) }));
      res.on('error', () => resolve({ status: 0, headers: {}, body }));
    };
    const req = o.tls
      ? https.get({ ...common, servername: o.tls.servername ?? o.host.replace(/:\d+$/, ''), ...(o.tls.ca ? { ca: o.tls.ca } : { rejectUnauthorized: false }) }, done)
      : http.get(common, done);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, headers: {}, body: err.message }));
  });
}
