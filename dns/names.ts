// DNS names as vxnet serves them: lower-case text without the trailing dot, labels of 1-63
// bytes of [a-z0-9_-], at most 253 characters in all (255 bytes on the wire). Pure: no I/O.
//
// Names vxnet puts in its zone come from runtimes (container names, labels), so they are
// checked here and rejected with a reason rather than escaped: a label with a dot or a space
// in it would be a different name on the wire than in the catalog.
import { InvalidName } from '../lib/errors';
import { Ip, familyBits } from '../ipam/addr';

export const MAX_LABEL = 63;
export const MAX_NAME = 253;

const LABEL = /^[a-z0-9_-]+$/;

/** Lower-cased, without the trailing dot (the root is ''). No validation. */
export function normalizeName(text: string): string {
  const lower = text.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Why `label` (already lower-cased) is not a label vxnet serves, or undefined when it is. */
export function labelProblem(label: string): string | undefined {
  if (label.length === 0) return 'an empty label';
  if (label.length > MAX_LABEL) return `label "${label.slice(0, 20)}..." is ${label.length} bytes (at most ${MAX_LABEL})`;
  if (!LABEL.test(label)) return `label "${label}" has characters outside [a-z0-9_-]`;
  return undefined;
}

/** Why `name` (normalised) is not a name vxnet serves, or undefined when it is. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'an empty name';
  if (name.length > MAX_NAME) return `${name.length} characters (at most ${MAX_NAME})`;
  for (const label of name.split('.')) {
    const problem = labelProblem(label);
    if (problem) return problem;
  }
  return undefined;
}

/** The normalised name; throws InvalidName naming `what` and the reason. */
export function checkName(text: string, what = 'name'): string {
  const name = normalizeName(text);
  const problem = nameProblem(name);
  if (problem) throw new InvalidName(`${what} "${text}" is not a valid DNS name: ${problem}`);
  return name;
}

/** A single label (an endpoint, network, service or port name); throws InvalidName. */
export function checkLabel(text: string, what = 'label'): string {
  const label = text.toLowerCase();
  const problem = labelProblem(label);
  if (problem) throw new InvalidName(`${what} "${text}" is not a valid DNS label: ${problem}`);
  return label;
}

/** True when `name` is `zone` or below it (both normalised; '' is the root). */
export function inZone(name: string, zone: string): boolean {
  if (zone === '') return true;
  return name === zone || (name.length > zone.length && name.endsWith(zone) && name[name.length - zone.length - 1] === '.');
}

/** The parent of a name ('' for a single label). */
export function parentOf(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1);
}

/** The reverse-lookup name of an address: 4.3.2.1.in-addr.arpa, or 32 nibbles .ip6.arpa. */
export function reverseName(ip: Ip): string {
  const parts: string[] = [];
  if (ip.family === 4) {
    for (let shift = 0n; shift < 32n; shift += 8n) parts.push(String((ip.value >> shift) & 0xffn));
    return `${parts.join('.')}.in-addr.arpa`;
  }
  for (let shift = 0n; shift < BigInt(familyBits(6)); shift += 4n) parts.push(((ip.value >> shift) & 0xfn).toString(16));
  return `${parts.join('.')}.ip6.arpa`;
}

/**
 * Walks the question name of a wire-format message at `offset`, label by label. Returns the
 * normalised text and whether it is `plain` (printable ASCII, no dot inside a label), or why it
 * is not a name at all. dns-packet decodes a label holding a dot ("a.b") into the same text as
 * two labels, and takes any byte: a name that is not plain is still forwarded (upstreams may
 * know it) but never matched against the zone. A compression pointer in the first question
 * could only point into the header, so it is refused.
 */
export function wireQuestionName(buf: Uint8Array, offset: number): { name: string; plain: boolean; end: number } | { problem: string } {
  const labels: string[] = [];
  let total = 0;
  let at = offset;
  let plain = true;
  for (;;) {
    if (at >= buf.length) return { problem: 'the question name runs past the message' };
    const len = buf[at];
    if (len === 0) break;
    if (len > MAX_LABEL) return { problem: len >= 0xc0 ? 'a compression pointer in the question name' : `a label of ${len} bytes` };
    if (at + 1 + len > buf.length) return { problem: 'the question name runs past the message' };
    total += len + 1;
    if (total > MAX_NAME + 1) return { problem: 'the question name is longer than 253 characters' };
    let label = '';
    for (let i = at + 1; i <= at + len; i++) {
      let c = buf[i];
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      if (c < 0x21 || c > 0x7e || c === 0x2e) plain = false;
      label += String.fromCharCode(c);
    }
    labels.push(label);
    at += 1 + len;
  }
  return { name: labels.join('.'), plain, end: at + 1 };
}
