// DNS messages in and out: a query decoded and checked, an answer encoded and fitted to what
// the client can take. Pure: bytes in, bytes out.
//
// dns-packet decodes the message (its decoder refuses forward compression pointers and names
// over 254 bytes), but it takes almost anything else: about 80% of randomly mutated packets
// still decode. So the header, the counts, the question's name and the OPT record are checked
// here, on the bytes. Answers are assembled here too: the question is copied as the client sent
// it (resolvers randomise its case and compare), the records are encoded with dns-packet's
// record codec, and a message too large for UDP is cut down with TC set, since dns-packet does
// neither.
import * as dnsPacket from 'dns-packet';
import type { Answer, OptAnswer } from 'dns-packet';
import { wireQuestionName } from './names';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = keyof typeof RCODE;

/** The UDP size vxnet advertises and the most it sends over UDP (DNS flag day 2020). */
export const EDNS_UDP_SIZE = 1232;
/** Without EDNS, a UDP answer holds at most 512 bytes (RFC 1035). */
export const PLAIN_UDP_SIZE = 512;

const QR = 0x8000, AA = 0x0400, TC = 0x0200, RD = 0x0100, RA = 0x0080, CD = 0x0010;
const OPCODE_MASK = 0x7800;
const DO = 0x8000;
const CLASS_IN = 1;

export interface Question {
  /** Lower-cased, no trailing dot. */
  readonly name: string;
  /** dns-packet's name of the type: 'A', 'SRV', 'UNKNOWN_65280', ... */
  readonly type: string;
  readonly typeCode: number;
  /** False when a label holds a dot or a byte outside printable ASCII: never matched against the zone. */
  readonly plain: boolean;
}

export interface Query {
  readonly id: number;
  readonly rd: boolean;
  readonly cd: boolean;
  readonly question: Question;
  /** The question section as received (echoed in answers; forwarded as it is). */
  readonly questionBytes: Buffer;
  readonly edns: { readonly udpSize: number; readonly dnssecOk: boolean } | undefined;
  /** The whole message as received. */
  readonly raw: Buffer;
}

export type Decoded =
  | { readonly ok: true; readonly query: Query }
  /** `reply` is what to send back (FORMERR, NOTIMP, BADVERS...); none when the message is dropped. */
  | { readonly ok: false; readonly reason: string; readonly reply: Buffer | undefined };

export interface Reply {
  readonly rcode: Rcode;
  /** Authoritative (the zone's answers); forwarded and cached ones are not. */
  readonly aa: boolean;
  readonly answers: readonly Answer[];
  readonly authorities: readonly Answer[];
  readonly additionals: readonly Answer[];
}

// dns-packet's per-record codec is exported but not in its type definitions.
interface RecordCodec {
  encode: ((a: Answer, buf: Buffer, offset: number) => Buffer) & { bytes: number };
  encodingLength(a: Answer): number;
}
const record = (dnsPacket as unknown as { answer: RecordCodec }).answer;

