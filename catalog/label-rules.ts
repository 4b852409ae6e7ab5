// Operator labels, the pure part: what an endpoint name, a label key and a value may be, the
// `KEY=VALUE` words of `vxnetctl endpoint label`, and the labels file's document (read,
// edited, written). Every mistake is a UsageError naming the exact problem; the file's I/O
// (lock, atomic rename, watching) is ./operator-labels.ts.
//
// Operator labels are for runtimes that pass none (plain CNI, podman without its API socket):
// they win over the runtime's labels, which win over CNI args labels (./derive.ts).
import { UsageError } from '../lib/usage';
import { dnsLabelOf } from './derive';

export type Labels = Readonly<Record<string, string>>;
/** Operator labels by endpoint name (lowercase DNS labels); a name with no labels is absent. */
export type LabelsByName = Readonly<Record<string, Labels>>;

export const LABELS_FILE_VERSION = 1;

// C0 and C1 control characters and DEL: they would reach DNS TXT data, logs and terminals.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const codePoint = (c: string): string => `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;

/** The name as the catalog keys it (lowercase); throws UsageError when it is not one DNS label. */
export function checkEndpointName(name: string): string {
  const n = dnsLabelOf(name);
  if (n === undefined || name.startsWith('/')) {
    throw new UsageError(`endpoint name ${JSON.stringify(name)} is not a DNS label: 1-63 characters of a-z, 0-9, "-" and "_", not starting or ending with "-"`);
  }
  return n;
}

export function checkLabelKey(key: string): string {
  if (key === '') throw new UsageError('a label key is empty');
  if (key.includes('=')) throw new UsageError(`label key ${JSON.stringify(key)} contains "="`);
  const ws = /\s/.exec(key);
  if (ws) throw new UsageError(`label key ${JSON.stringify(key)} contains whitespace (${codePoint(ws[0])})`);
  const ctl = CONTROL.exec(key);
  if (ctl) throw new UsageError(`label key ${JSON.stringify(key)} contains a control character (${codePoint(ctl[0])})`);
  return key;
}

export function checkLabelValue(key: string, value: string): string {
  const ctl = CONTROL.exec(value);
  if (ctl) throw new UsageError(`the value of label ${JSON.stringify(key)} contains a control character (${codePoint(ctl[0])}); values must be printable`);
  return value;
}

export interface LabelEdit {
  readonly set: Labels;
  readonly remove: readonly string[];
}

const has = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

/** `name`'s labels in the document (an own property: "__proto__" is a valid name and key). */
export function labelsOf(doc: LabelsByName, name: string): Labels | undefined {
  return has(doc, name) ? doc[name] : undefined;
}

// Records are built with Object.fromEntries and spreads (own data properties), never by
// assignment, so a key such as "__proto__" is a label like any other.
const sortedLabels = (entries: Iterable<readonly [string, string]>): Labels =>
  Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** `KEY=VALUE` words and `--remove KEY` values to one edit; throws UsageError. */
export function parseLabelEdit(assignments: readonly string[], removals: readonly string[] = []): LabelEdit {
  const set = new Map<string, string>();
  for (const word of assignments) {
    const eq = word.indexOf('=');
    if (eq < 0) throw new UsageError(`${JSON.stringify(word)} is not KEY=VALUE (to remove a label: --remove KEY)`);
    const key = checkLabelKey(word.slice(0, eq));
    if (set.has(key)) throw new UsageError(`label ${JSON.stringify(key)} is given twice`);
    set.set(key, checkLabelValue(key, word.slice(eq + 1)));
  }
  const remove: string[] = [];
  for (const key of removals) {
    checkLabelKey(key);
    if (set.has(key)) throw new UsageError(`label ${JSON.stringify(key)} is both set and removed`);
    if (!remove.includes(key)) remove.push(key);
  }
  if (set.size === 0 && remove.length === 0) throw new UsageError('nothing to change: give KEY=VALUE or --remove KEY');
  return { set: Object.fromEntries(set), remove };
}

/** The document with `edit` applied to `name`'s labels; a name left with none is dropped. */
export function applyLabelEdit(doc: LabelsByName, name: string, edit: LabelEdit): LabelsByName {
  const labels = new Map(Object.entries(labelsOf(doc, name) ?? {}));
  for (const [k, v] of Object.entries(edit.set)) labels.set(k, v);
  for (const key of edit.remove) labels.delete(key);
  const others = Object.entries(doc).filter(([n]) => n !== name);
  return Object.fromEntries(labels.size ? [...others, [name, sortedLabels(labels)]] : others);
}

/**
 * Parses the labels file: `{"version": 1, "endpoints": {NAME: {KEY: VALUE}}}`. Every name, key
 * and value is checked as on the command line, so a hand edit cannot bring in what vxnetctl
 * refuses; throws UsageError with the problem (the caller says which file).
 */
export function parseLabelsDocument(text: string): LabelsByName {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`not JSON: ${(err as Error).message}`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(raw)) throw new UsageError('not a JSON object');
  if (raw.version !== LABELS_FILE_VERSION) throw new UsageError(`"version" is ${JSON.stringify(raw.version)}, expected ${LABELS_FILE_VERSION}`);
  const endpoints = raw.endpoints ?? {};
  if (!isObject(endpoints)) throw new UsageError('"endpoints" is not an object');
  const out = new Map<string, Labels>();
  for (const [name, labels] of Object.entries(endpoints)) {
    const n = checkEndpointName(name);
    if (n !== name) throw new UsageError(`endpoint name ${JSON.stringify(name)} is not lowercase`);
    if (!isObject(labels)) throw new UsageError(`the labels of ${JSON.stringify(name)} are not an object`);
    const checked = new Map<string, string>();
    for (const [key, value] of Object.entries(labels)) {
      if (typeof value !== 'string') throw new UsageError(`label ${JSON.stringify(key)} of ${JSON.stringify(name)} is not a string`);
      checked.set(checkLabelKey(key), checkLabelValue(key, value));
    }
    if (checked.size) out.set(name, sortedLabels(checked));
  }
  return Object.fromEntries(out);
}

/** The file's text: names and keys sorted, so equal documents are equal bytes. */
export function serializeLabelsDocument(doc: LabelsByName): string {
  const endpoints = Object.fromEntries(Object.entries(doc).sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, l]) => [n, sortedLabels(Object.entries(l))]));
  return JSON.stringify({ version: LABELS_FILE_VERSION, endpoints }, null, 2) + '\n';
}
