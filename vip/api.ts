// vxnetd's VIP routes, mounted on its HTTP port beside the Mesos-DNS API (what `vxnetctl vip ls`
// and `vip show` read). GET /v1/vips: every VIP; GET /v1/vips/NAME: the VIPs named NAME (one per
// protocol and port), or those at address NAME (an IP VIP, or a named VIP's address); none:
// 404. A thin shell over the service's model (./model.ts), which is what the kernel was given.
// Errors in vxnet's error family as every route of the listener answers them
// (lib/http-errors.ts): `{"error": {"code": "NotFound" | "MethodNotAllowed", "message"}}`.
import type { Request, Response, Router } from 'express';
import { formatIp, parseIp } from '../ipam/addr';
import { NotFound } from '../lib/errors';
import { HttpError, sendError } from '../lib/http-errors';
import type { VipView } from './model';

export interface VipSource { vips(): readonly VipView[] }

function send(res: Response, status: number, body: unknown): void {
  res.status(status).type('application/json').send(JSON.stringify(body) + '\n');
}

/** The VIPs `what` names: a name (a leading "/" allowed, any case) or an address. Pure. */
export function vipsNamed(vips: readonly VipView[], what: string): VipView[] {
  const ip = parseIp(what.replace(/^\[(.*)\]$/, '$1'));
  if (ip) {
    const text = formatIp(ip);
    return vips.filter((v) => v.addresses.includes(text));
  }
  const name = what.replace(/^\//, '').toLowerCase();
  return vips.filter((v) => v.name === name);
}

export function vipApi(source: VipSource): Router {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const router = express.Router({ caseSensitive: true, strict: false });
  router.get('/v1/vips', (_req, res) => send(res, 200, source.vips()));
  router.get('/v1/vips/:name', (req: Request, res) => {
    const what = String((req.params as Record<string, unknown>).name ?? '');
    const found = vipsNamed(source.vips(), what);
    if (found.length === 0) sendError(res, new NotFound(`no VIP named or at ${JSON.stringify(what)}`));
    else send(res, 200, found);
  });
  for (const route of ['/v1/vips', '/v1/vips/:name']) {
    router.all(route, (req, res) => sendError(res, new HttpError(405, 'MethodNotAllowed', `method ${req.method} not allowed on ${req.path} (GET only)`, { allow: 'GET, HEAD' })));
  }
  return router;
}