/** Decodes and checks a query; never throws. */
export function decodeQuery(buf: Buffer): Decoded {
  // Without an ID there is nobody to answer; a response (QR=1) is never answered, so two
  // servers cannot be made to bounce messages at each other.
  if (buf.length < 2) return drop('shorter than an ID');
  if (buf.length < 12) return fail(buf, RCODE.FORMERR, 'shorter than a DNS header');
  const flags = buf.readUInt16BE(2);
  if (flags & QR) return drop('a response, not a query');
  if ((flags & OPCODE_MASK) !== 0) return fail(buf, RCODE.NOTIMP, `opcode ${(flags & OPCODE_MASK) >> 11} is not QUERY`);
  const qd = buf.readUInt16BE(4), an = buf.readUInt16BE(6), ns = buf.readUInt16BE(8);
  if (qd !== 1) return fail(buf, RCODE.FORMERR, `${qd} questions (a query has exactly one)`);
  if (an !== 0 || ns !== 0) return fail(buf, RCODE.FORMERR, 'records in the answer or authority section of a query');
  const qname = wireQuestionName(buf, 12);
  if ('problem' in qname) return fail(buf, RCODE.FORMERR, qname.problem);
  if (qname.end + 4 > buf.length) return fail(buf, RCODE.FORMERR, 'the question is cut short');
  const questionBytes = buf.subarray(12, qname.end + 4);
  const typeCode = buf.readUInt16BE(qname.end);
  const klass = buf.readUInt16BE(qname.end + 2);
  if (klass !== CLASS_IN) return fail(buf, RCODE.NOTIMP, `class ${klass} (only IN is served)`, questionBytes);
  if (typeCode === 251 || typeCode === 252) return fail(buf, RCODE.REFUSED, 'zone transfers are not served', questionBytes);

  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(buf);
  } catch (err) {
    return fail(buf, RCODE.FORMERR, `undecodable: ${(err as Error).message}`, questionBytes);
  }
  if (dnsPacket.decode.bytes !== buf.length) return fail(buf, RCODE.FORMERR, `${buf.length - dnsPacket.decode.bytes} bytes after the last record`, questionBytes);
  const q = packet.questions?.[0];
  if (!q) return fail(buf, RCODE.FORMERR, 'no question', questionBytes);

  let edns: Query['edns'];
  for (const a of packet.additionals ?? []) {
    if (a.type !== 'OPT') continue;
    if (edns) return fail(buf, RCODE.FORMERR, 'more than one OPT record', questionBytes);
    if (a.name !== '.') return fail(buf, RCODE.FORMERR, 'an OPT record not owned by the root', questionBytes);
    const opt = a as OptAnswer;
    if (opt.ednsVersion !== 0) {
      // RFC 6891 6.1.3: BADVERS (16) is carried in the OPT's extended rcode: 16 >> 4 = 1.
      return { ok: false, reason: `EDNS version ${opt.ednsVersion}`, reply: headerReply(buf, RCODE.NOERROR, questionBytes, 1) };
    }
    edns = { udpSize: Math.max(PLAIN_UDP_SIZE, opt.udpPayloadSize), dnssecOk: (opt.flags & DO) !== 0 };
  }
  return {
    ok: true,
    query: {
      id: buf.readUInt16BE(0), rd: (flags & RD) !== 0, cd: (flags & CD) !== 0,
      question: { name: qname.name, type: String(q.type), typeCode, plain: qname.plain },
      questionBytes, edns, raw: buf,
    },
  };
}

/** How many bytes an answer to `query` may have over UDP: 512, or its EDNS size up to `cap`. */
export function udpLimit(query: Query, cap = EDNS_UDP_SIZE): number {
  return query.edns ? Math.max(PLAIN_UDP_SIZE, Math.min(query.edns.udpSize, cap)) : PLAIN_UDP_SIZE;
}

/**
 * Encodes `reply` to `query` in at most `limit` bytes (65535 for TCP). When it does not fit,
 * the additional records go first (that needs no TC, RFC 2181 9), then answers and
 * authorities are cut to what fits and TC is set, so the client asks again over TCP. Throws
 * only when a record cannot be encoded (the caller answers SERVFAIL).
 */
export function encodeReply(query: Query, reply: Reply, limit = 65535): Buffer {
  // The zone's names are checked when they enter it; an upstream's pass through dns-packet's
  // decoder, which reads labels as UTF-8 and may hand back one its encoder would write with a
  // wrong length byte.
  if (!reply.aa) for (const list of [reply.answers, reply.authorities, reply.additionals]) list.forEach(checkRecordName);
  const opt = query.edns ? optRecord(query.edns.dnssecOk, 0) : undefined;
  const optLength = opt ? record.encodingLength(opt) : 0;
  const fixed = 12 + query.questionBytes.length + optLength;
  const sizes = (list: readonly Answer[]): number[] => list.map((a) => record.encodingLength(a));
  const sum = (xs: number[]): number => xs.reduce((s, x) => s + x, 0);
  const an = sizes(reply.answers), ns = sizes(reply.authorities), ar = sizes(reply.additionals);
  let answers = reply.answers, authorities = reply.authorities, additionals = reply.additionals;
  let truncated = false;
  let length = fixed + sum(an) + sum(ns) + sum(ar);
  if (length > limit) {
    additionals = [];
    length = fixed + sum(an) + sum(ns);
    if (length > limit) {
      truncated = true;
      authorities = [];
      let n = 0;
      length = fixed;
      while (n < an.length && length + an[n] <= limit) length += an[n++];
      answers = reply.answers.slice(0, n);
    }
  }
  if (opt) additionals = [...additionals, opt];
  let flags = QR | RA | RCODE[reply.rcode];
  if (reply.aa) flags |= AA;
  if (query.rd) flags |= RD;
  if (query.cd) flags |= CD;
  if (truncated) flags |= TC;
  const buf = Buffer.allocUnsafe(length);
  buf.writeUInt16BE(query.id, 0);
  buf.writeUInt16BE(flags, 2);
  buf.writeUInt16BE(1, 4);
  buf.writeUInt16BE(answers.length, 6);
  buf.writeUInt16BE(authorities.length, 8);
  buf.writeUInt16BE(additionals.length, 10);
  let at = 12 + query.questionBytes.copy(buf, 12);
  for (const list of [answers, authorities, additionals]) {
    for (const a of list) {
      record.encode(a, buf, at);
      at += record.encode.bytes;
    }
  }
  if (at !== length) throw new Error(`encoded ${at} bytes, expected ${length}`);
  return buf;
}

