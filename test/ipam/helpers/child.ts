// Child node processes for multi-process tests. A child runs with this process's execArgv, so
// it loads .ts through the same loader tap gave the test (@tapjs/typescript's ts-node ESM
// loader). Parent and child synchronize on lines: the child prints when it reaches a point,
// the parent waits for that line; nothing waits on time.
import { ChildProcess, spawn } from 'node:child_process';
import * as readline from 'node:readline';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Child {
  readonly proc: ChildProcess;
  /** The child's next stdout line; rejects if it exits first (with its stderr). */
  nextLine(): Promise<string>;
  /** Writes one line to the child's stdin. */
  send(line: string): void;
  readonly exited: Promise<Exit>;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
}

/** Spawns `node <execArgv> script ...args`; t's teardown SIGKILLs it if it is still running. */
export function spawnScript(t: tap.Test, script: string, args: readonly string[]): Child {
  const proc = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const lines: string[] = [];
  const waiting: Array<{ resolve(line: string): void; reject(e: Error): void }> = [];
  let ended = false;
  const exited = new Promise<Exit>((resolve) => proc.on('close', (code, signal) => {
    ended = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`${script} exited (${code ?? signal}) before printing a line; stderr:\n${err}`));
    resolve({ code, signal });
  }));
  readline.createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const w = waiting.shift();
    if (w) w.resolve(line); else lines.push(line);
  });
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); });
  return {
    proc,
    exited,
    stderr: () => err,
    send: (line) => { proc.stdin?.write(`${line}\n`); },
    nextLine: () => {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (ended) return Promise.reject(new Error(`${script} has exited; stderr:\n${err}`));
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
}
