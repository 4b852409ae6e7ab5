// The plugin's HTTP side: express on a unix socket Docker finds in /run/docker/plugins. Every
// call is `POST /Method.Name` with a JSON body (empty for Activate and the capability calls);
// every failure, a malformed body or an unknown method included, is answered with a non-200
// status and {"Err": message}, which Docker shows the user. Nothing a client sends can make
// the daemon throw past this layer.
import * as path from 'node:path';
import type { Server } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { DecodingFailure, VxnetError, asVxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import { parseBody } from './model';
import { listenOnSocket } from '../lib/unix-socket';

/** Docker ignores the reply's content type; this is what it asks for (Accept). */
const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
const BODY_LIMIT = '1mb';

/** Calls that take no input: Docker sends an empty body, and whatever else comes is ignored. */
const NO_INPUT = new Set(['Plugin.Activate', 'NetworkDriver.GetCapabilities', 'IpamDriver.GetCapabilities', 'IpamDriver.GetDefaultAddressSpaces']);

export type Methods = Readonly<Record<string, (body: Record<string, unknown>) => Promise<Record<string, unknown>>>>;

/** Status for an error: 400 for what the client sent wrong, 500 for the rest (Docker reads Err from either). */
const statusOf = (err: VxnetError): number => (err instanceof DecodingFailure ? 400 : 500);

export function createApp(methods: Methods, log: Logger): import('express').Express {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // Any content type (Docker sends none for empty bodies): the raw text, parsed below.
  app.use(express.text({ type: () => true, limit: BODY_LIMIT, defaultCharset: 'utf-8' }));

  const reply = (res: Response, status: number, body: unknown): void => {
    res.status(status).type(CONTENT_TYPE).send(JSON.stringify(body));
  };

  app.use((req: Request, res: Response) => {
    const method = req.path.replace(/^\//, '');
    const handler = Object.prototype.hasOwnProperty.call(methods, method) ? methods[method] : undefined;
    if (!handler || req.method !== 'POST') {
      log.warn('unknown plugin call', { method: req.method, path: req.path });
      reply(res, 404, { Err: `vxnet: ${req.method} ${req.path} is not a plugin method this driver implements` });
      return;
    }
    const started = process.hrtime.bigint();
    const text = typeof req.body === 'string' ? req.body : '';
    void (async () => {
      try {
        const body = NO_INPUT.has(method) ? {} : parseBody(text, method);
        log.debug('call', { call: method, body });
        const out = await handler(body);
        reply(res, 200, out);
        log.debug('reply', { call: method, ms: Number(process.hrtime.bigint() - started) / 1e6, reply: out });
      } catch (err) {
        const e = asVxnetError(err);
        log.warn('call failed', { call: method, error: e.message, code: e.code, ms: Number(process.hrtime.bigint() - started) / 1e6 });
        if (e.code === 999) log.error('internal error', { call: method, stack: (err as Error)?.stack });
        if (!res.headersSent) reply(res, statusOf(e), { Err: e.message });
      }
    })();
  });

  // Body parser failures (too large, bad charset) and anything else express catches.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const message = err instanceof Error ? err.message : String(err);
    log.warn('bad request', { path: req.path, error: message });
    if (!res.headersSent) reply(res, 400, { Err: `vxnet: ${req.path}: cannot read the request: ${message}` });
  });
  return app;
}

/** The name Docker knows a plugin by: the socket's base name (NAME.sock or NAME/NAME.sock). */
export function pluginNameOf(socketPath: string): string {
  return path.basename(socketPath).replace(/\.sock$/, '');
}

/**
 * Listens on socketPath with root-only permissions: the directory is created 0700 when
 * missing, the socket is 0600 from its creation (umask). A stale socket of a killed vxnetd is
 * replaced; a live one (another vxnetd) is an error.
 */
export async function listenUnix(app: import('express').Express, socketPath: string): Promise<Server> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const http = require('node:http') as typeof import('node:http');
  const server = http.createServer(app);
  server.keepAliveTimeout = 60_000;
  return listenOnSocket(server, socketPath);
}

