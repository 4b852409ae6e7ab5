// Runs the `nft` binary: a text batch on stdin (one transaction per call) and a long-running
// `nft monitor`. A runner may target another network namespace (tests, benchmarks): nft then
// runs under `nsenter --net=PATH`, which enters the namespace and execs nft in the same
// process, so the pid a runner spawned is the pid `nft monitor` reports as a transaction's
// author. Why the binary with text rather than JSON or netlink: datapath/README.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { DatapathFailure } from '../lib/errors';
import { findTool } from './nat';

export interface NftRunnerOptions {
  /** A network namespace: a path (`/proc/PID/ns/net`, `/run/netns/NAME`) or a name under /run/netns. */
  readonly netns?: string;
}

/** How many of its own recent nft pids a runner remembers (a monitor reports them late). */
const OWN_PIDS = 256;

export class NftRunner {
  private readonly own: number[] = [];
  /** Pids of this runner's sessions (long-lived: not in the ring of recent pids). */
  private readonly sessionPids = new Set<number>();

  constructor(private readonly options: NftRunnerOptions = {}) {}

  private command(args: readonly string[]): [string, string[]] {
    const nft = findTool('nft');
    if (!nft) throw new DatapathFailure('the nft command is not installed (apt-get install nftables)');
    const ns = this.options.netns;
    if (ns === undefined) return [nft, [...args]];
    const nsenter = findTool('nsenter');
    if (!nsenter) throw new DatapathFailure('the nsenter command is not installed (apt-get install util-linux)');
    return [nsenter, [`--net=${ns.includes('/') ? ns : `/run/netns/${ns}`}`, '--', nft, ...args]];
  }

  /** Whether `pid` is one of this runner's own nft processes. */
  isOwn(pid: number): boolean { return this.own.includes(pid) || this.sessionPids.has(pid); }

  /** A long-running `nft -i` for small transactions (see NftSession); its pid counts as own. */
  session(): NftSession {
    return new NftSession(() => {
      const [cmd, args] = this.command(['-i']);
      // One pipe for stdout and stderr: an error and the marker that follows it stay in order.
      const child = spawn('/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', cmd, ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
      const pid = child.pid;
      if (pid !== undefined) {
        this.sessionPids.add(pid);
        child.on('close', () => this.sessionPids.delete(pid));
      }
      return child;
    });
  }

  /** Runs `script` as one nft transaction; DatapathFailure with `what` and nft's message when it fails. */
  run(script: string, what: string): Promise<void> {
    const [cmd, args] = this.command(['-f', '-']);
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
      if (child.pid !== undefined) {
        this.own.push(child.pid);
        if (this.own.length > OWN_PIDS) this.own.shift();
      }
      const err: Buffer[] = [];
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.stdin.on('error', () => { /* nft exited early; its status says why */ });
      child.on('error', (e) => reject(new DatapathFailure(`${what}: cannot run nft: ${e.message}`)));
      child.on('close', (code) => {
        if (code === 0) resolve();
        else reject(new DatapathFailure(`${what}: nft failed: ${firstLines(Buffer.concat(err).toString('utf8'))}`));
      });
      child.stdin.end(script);
    });
  }

  /** Starts `nft monitor`; calls `onLine` per line of its output and `onExit` when it ends. */
  monitor(onLine: (line: string) => void, onExit: (code: number | null) => void): NftMonitor {
    const [cmd, args] = this.command(['monitor']);
    // Warnings ("W: Received event for an unknown set.") go to stderr; one pipe for both keeps
    // them in order with the transaction they belong to.
    // `nft monitor` never reads stdin and writes only when an event comes, so a vxnetd killed with
    // SIGKILL would leave it running for good (in a namespace gone quiet, forever): setpriv's
    // parent-death signal ends it with its parent. It execs, so the pid is nft's.
    const setpriv = findTool('setpriv');
    const shell = ['/bin/sh', '-c', 'exec "$0" "$@" 2>&1', cmd, ...args];
    const argv = setpriv ? [setpriv, '--pdeathsig', 'KILL', ...shell] : shell;
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    let rest = '';
    const feed = (b: Buffer): void => {
      const text = rest + b.toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    };
    child.stdout?.on('data', feed);
    child.on('error', () => { /* 'close' follows */ });
    child.on('close', (code) => onExit(code));
    return new NftMonitor(child);
  }
}

