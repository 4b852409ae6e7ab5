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
  isOwn(pid: number): boolean { return this.own.includes(pid); }

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
    const child = spawn('/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', cmd, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
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
  /** Ends this monitor (its own pid only) and waits for it to exit. */
  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('close', () => resolve());
      this.child.kill('SIGTERM');
    });
  }
}

function firstLines(text: string): string {
  const lines = text.trim().split('\n');
  return lines.slice(0, 6).join(' | ') + (lines.length > 6 ? ' | ...' : '');
}
