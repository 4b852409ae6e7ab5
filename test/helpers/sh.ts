// Running commands from tests: every helper resolves to {code, stdout, stderr} instead of
// throwing, so a test asserts on the outcome it expects (`mustExec` is the throwing form).
// Async on purpose: a test may serve something in-process (HTTP, a socket) while the command
// it spawned talks to it, which spawnSync would deadlock.
import { spawn, spawnSync } from 'node:child_process';

export interface ExecResult {
  /** Exit code; -1 if the process could not be started or was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
  /** Signal that ended the process (a timeout kills with SIGKILL), or null. */
  signal: NodeJS.Signals | null;
}

export interface ExecOptions {
  /** Written to stdin, then stdin is closed. stdin is always closed (never inherited). */
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the process (SIGKILL, by pid) after this long. Default 60 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** Runs `cmd args...` (no shell) and resolves with its exit code and output. Never rejects. */
export function exec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let spawnError: Error | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => { /* the command exited without reading its stdin */ });
    child.on('error', (e) => { spawnError = e; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8') + (spawnError ? `${spawnError.message}\n` : '');
      resolve({ code: code ?? -1, signal, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Synchronous form of `exec`, for places that cannot await (e.g. process 'exit' handlers). */
export function execSync(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): ExecResult {
  const r = spawnSync(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    code: r.status ?? -1,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? `${r.error.message}\n` : ''),
  };
}

/** Runs a bash script (`bash -c script`); with `set -o pipefail`. */
export function sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
  return exec('bash', ['-o', 'pipefail', '-c', script], opts);
}

/** Error thrown by `mustExec`: carries the whole result. */
export class ExecError extends Error {
  constructor(readonly command: readonly string[], readonly result: ExecResult) {
    super(`${command.join(' ')} exited ${result.signal ?? result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'ExecError';
  }
}

/** Like `exec`, but rejects with an ExecError unless the exit code is 0. */
export async function mustExec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0) throw new ExecError([cmd, ...args], r);
  return r;
}

/** Runs `cmd args...` inside network namespace `netns` (`ip netns exec`). */
export function inNetns(netns: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
  return exec('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

export interface PollOptions {
  /** Give up after this long. Default 10 s. */
  timeoutMs?: number;
  /** Pause between attempts. Default 50 ms. */
  intervalMs?: number;
  /** Used in the timeout error's message. */
  what?: string;
}

/**
 * Calls `fn` until it returns something other than undefined, null or false, and resolves with
 * that value; rejects after `timeoutMs` with the last value or error `fn` produced. A throwing
 * `fn` counts as "not yet". Bounded waiting for a condition, never a fixed sleep.
 */
export async function pollUntil<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: PollOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`pollUntil: ${opts.what ?? 'condition'} not met within ${timeoutMs} ms (last: ${detail})`);
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, left)));
  }
}