function checkRecordName(a: Answer): void {
  if (a.name === '.' || a.name === '') return;
  let total = 0;
  for (const label of a.name.replace(/^\.|\.$/g, '').split('.')) {
    const n = Buffer.byteLength(label);
    if (n === 0 || n > 63) throw new Error(`record name "${a.name.slice(0, 40)}" has a label of ${n} bytes`);
    total += n + 1;
  }
  if (total > 254) throw new Error(`record name "${a.name.slice(0, 40)}..." is longer than 255 bytes`);
}

/** An answer with no records: REFUSED, SERVFAIL, ... */
export function rcodeReply(query: Query, rcode: Rcode): Buffer {
  return encodeReply(query, { rcode, aa: false, answers: [], authorities: [], additionals: [] });
}

function optRecord(dnssecOk: boolean, extendedRcode: number): OptAnswer {
  return {
    name: '.', type: 'OPT', udpPayloadSize: EDNS_UDP_SIZE, extendedRcode, ednsVersion: 0,
    flags: dnssecOk ? DO : 0, flag_do: dnssecOk, options: [],
  };
}

const drop = (reason: string): Decoded => ({ ok: false, reason, reply: undefined });

function fail(buf: Buffer, rcode: number, reason: string, questionBytes?: Buffer): Decoded {
  return { ok: false, reason, reply: headerReply(buf, rcode, questionBytes) };
}

/**
 * An error answer built from what could be read: the ID, the opcode and RD bits, the question
 * when it parsed (else none), and an OPT record only for BADVERS (the client's OPT may be what
 * was wrong).
 */
function headerReply(buf: Buffer, rcode: number, questionBytes: Buffer | undefined, extendedRcode?: number): Buffer {
  const flagsIn = buf.length >= 4 ? buf.readUInt16BE(2) : 0;
  const opt = extendedRcode === undefined ? undefined : optRecord(false, extendedRcode);
  const optLength = opt ? record.encodingLength(opt) : 0;
  const out = Buffer.alloc(12 + (questionBytes?.length ?? 0) + optLength);
  out.writeUInt16BE(buf.readUInt16BE(0), 0);
  out.writeUInt16BE(QR | RA | (flagsIn & (OPCODE_MASK | RD)) | rcode, 2);
  out.writeUInt16BE(questionBytes ? 1 : 0, 4);
  out.writeUInt16BE(opt ? 1 : 0, 10);
  if (questionBytes) questionBytes.copy(out, 12);
  if (opt) record.encode(opt, out, 12 + (questionBytes?.length ?? 0));
  return out;
}

/**
 * Byte offsets of the TTL field of every record of an encoded message except OPT (whose "TTL"
 * holds flags), so that a kept copy's TTLs can be counted down in place; undefined when the
 * message does not parse (then it is not kept). Names are skipped label by label or at their
 * compression pointer; nothing is decoded.
 */
export function recordTtlOffsets(msg: Buffer): number[] | undefined {
  if (msg.length < 12) return undefined;
  const skipName = (at: number): number => {
    for (let i = at; i < msg.length;) {
      const len = msg[i]!;
      if (len === 0) return i + 1;
      if ((len & 0xc0) === 0xc0) return i + 2;
      if (len & 0xc0) return -1;
      i += 1 + len;
    }
    return -1;
  };
  let at = 12;
  for (let q = msg.readUInt16BE(4); q > 0; q--) {
    at = skipName(at);
    if (at < 0) return undefined;
    at += 4;
  }
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  const offsets: number[] = [];
  for (let r = 0; r < records; r++) {
    at = skipName(at);
    if (at < 0 || at + 10 > msg.length) return undefined;
    if (msg.readUInt16BE(at) !== 41) offsets.push(at + 4);
    at += 10 + msg.readUInt16BE(at + 8);
  }
  return at <= msg.length ? offsets : undefined;
}