export class NftMonitor {
  constructor(private readonly child: ChildProcess) {}
  /** The monitor's pid (nft's: the wrappers exec). */
  get pid(): number | undefined { return this.child.pid; }
  /** Ends this monitor (its own pid only) and waits for it to exit. */
  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('close', () => resolve());
      this.child.kill('SIGTERM');
    });
  }
}

/** How long a session waits for its marker before it gives up on the process. */
const SESSION_TIMEOUT_MS = 10_000;

/**
 * One `nft -i` process fed a transaction per line: a change of a few elements costs ~1 ms
 * instead of the 20-100 ms of starting nft (measured under load: the process start, the
 * dynamic loading and, through nsenter, a second exec dominate a small batch). After each
 * transaction a marker line (a deliberate syntax error naming a sequence number) is sent; nft
 * echoes it in its error, so everything before it is the transaction's output: an `Error:`
 * there is a failed (and, being one transaction, entirely undone) batch. Statements joined by
 * `;` on one line are one transaction. nft refreshes its cache when the ruleset's generation
 * moved, so changes by other processes are seen. The process is respawned after it dies.
 * Calls are serialised.
 */
export class NftSession {
  private child: ChildProcess | undefined;
  private out = '';
  private seq = 0;
  private waiter: ((text: string) => void) | undefined;
  private marker = '';
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly spawnNft: () => ChildProcess) {}

  /** The running nft process's pid (undefined before the first call and after it died). */
  get pid(): number | undefined { return this.child?.pid; }

  /** Runs `script` (statements, one per line) as one transaction. */
  run(script: string, what: string): Promise<void> {
    const job = (): Promise<void> => this.once(script, what);
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Ends the process (its own pid only) and waits for it to exit. */
  async close(): Promise<void> {
    await this.queue;
    await this.kill();
  }

  private async kill(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    // Referenced again while waiting: an unreferenced child would let the loop end first.
    c.ref();
    (c.stdout as unknown as { ref?: () => void } | null)?.ref?.();
    await new Promise<void>((resolve) => { c.once('close', () => resolve()); c.kill('SIGTERM'); });
  }

  private start(): ChildProcess {
    const c = this.spawnNft();
    this.out = '';
    c.stdout?.setEncoding('utf8');
    c.stdout?.on('data', (d: string) => {
      if (this.child !== c) return;
      this.out += d;
      const at = this.out.indexOf(`\n${this.marker}\n`);
      if (this.waiter && at >= 0) {
        const text = this.out.slice(0, at + 1);
        this.out = this.out.slice(at + this.marker.length + 2);
        this.waiter(text);
      }
    });
    c.stdin?.on('error', () => { /* the process died; 'close' tells the waiter */ });
    c.on('error', () => { /* 'close' follows */ });
    c.on('close', () => { if (this.child === c) { this.child = undefined; this.waiter?.('Error: nft -i exited\n'); } });
    // A session left open must not keep the process alive.
    c.unref();
    (c.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    (c.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return c;
  }

  private async once(script: string, what: string): Promise<void> {
    const line = script.split('\n').filter((l) => l.trim() !== '').join('; ');
    if (line === '') return;
    if (!this.child) this.child = this.start();
    const child = this.child;
    this.marker = `vxnetsync${++this.seq}`;
    let timer: NodeJS.Timeout | undefined;
    const text = await new Promise<string | undefined>((resolve) => {
      this.waiter = resolve;
      timer = setTimeout(() => resolve(undefined), SESSION_TIMEOUT_MS);
      child.stdin?.write(`${line}\n${this.marker}\n`);
    });
    clearTimeout(timer);
    this.waiter = undefined;
    if (text === undefined) {
      await this.kill();
      throw new DatapathFailure(`${what}: nft -i did not answer within ${SESSION_TIMEOUT_MS} ms`);
    }
    // The marker's own error message precedes it; carets of earlier echoes may lead.
    const lines = text.split('\n').filter((l) => l !== '' && !/^\s*\^+\s*$/.test(l));
    if (lines.at(-1)?.startsWith('Error: syntax error')) lines.pop();
    if (lines.some((l) => l.startsWith('Error:'))) throw new DatapathFailure(`${what}: nft failed: ${firstLines(lines.join('\n'))}`);
    if (this.child === undefined) throw new DatapathFailure(`${what}: nft -i exited`);
  }
}

function firstLines(text: string): string {
  const lines = text.trim().split('\n');
  return lines.slice(0, 6).join(' | ') + (lines.length > 6 ? ' | ...' : '');
}
