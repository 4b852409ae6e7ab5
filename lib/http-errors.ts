// vxnet's error family (./errors.ts) as HTTP, for every route of vxnetd's HTTP listener (the
// operator API's /api/v1/*, Mesos-DNS's /v1/*, /v1/vips, the fallback 404): each error class
// has a status, and every error answer is `{"error": {"code": NAME, "message": TEXT}}` where
// NAME is the error's class name (NotFound, DecodingFailure, ...) or one of HTTP's own for what
// is not a VxnetError (Unauthorized, Forbidden, PayloadTooLarge, MethodNotAllowed, BadRequest,
// InternalError). Here, below dns/, vip/ and api/ (one layer, which may not import each other).
import type { Response } from 'express';
import { VxnetError } from './errors';
import { UsageError } from './usage';

/** The body of every error answer. */
export interface ErrorJson { error: { code: string; message: string } }

/** HTTP status of each VxnetError class (by name); any other VxnetError: 500. */
export const STATUS_OF: Readonly<Record<string, number>> = {
  NotFound: 404,
  DecodingFailure: 400,
  InvalidNetworkConfig: 400,
  UnsupportedField: 400,
  InvalidName: 400,
  InvalidVip: 400,
  InvalidEnvironment: 400,
  IncompatibleVersion: 400,
  AddressUnavailable: 409,
  NetworkConflict: 409,
  NetworkInUse: 409,
  PoolExhausted: 409,
  TryAgainLater: 503,
  PluginNotAvailable: 503,
  IoFailure: 503,
  InvalidNetns: 500,
  AttachmentDrifted: 500,
  DelegateFailed: 502,
  DatapathFailure: 500,
};

/** An error the API answers with, already in HTTP terms. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Readonly<Record<string, string>> = {}) {
    super(message);
  }
}

/** The status and body of any thrown value. Pure. */
export function errorAnswer(err: unknown): { status: number; body: ErrorJson; headers: Readonly<Record<string, string>> } {
  if (err instanceof HttpError) return { status: err.status, body: { error: { code: err.code, message: err.message } }, headers: err.headers };
  if (err instanceof UsageError) return { status: 400, body: { error: { code: 'BadRequest', message: err.message } }, headers: {} };
  if (err instanceof VxnetError) {
    const code = err.name === 'VxnetError' ? 'InternalError' : err.name;
    return { status: STATUS_OF[err.name] ?? 500, body: { error: { code, message: err.message } }, headers: {} };
  }
  // express's body parser: { status, type } (entity.too.large, entity.parse.failed, ...).
  const e = err as { status?: unknown; type?: unknown; message?: unknown } | null;
  if (e && typeof e === 'object' && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    if (e.type === 'entity.too.large') return { status: 413, body: { error: { code: 'PayloadTooLarge', message: 'request body too large' } }, headers: {} };
    if (e.type === 'entity.parse.failed') return { status: 400, body: { error: { code: 'DecodingFailure', message: `request body is not valid JSON: ${String(e.message)}` } }, headers: {} };
    return { status: e.status, body: { error: { code: 'BadRequest', message: String(e.message) } }, headers: {} };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, body: { error: { code: 'InternalError', message } }, headers: {} };
}

/** Answers `err` as JSON with its status and headers (Allow, WWW-Authenticate, ...). */
export function sendError(res: Response, err: unknown): void {
  const a = errorAnswer(err);
  res.status(a.status).set({ 'cache-control': 'no-store', ...a.headers }).type('application/json').send(JSON.stringify(a.body) + '\n');
}
