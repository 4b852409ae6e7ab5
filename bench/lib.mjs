// Helpers shared by the bench runners: statistics, formatting, running commands, output that
// goes both to stdout and to the run's log file, and the interrupt flag.
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
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

// ---- DNS -----------------------------------------------------------------------------------

/**
 * One A question for `name` over UDP to server {addr, port}: { rcode, address } (address: the
 * last 4 bytes of an answer with records, which is the A of a one-record answer), or undefined
 * after ms. A fresh socket and a random id per question, so a late answer is never taken for a new one.
 */
export function askA(server, name, ms = 200) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
    const id = Math.floor(Math.random() * 65536);
    const q = Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
    const timer = setTimeout(() => { s.close(); resolve(undefined); }, ms);
    s.on('message', (m) => {
      if (m.length < 12 || m.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      s.close();
      const rcode = m.readUInt16BE(2) & 0xf;
      resolve({ rcode, address: rcode === 0 && m.readUInt16BE(6) > 0 ? [...m.subarray(m.length - 4)].join('.') : undefined });
    });
    s.send(q, server.port, server.addr);
  });
}

/**
 * Milliseconds from t0 (performance.now()) until check(answer) holds for `name`, asking
 * about every millisecond; throws after boundMs.
 */
export async function msUntilDns(server, t0, name, check, boundMs = 10_000) {
  for (;;) {
    const r = await askA(server, name);
    if (r && check(r)) return performance.now() - t0;
    if (performance.now() - t0 > boundMs) throw new Error(`${name}: no change within ${boundMs} ms`);
    await new Promise((res) => setTimeout(res, 1));
  }
}

/** One row of a freshness table: label, n, p50, p99, max, PASS/MISS against p99 < targetMs. */
export function freshnessRow(label, samples, targetMs) {
  const s = summarize(samples);
  return [label, s.n, f1(s.p50), f1(s.p99), f1(s.max), s.p99 < targetMs ? 'PASS' : 'MISS'];
}
