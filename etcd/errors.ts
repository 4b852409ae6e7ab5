// etcd's failures in vxnet's error family (lib/errors.ts), so the overlay registry, vxnetctl
// and whatever else talks to etcd report them alike: what may pass with time (no member
// answers, no leader, a call past its deadline) is TryAgainLater and is what etcdCall retries;
// everything else is a precise permanent error. Pure: no I/O, only classification.
import {
  ClientClosedError, EtcdLeaseInvalidError, EtcdPermissionDeniedError, EtcdAuthenticationFailedError, EtcdInvalidAuthTokenError,
  GRPCDeadlineExceededError, GRPCOutOfRangeError, GRPCResourceExhastedError, GRPCUnauthenticatedError,
  GRPCUnavailableError, isRecoverableError,
} from 'etcd3';
import { isBrokenCircuitError } from 'cockatiel';
import { IoFailure, NotFound, TryAgainLater, VxnetError } from '../lib/errors';

export type EtcdFailure =
  /** No member accepts connections (all down, wrong address): retryable. */
  | 'unreachable'
  /** A member answers but cannot serve now (no leader, leader changed, deadline): retryable. */
  | 'unavailable'
  /** The revision asked for was compacted away: re-read instead of resuming. */
  | 'compacted'
  /** The request is larger than etcd takes (--max-txn-ops, --max-request-bytes). */
  | 'too-large'
  /** Authentication or permission refused. */
  | 'denied'
  /** The lease named is unknown to etcd (expired or revoked). */
  | 'lease-gone'
  /** This process closed its client. */
  | 'closed'
  | 'other';

const UNREACHABLE = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|ETIMEDOUT|No connection established/;
const UNAVAILABLE = /no leader|leader changed|timed out|deadline|unavailable|too many requests/i;

export function classifyEtcdError(err: unknown): EtcdFailure {
  if (!(err instanceof Error)) return 'other';
  if (err instanceof ClientClosedError) return 'closed';
  if (err instanceof EtcdLeaseInvalidError || /requested lease not found/.test(err.message)) return 'lease-gone';
  if (err instanceof GRPCOutOfRangeError || /required revision has been compacted/.test(err.message)) return 'compacted';
  if (err instanceof EtcdPermissionDeniedError || err instanceof EtcdAuthenticationFailedError || err instanceof EtcdInvalidAuthTokenError
    || err instanceof GRPCUnauthenticatedError) return 'denied';
  if (err instanceof GRPCResourceExhastedError || /too many operations|request is too large/.test(err.message)) return 'too-large';
  // An open circuit breaker says nothing of why; it opened because a member did not answer.
  if (isBrokenCircuitError(err) || UNREACHABLE.test(err.message)) return 'unreachable';
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || isRecoverableError(err)
    || UNAVAILABLE.test(err.message)) return 'unavailable';
  return 'other';
}

export const isRetryable = (err: unknown): boolean => {
  if (err instanceof VxnetError) return err instanceof TryAgainLater;
  const kind = classifyEtcdError(err);
  return kind === 'unreachable' || kind === 'unavailable';
};

/**
 * The gist of a gRPC message: its first line, and for a refused connection the cause that
 * gRPC buries in "14 UNAVAILABLE: No connection established. Last error: Error: connect ...".
 */
export function etcdReason(err: unknown): string {
  const message = err instanceof Error ? err.message || err.name : String(err);
  const last = /Last error: (?:Error: )?(.*?)\.?(?: Resolution note.*)?$/m.exec(message)?.[1];
  return (last ?? message).split('\n')[0].trim();
}

/**
 * `err` from an etcd call made for `what` ("lease a block", ...) as a VxnetError; one already
 * in the family passes through untouched.
 */
export function etcdError(what: string, err: unknown): VxnetError {
  if (err instanceof VxnetError) return err;
  const reason = etcdReason(err);
  switch (classifyEtcdError(err)) {
    case 'unreachable': return new TryAgainLater(`${what}: no etcd member answers (${reason}); try again`);
    case 'unavailable': return new TryAgainLater(`${what}: etcd unavailable (${reason}); try again`);
    case 'compacted': return new IoFailure(`${what}: etcd compacted the revision asked for (${reason})`);
    case 'too-large': return new IoFailure(`${what}: etcd refused the request as too large (${reason}; etcd --max-txn-ops and --max-request-bytes bound it)`);
    case 'denied': return new IoFailure(`${what}: etcd refused access (${reason})`);
    case 'lease-gone': return new NotFound(`${what}: etcd no longer knows the lease (${reason})`);
    case 'closed': return new IoFailure(`${what}: the etcd client is closed`);
    default: return new IoFailure(`${what}: etcd failed (${reason})`);
  }
}
