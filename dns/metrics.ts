// What vxnetd counts of DNS (lib/metrics.ts): queries by question type and answer rcode, and how
// long forwarded answers took. `countedHandler` wraps a Handler (./handler.ts) and reads both
// labels from the bytes in and out: the question's type after the first name, the rcode in the
// answer's header. So the reused-answer path, which never decodes the question, is counted like
// the others, and a query costs a short label walk, a Map lookup and an increment (no label
// object, no allocation). Forwarded answers (a promise) are timed from the handler's return to
// the answer; zone and cache answers are synchronous, in the turn that received the query, and
// not timed (a clock read would be a noticeable share of their ~1 us).
import { CellTable } from '../lib/metrics';
import type { Answer, Handler } from './handler';

/** The types with a label of their own; every other type is counted as "other". */
const TYPES: ReadonlyMap<number, string> = new Map([
  [1, 'A'], [2, 'NS'], [5, 'CNAME'], [6, 'SOA'], [12, 'PTR'], [15, 'MX'], [16, 'TXT'], [28, 'AAAA'], [33, 'SRV'],
  [35, 'NAPTR'], [43, 'DS'], [48, 'DNSKEY'], [64, 'SVCB'], [65, 'HTTPS'], [255, 'ANY'], [257, 'CAA'],
]);
/** Not a question vxnet could read (no question, a name running past the message). */
export const NO_TYPE = -1;

/** Column i is rcode i (RFC 1035/6895 names); the last, "none": vxnet said nothing. */
export const RCODES: readonly string[] = [
  'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET',
  'NXRRSET', 'NOTAUTH', 'NOTZONE', 'DSOTYPENI', 'RCODE12', 'RCODE13', 'RCODE14', 'RCODE15', 'none',
];
const NONE = RCODES.length - 1;

export const typeLabel = (code: number): string => (code === NO_TYPE ? 'invalid' : TYPES.get(code) ?? 'other');

/** The query's question type code (the first question's), or NO_TYPE. Pure; no allocation. */
export function questionType(message: Buffer): number {
  if (message.length < 17 || message.readUInt16BE(4) === 0) return NO_TYPE;
  let i = 12;
  for (;;) {
    const len = message[i];
    if (len === undefined || len > 63) return NO_TYPE; // past the end, or a pointer: not a question as sent
    if (len === 0) break;
    i += len + 1;
  }
  return i + 2 < message.length ? message.readUInt16BE(i + 1) : NO_TYPE;
}

/** Queries by type code (rows) and rcode (columns, RCODES). */
export const queryTable = (): CellTable<number> => new CellTable<number>(RCODES, typeLabel, 64);

export interface DnsMetricsSink {
  readonly queries: CellTable<number>;
  /** A forwarded answer's seconds (from the handler's return to the answer). */
  forwarded?(seconds: number): void;
}

/** `handler`, its queries counted into `sink`. */
export function countedHandler(handler: Handler, sink: DnsMetricsSink): Handler {
  const { queries, forwarded } = sink;
  const count = (message: Buffer, out: Buffer | undefined): void => {
    queries.row(questionType(message))[out && out.length >= 4 ? out[3]! & 0x0f : NONE]!.n++;
  };
  return {
    get stats() { return handler.stats; },
    handle(message, source, transport): Answer {
      const reply = handler.handle(message, source, transport);
      if (!(reply instanceof Promise)) {
        count(message, reply);
        return reply;
      }
      const started = forwarded ? process.hrtime.bigint() : 0n;
      return reply.then((out) => {
        count(message, out);
        if (forwarded) forwarded(Number(process.hrtime.bigint() - started) / 1e9);
        return out;
      });
    },
  };
}
