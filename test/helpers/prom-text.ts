// A strict reader of Prometheus's text exposition format (version 0.0.4), for tests: throws on
// anything a Prometheus server would reject or that breaks the format's rules (names, label
// syntax and escapes, values, a family's HELP/TYPE once and before its samples, a family's
// samples together, no series twice, histograms with cumulative buckets ending at +Inf = _count).
// No dependencies: what it accepts is what the tests assert on.

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PromFamily {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly help: string;
  readonly samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: number): number {
  // Prometheus reads values with Go's strconv.ParseFloat: NaN and Inf in any case (prom-client writes "Nan").
  if (/^\+?inf$/i.test(text)) return Infinity;
  if (/^-inf$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** `{a="x",b="y"}` from position i of s; returns the labels and the index after '}'. */
function parseLabels(s: string, i: number, line: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++; // '{'
  for (;;) {
    if (s[i] === '}') return { labels, end: i + 1 };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) throw new Error(`line ${line}: bad label name at ${JSON.stringify(s.slice(i, i + 20))}`);
    const key = m[0];
    i += key.length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`line ${line}: expected =" after label ${key}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') { i++; break; }
      if (c === '\\') {
        const e = s[i + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`line ${line}: bad escape \\${e ?? ''}`);
        i += 2;
      } else { value += c; i++; }
    }
    if (Object.prototype.hasOwnProperty.call(labels, key)) throw new Error(`line ${line}: label ${key} twice`);
    labels[key] = value;
    if (s[i] === ',') i++;
    else if (s[i] !== '}') throw new Error(`line ${line}: expected , or } after label ${key}`);
  }
}

/** The family a sample name belongs to (a histogram's _bucket/_sum/_count, a summary's _sum/_count). */
function familyOf(name: string, families: ReadonlyMap<string, { type: string | undefined }>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const f = families.get(base);
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return base;
    }
  }
  return name;
}

export function parsePromText(text: string): Map<string, PromFamily> {
  const families = new Map<string, { name: string; type: PromFamily['type'] | undefined; help: string | undefined; samples: PromSample[] }>();
  const done = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  if (text !== '' && !text.endsWith('\n')) throw new Error('the text must end with a newline');
  const lines = text.split('\n');
  lines.pop();
  const family = (name: string): { name: string; type: PromFamily['type'] | undefined; help: string | undefined; samples: PromSample[] } => {
    let f = families.get(name);
    if (!f) { f = { name, type: undefined, help: undefined, samples: [] }; families.set(name, f); }
    return f;
  };
  const enter = (name: string, line: number): void => {
    if (current === name) return;
    if (current !== undefined) done.add(current);
    if (done.has(name)) throw new Error(`line ${line}: family ${name} appears again after another family`);
    current = name;
  };
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) return; // a comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      enter(name, line);
      const f = family(name);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`line ${line}: second HELP for ${name}`);
        f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        if (f.type !== undefined) throw new Error(`line ${line}: second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`line ${line}: bad type ${rest}`);
        if (f.samples.length) throw new Error(`line ${line}: TYPE for ${name} after its samples`);
        f.type = rest as PromFamily['type'];
      }
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
    if (!nm) throw new Error(`line ${line}: bad sample ${JSON.stringify(raw)}`);
    const name = nm[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (raw[i] === '{') ({ labels, end: i } = parseLabels(raw, i, line));
    for (const k of Object.keys(labels)) if (!LABEL.test(k) || k.startsWith('__')) throw new Error(`line ${line}: bad label name ${k}`);
    if (raw[i] !== ' ') throw new Error(`line ${line}: expected a space before the value`);
    const parts = raw.slice(i + 1).split(' ');
    if (parts.length < 1 || parts.length > 2) throw new Error(`line ${line}: expected a value and at most a timestamp`);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) throw new Error(`line ${line}: bad timestamp`);
    const value = parseValue(parts[0]!, line);
    const fname = familyOf(name, families);
    enter(fname, line);
    const f = family(fname);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (series.has(key)) throw new Error(`line ${line}: series ${key} twice`);
    series.add(key);
    f.samples.push({ name, labels, value });
  });
  const out = new Map<string, PromFamily>();
  for (const f of families.values()) {
    const type = f.type ?? 'untyped';
    if (type === 'histogram') checkHistogram(f.name, f.samples);
    if (type === 'counter') for (const s of f.samples) if (!(s.value >= 0)) throw new Error(`${s.name}: a counter below zero`);
    out.set(f.name, { name: f.name, type, help: f.help ?? '', samples: f.samples });
  }
  return out;
}

function checkHistogram(name: string, samples: readonly PromSample[]): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const s of samples) {
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(k);
    if (!g) { g = { buckets: [] }; groups.set(k, g); }
    if (s.name === `${name}_bucket`) {
      if (le === undefined) throw new Error(`${name}_bucket without le`);
      g.buckets.push([parseValue(le, 0), s.value]);
    } else if (s.name === `${name}_count`) g.count = s.value;
    else if (s.name === `${name}_sum`) g.sum = s.value;
    else throw new Error(`${s.name}: not a sample of histogram ${name}`);
  }
  for (const [k, g] of groups) {
    if (g.count === undefined || g.sum === undefined) throw new Error(`${name}${k}: _count or _sum missing`);
    const sorted = [...g.buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.at(-1)?.[0] !== Infinity) throw new Error(`${name}${k}: no le="+Inf" bucket`);
    for (let i = 1; i < sorted.length; i++) if (sorted[i]![1] < sorted[i - 1]![1]) throw new Error(`${name}${k}: buckets not cumulative`);
    if (sorted.at(-1)![1] !== g.count) throw new Error(`${name}${k}: +Inf bucket ${sorted.at(-1)![1]} != _count ${g.count}`);
  }
}

/** The value of one series (`name` is the sample's name), or undefined. */
export function sampleValue(families: ReadonlyMap<string, PromFamily>, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

/** Sum over the series of `name` whose labels include `labels`. */
export function sampleSum(families: ReadonlyMap<string, PromFamily>, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let n = 0;
  for (const f of families.values()) for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) n += s.value;
  return n;
}
