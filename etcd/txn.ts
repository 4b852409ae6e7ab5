// Guarded transactions as data: "if these keys are as I read them, write these, else read
// those". Every write the overlay makes to shared state goes through one, so two hosts racing
// for one block, or a retry of a commit that was in fact applied, can never both win: the
// loser's guard fails and it reads again. Pure: builds etcd's TxnRequest, sends nothing.
import type { ICompare, IRequestOp, ITxnRequest } from 'etcd3';

/** What a guard compares; each is "equal" unless `not` is set. */
export type Guard =
  /** The key does not exist (its create revision is 0). */
  | { readonly key: string; readonly absent: true }
  /** The key was last written at this revision (as read); "0" means absent. */
  | { readonly key: string; readonly modRevision: string; readonly not?: boolean }
  /** The key has been written this many times since it was created. */
  | { readonly key: string; readonly version: number; readonly not?: boolean }
  /** The key holds exactly this value. */
  | { readonly key: string; readonly value: string; readonly not?: boolean };

export type TxnOp =
  | { readonly put: string; readonly value: string; readonly lease?: string }
  | { readonly delete: string }
  | { readonly deletePrefix: string }
  | { readonly get: string }
  | { readonly getPrefix: string };

export interface GuardedTxn {
  readonly if: readonly Guard[];
  readonly then: readonly TxnOp[];
  readonly else?: readonly TxnOp[];
}

/** The smallest key after every key that starts with prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const e = Buffer.from(b.subarray(0, i + 1));
      e[i]++;
      return e;
    }
  }
  // Every byte 0xff: "to the end of the keyspace".
  return Buffer.from([0]);
}

function compare(g: Guard): ICompare {
  const key = Buffer.from(g.key);
  const result = 'not' in g && g.not ? 'NotEqual' : 'Equal';
  if ('absent' in g) return { key, target: 'Create', result: 'Equal', create_revision: '0' };
  if ('modRevision' in g) {
    if (!/^\d+$/.test(g.modRevision)) throw new TypeError(`guard on ${g.key}: revision ${JSON.stringify(g.modRevision)} is not a number`);
    return { key, target: 'Mod', result, mod_revision: g.modRevision };
  }
  if ('version' in g) {
    if (!Number.isSafeInteger(g.version) || g.version < 0) throw new TypeError(`guard on ${g.key}: version ${g.version} is not a count`);
    return { key, target: 'Version', result, version: String(g.version) };
  }
  return { key, target: 'Value', result, value: Buffer.from(g.value) };
}

function op(o: TxnOp): IRequestOp {
  if ('put' in o) return { request_put: { key: Buffer.from(o.put), value: Buffer.from(o.value), ...(o.lease ? { lease: o.lease } : {}) } };
  if ('delete' in o) return { request_delete_range: { key: Buffer.from(o.delete) } };
  if ('deletePrefix' in o) return { request_delete_range: { key: Buffer.from(o.deletePrefix), range_end: prefixEnd(o.deletePrefix) } };
  if ('get' in o) return { request_range: { key: Buffer.from(o.get) } };
  return { request_range: { key: Buffer.from(o.getPrefix), range_end: prefixEnd(o.getPrefix) } };
}

/** etcd's TxnRequest for `t`. Throws TypeError on a malformed guard (a caller's bug). */
export function buildTxn(t: GuardedTxn): ITxnRequest {
  return { compare: t.if.map(compare), success: t.then.map(op), failure: (t.else ?? []).map(op) };
}
