// The one etcd client of vxnet: connects to the cluster store, gives every call a deadline,
// retries what a member failure or a leader election causes, reports failures in vxnet's error
// family (./errors.ts), and commits guarded transactions (./txn.ts). The overlay registry uses
// it; so will anything else that keeps shared state in etcd. The transport is the `etcd3`
// package; cockatiel is the fault policy it takes.
//
// Retrying happens at two levels. Inside etcd3, per call: a member failing three calls in a row
// is skipped for a second (circuit breaker) and a failed call is tried on the other members.
// Here, per operation (etcdCall): while the cluster as a whole cannot answer (all members
// restarting, a leader election), the operation runs again with a fresh deadline within a
// retry budget, then TryAgainLater. Writes are guarded transactions, so running a commit again
// after one whose answer was lost only fails its guard and is re-read.
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';
import type { IKeyValue, IResponseOp } from 'etcd3';
import { etcdError, isRetryable } from './errors';
import { type GuardedTxn, buildTxn, prefixEnd } from './txn';
import { endpointUrl } from './url';

/** Deadline of one etcd call. */
export const CALL_TIMEOUT_MS = 2000;
/** How long one operation keeps retrying a cluster that cannot answer (a leader election takes 1 to 3 s). */
export const RETRY_BUDGET_MS = 8000;

export const callOptions = (timeoutMs = CALL_TIMEOUT_MS): { deadline: number } => ({ deadline: Date.now() + timeoutMs });

/**
 * Runs fn (one or more etcd calls) with a fresh deadline per attempt, again while it fails with
 * what time may cure (./errors.ts isRetryable), for up to budgetMs; every failure leaves as a
 * VxnetError naming `what`.
 */
export async function etcdCall<T>(what: string, fn: (options: { deadline: number }) => Promise<T>, budgetMs = RETRY_BUDGET_MS): Promise<T> {
  const end = Date.now() + budgetMs;
  // An open circuit breaker says only that; the failure that opened it says why.
  let cause: unknown;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(callOptions());
    } catch (err) {
      if (!isBrokenCircuitError(err)) cause = err;
      if (!isRetryable(err) || Date.now() + 100 >= end) throw etcdError(what, cause ?? err);
      await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 500)));
    }
  }
}

/** An etcd3 client tuned for a cluster whose members may die and come back (see the header). */
export function createEtcd(endpoints: readonly string[]): Etcd3 {
  const hosts = endpoints.map(endpointUrl);
  return new Etcd3({
    hosts,
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length, backoff: new ExponentialBackoff({ initialDelay: 20, maxDelay: 200 }) }),
      // etcd3 types this as an IBackoff but calls .next() on it first: a factory is what it takes.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) as never,
    },
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
  });
}

export interface Range {
  /** The store's revision the read saw: watch from revision + 1 to miss nothing after it. */
  readonly revision: string;
  readonly kvs: IKeyValue[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: string;
  /** One per op of the branch that ran (then or else), in order. */
  readonly responses: IResponseOp[];
}

/**
 * The etcd operations vxnet uses, each with a deadline, retries and errors as etcdCall. `raw` is
 * the etcd3 client underneath, for what only it does (leases with keepalive, watches: see
 * ./watch.ts).
 */
/** Told of every operation's outcome (vxnetd's metrics): its name, seconds with its retries, success. */
export interface EtcdObserver {
  request(operation: 'range' | 'get' | 'txn' | 'lease_ttl', seconds: number, ok: boolean): void;
}

export class EtcdClient {
  /** budgetMs: how long each operation retries a cluster that cannot answer (etcdCall). */
  constructor(readonly raw: Etcd3, private readonly budgetMs = RETRY_BUDGET_MS, private readonly observer?: EtcdObserver) {}

  static connect(endpoints: readonly string[], budgetMs = RETRY_BUDGET_MS, observer?: EtcdObserver): EtcdClient {
    return new EtcdClient(createEtcd(endpoints), budgetMs, observer);
  }

  private call<T>(operation: Parameters<EtcdObserver['request']>[0], what: string, fn: (options: { deadline: number }) => Promise<T>): Promise<T> {
    const observer = this.observer;
    if (!observer) return etcdCall(what, fn, this.budgetMs);
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    return etcdCall(what, fn, this.budgetMs).then(
      (r) => { observer.request(operation, seconds(), true); return r; },
      (err: unknown) => { observer.request(operation, seconds(), false); throw err; },
    );
  }

  /** Every key under prefix, at one revision. */
  async range(what: string, prefix: string): Promise<Range> {
    const r = await this.call('range', what, (o) => this.raw.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }, o));
    return { revision: r.header.revision, kvs: r.kvs };
  }

  /** One key, or undefined when it does not exist. */
  async get(what: string, key: string): Promise<IKeyValue | undefined> {
    const r = await this.call('get', what, (o) => this.raw.kv.range({ key: Buffer.from(key) }, o));
    return r.kvs[0];
  }

  /** One guarded transaction (./txn.ts). Retried as a whole while etcd cannot answer. */
  async txn(what: string, t: GuardedTxn): Promise<TxnResult> {
    const request = buildTxn(t);
    const r = await this.call('txn', what, (o) => this.raw.kv.txn(request, o));
    return { succeeded: r.succeeded, revision: r.header.revision, responses: r.responses };
  }

  /** Seconds the lease has left, or undefined when etcd no longer has it. */
  async leaseTtl(what: string, lease: string): Promise<number | undefined> {
    const r = await this.call('lease_ttl', what, (o) => this.raw.leaseClient.leaseTimeToLive({ ID: lease }, o));
    const ttl = Number(r.TTL);
    return ttl < 0 ? undefined : ttl;
  }

  close(): void {
    this.raw.close();
  }
}
