// Child node processes for multi-process tests. A child script (.ts) is bundled once with
// esbuild into a temp dir and run with plain node: loading the TS loader (the typescript
// compiler) costs over a second of CPU per process, which 16 racing children cannot afford.
// Native modules stay external and resolve from this repository's node_modules (NODE_PATH).
// Parent and child synchronize on lines: the child prints when it reaches a point, the parent
// waits for that line; nothing waits on time.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { build } from 'esbuild';
import { tmpDir } from './embedded';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Bundles script (a path) into a .js file under a temp dir removed when t ends. */
export async function bundleScript(t: tap.Test, script: string): Promise<string> {
  const outfile = path.join(await tmpDir(t, 'vxnet-bundle-'), `${path.basename(script, '.ts')}.js`);
  await build({
    entryPoints: [script], outfile, bundle: true, platform: 'node', format: 'cjs', target: 'node20',
    external: ['better-sqlite3'], logLevel: 'error',
  });
  return outfile;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Child {
  readonly proc: ChildProcess;
  /** The child's next stdout line; rejects if it exits first (with its stderr). */
  nextLine(): Promise<string>;
  /** Writes one line to the child's stdin; last closes stdin after it (a child reading it may then exit). */
  send(line: string, last?: boolean): void;
  readonly exited: Promise<Exit>;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
}

/** Runs `node bundle ...args`; t's teardown SIGKILLs it if it still runs. */
export function spawnBundle(t: tap.Test, bundle: string, args: readonly string[]): Child {
  const env = { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules'), NODE_OPTIONS: '' };
  const proc = spawn(process.execPath, [bundle, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const lines: string[] = [];
  const waiting: Array<{ resolve(line: string): void; reject(e: Error): void }> = [];
  let ended = false;
  const name = path.basename(bundle);
  const exited = new Promise<Exit>((resolve) => proc.on('close', (code, signal) => {
    ended = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`${name} exited (${code ?? signal}) before printing a line; stderr:\n${err}`));
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
    send: (line, last = false) => {
      if (last) proc.stdin?.end(`${line}\n`); else proc.stdin?.write(`${line}\n`);
    },
    nextLine: () => {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (ended) return Promise.reject(new Error(`${name} has exited; stderr:\n${err}`));
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
}
