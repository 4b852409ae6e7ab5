// vxnetd's HTTP(S) listener for everything served on it (the operator API, Mesos-DNS's /v1,
// /ui, /metrics): node's http or https server with bounds on what a client may cost, the
// token check first (./auth.ts), a body size limit, then the mounted handlers in order, and a
// JSON 404/500 last. A bad client (wrong token, oversized body, half a header) is refused or
// cut off; the server and vxnetd carry on.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import type { ErrorRequestHandler, RequestHandler, Router } from 'express';
import { IoFailure } from '../lib/errors';
import type { Logger } from '../lib/log';
import { authMiddleware } from './auth';
import { HttpError, sendError } from '../lib/http-errors';
import { BODY_LIMIT } from './router';

/** A client must send its whole request head within this long. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** ... and its whole request (head and body) within this long. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** How often node checks those two (its default, 30 s, would let a slow client linger). */
const CHECK_INTERVAL_MS = 1000;

export interface TlsFiles { readonly certFile: string; readonly keyFile: string }

export interface ApiServerOptions {
  /** Numeric address (IPv4 or IPv6) and port (0: any). */
  readonly host: string;
  readonly port: number;
  readonly tls?: TlsFiles;
  /** Every request needs it when set. */
  readonly token?: string;
  /** Mounted in order after the token check and the size limit: routers and handlers. */
  readonly mounts: ReadonlyArray<Router | RequestHandler | readonly [string, Router | RequestHandler]>;
  /** Last: 404 and error handlers (default: JSON 404 and 500 in vxnet's error shape). */
  readonly fallback?: readonly [RequestHandler, ErrorRequestHandler];
  readonly log: Logger;
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

export interface ApiServer {
  readonly port: number;
  readonly secure: boolean;
  close(): Promise<void>;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new IoFailure(`${flag} ${file}: cannot read it: ${(err as Error).message}`);
  }
}

/** The certificate and key, checked by building a TLS context from them (a clear error, not a failed handshake later). */
export function loadTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const cert = readPem('--api-cert', files.certFile);
  const key = readPem('--api-key', files.keyFile);
  try {
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new IoFailure(`--api-cert ${files.certFile} / --api-key ${files.keyFile}: not a usable certificate and key (PEM): ${(err as Error).message}`);
  }
  return { cert, key };
}

/** The token in --api-token-file: its first line, trimmed; IoFailure when unreadable or empty. */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new IoFailure(`--api-token-file ${file}: cannot read it: ${(err as Error).message}`);
  }
  const token = text.split('\n')[0].trim();
  if (token === '') throw new IoFailure(`--api-token-file ${file}: empty (the first line is the token)`);
  return token;
}

export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const app = express();
  app.disable('x-powered-by');
  app.use(authMiddleware({ token: o.token }));
  // A declared body over the limit is refused before anything reads it (the API's JSON parser
  // also stops at the limit for bodies without a length).
  app.use((req, res, next) => {
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > BODY_LIMIT) {
      res.set('connection', 'close');
      sendError(res, new HttpError(413, 'PayloadTooLarge', `request body of ${length} bytes: at most ${BODY_LIMIT} are read`));
      return;
    }
    next();
  });
  for (const m of o.mounts) {
    if (Array.isArray(m)) app.use(m[0] as string, m[1] as RequestHandler);
    else app.use(m as RequestHandler);
  }
  const [notFound, failed] = o.fallback ?? [
    ((req, res) => sendError(res, new HttpError(404, 'NotFound', `no such resource: ${req.method} ${req.path}`))) as RequestHandler,
    ((err, _req, res, next) => { if (res.headersSent) { next(err); return; } sendError(res, err); }) as ErrorRequestHandler,
  ];
  app.use(notFound, failed);
  const options: http.ServerOptions = {
    headersTimeout: o.headersTimeoutMs ?? HEADERS_TIMEOUT_MS,
    requestTimeout: o.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
    maxHeaderSize: 16 * 1024,
  };
  const server: http.Server = o.tls ? https.createServer({ ...options, ...loadTls(o.tls) }, app) : http.createServer(options, app);
  server.keepAliveTimeout = 5000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    o.log.debug('http client error', { error: err.message, code: err.code ?? null });
    if (socket.writable && !socket.destroyed) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else {
      socket.destroy();
    }
  });
  if (o.tls) server.on('tlsClientError', (err: Error) => o.log.debug('tls client error', { error: err.message }));
  const where = o.host.includes(':') ? `[${o.host}]:${o.port}` : `${o.host}:${o.port}`;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new IoFailure(`cannot listen on ${where} for the HTTP API: ${err.message}`)));
    server.listen(o.port, o.host, () => resolve());
  });
  const a = server.address();
  return {
    port: a && typeof a === 'object' ? a.port : o.port,
    secure: o.tls !== undefined,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
