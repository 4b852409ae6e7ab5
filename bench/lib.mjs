// Helpers shared by the bench runners: statistics, formatting, running commands, output that
// goes both to stdout and to the run's log file, and the interrupt flag.
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';

// ---- output --------------------------------------------------------------------------------

let logFile;
/** Every line printed by say() is appended to this file too (bench/results/<ts>.log). */
export function setLogFile(path) { logFile = path; }

export function say(...parts) {
  const line = parts.join(' ') + '\n';
  process.stdout.write(line);
  if (logFile) appendFileSync(logFile, line);
}

// ---- interruption --------------------------------------------------------------------------

/** Set on SIGINT/SIGTERM: runners start no new operation and unwind into their cleanup. */
export const interrupt = { signal: undefined };

export class Interrupted extends Error {
  constructor() { super(`interrupted by ${interrupt.signal}`); }
}

export function checkInterrupt() {
  if (interrupt.signal) throw new Interrupted();
}

// ---- statistics ----------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending array. */
export function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k];
}

/** min/p50/p95/p99/max/mean/sd of samples (ms). */
export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n: 0, min: NaN, p50: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN, sd: NaN };
  const mean = s.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return { n, min: s[0], p50: pct(s, 50), p95: pct(s, 95), p99: pct(s, 99), max: s[n - 1], mean, sd };
}

export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
export const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN);

/** A fixed-width text table; rows are arrays of cells, numbers right-aligned. */
export function table(headers, rows) {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c)));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.every((r) => /^[-+0-9.,×x/%n\sa]*$/.test(String(r[i] ?? ''))) && rows.length > 0);
  const fmt = (r) => r.map((c, i) => (numeric[i] && i > 0 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [fmt(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(fmt)].join('\n');
}

// ---- processes -----------------------------------------------------------------------------

/**
 * Runs a program and collects its output. Children get their own session (detached), so a
 * terminal's Ctrl-C reaches the bench, which lets operations in flight finish and then cleans
 * up, instead of killing plugins half-way. Every child is bounded by timeoutMs (SIGKILL).
 */
export function run(file, args = [], { input = '', env = process.env, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      resolve({ code: -1, stdout: '', stderr: String(err), timedOut: false });
      return;
    }
    const out = [];
    const errOut = [];
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => errOut.push(d));
    child.on('error', (err) => errOut.push(Buffer.from(String(err))));
    child.stdin.on('error', () => { /* a child that exits without reading its stdin */ });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : -1),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(errOut).toString('utf8'),
        timedOut,
      });
    });
    child.stdin.end(input);
  });
}

/** Runs fn(item, index) over items with at most `limit` in flight; results in item order. */
export async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** A positive integer from the environment (BENCH_*), else def; anything else is an error. */
export const intEnv = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  if (!/^[1-9][0-9]*$/.test(v)) throw new Error(`${name}=${v}: must be a positive integer`);
  return Number(v);
};
