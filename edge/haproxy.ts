// HAProxy itself: vxnet-lb starts it in master-worker mode and supervises it (edge/README.md
// says why, rather than driving a system-managed one), checks configs with `haproxy -c`,
// reloads through the master CLI, and speaks the Runtime API on the worker's stats socket.
//
//   haproxy -W -S MASTER_SOCKET -f CONFIG -p PIDFILE    started in its own session (setsid),
//                                                        so vxnet-lb dying leaves it serving
//   master CLI `reload`      the master re-executes itself with the file and starts a new
//                            worker with the listening sockets it already holds (no gap: the
//                            sockets never close); the old worker finishes its requests
//   master CLI `show proc`   the reload counter and failed reloads: how a reload is confirmed
//
// A restarted vxnet-lb adopts a master it finds alive (pid file + master socket answering).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { IoFailure, TryAgainLater, VxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';

/** HAProxy refused a configuration or a command; `details` holds its own words. */
export class ProxyRefused extends VxnetError {
  static override readonly name = 'ProxyRefused';
  constructor(message: string, details?: string) { super(112, message, details); }
}

/** One command on an HAProxy CLI socket (stats socket or master socket); its whole answer. */
export function cliCommand(socket: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const c = net.connect(socket, () => c.end(`${command}\n`));
    c.setEncoding('utf8');
    const timer = setTimeout(() => { c.destroy(); reject(new TryAgainLater(`HAProxy did not answer "${command}" on ${socket} within ${timeoutMs} ms`)); }, timeoutMs);
    c.on('data', (d: string) => { out += d; });
    c.on('error', (err) => { clearTimeout(timer); reject(new IoFailure(`cannot talk to HAProxy on ${socket}: ${err.message}`)); });
    c.on('close', () => { clearTimeout(timer); resolve(out); });
  });
}

// Answers of the Runtime API that mean the command was not done (2.6's wording).
const REFUSAL = /^(No such|Unknown command|Require|Invalid|Can't|Cannot|.*: unknown|.*not found|Permission denied|.* expects )/im;

/** Runtime API commands, one connection each, in order; a refusal throws with HAProxy's words. */
export async function runtimeCommands(socket: string, commands: readonly string[]): Promise<void> {
  for (const cmd of commands) {
    const answer = (await cliCommand(socket, cmd)).trim();
    if (REFUSAL.test(answer)) throw new ProxyRefused(`HAProxy refused "${cmd}": ${answer.split('\n')[0]}`, answer);
  }
}

/** `show stat` CSV -> current sessions per `backend/server`. */
export function parseSessions(csv: string): Map<string, number> {
  const lines = csv.split('\n');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const px = header.indexOf('pxname');
  const sv = header.indexOf('svname');
  const scur = header.indexOf('scur');
  const out = new Map<string, number>();
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    if (f.length < header.length - 1 || f[sv] === 'FRONTEND' || f[sv] === 'BACKEND') continue;
    out.set(`${f[px]}/${f[sv]}`, Number(f[scur]) || 0);
  }
  return out;
}

export interface ProcInfo {
  readonly masterPid: number;
  readonly reloads: number;
  readonly failed: number;
  readonly workers: ReadonlyArray<{ pid: number; reloads: number }>;
}

/** The master CLI's `show proc` (2.6 layout). */
export function parseShowProc(text: string): ProcInfo | undefined {
  const master = /^(\d+)\s+master\s+(\d+)\s+\[failed: (\d+)\]/m.exec(text);
  if (!master) return undefined;
  const workers = [...text.matchAll(/^(\d+)\s+worker\s+(\d+)/gm)].map((m) => ({ pid: Number(m[1]), reloads: Number(m[2]) }));
  return { masterPid: Number(master[1]), reloads: Number(master[2]), failed: Number(master[3]), workers };
}

export interface HaproxyPaths {
  readonly binary: string;
  readonly config: string;
  readonly masterSocket: string;
  readonly statsSocket: string;
  readonly pidFile: string;
}

/** `haproxy -c`: ok, or HAProxy's words (its ALERT lines first). */
export function checkConfig(binary: string, file: string): { ok: boolean; output: string } {
  const r = spawnSync(binary, ['-c', '-f', file], { encoding: 'utf8', timeout: 30_000 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim();
  return { ok: r.status === 0, output };
}

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch { return false; }
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it gives a value or `ms` pass. */
async function within<T>(ms: number, check: () => Promise<T | undefined>): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined || Date.now() > end) return v;
    await sleep(20);
  }
}

/**
 * The HAProxy vxnet-lb runs. `start()` adopts a live master (its pid file and master socket)
 * or starts one; `onDied` is called when the master is gone (polled every `watchMs`), so the
 * caller can start it again with its current config.
 */
export class Haproxy {
  private pid: number | undefined;
  private watch: NodeJS.Timeout | undefined;
  adopted = false;

  constructor(readonly paths: HaproxyPaths, private readonly log: Logger, private readonly watchMs = 250) {}

  masterPid(): number | undefined { return this.pid; }

  async proc(): Promise<ProcInfo | undefined> {
    return parseShowProc(await cliCommand(this.paths.masterSocket, 'show proc', 2000));
  }

  /** A master already running with our sockets, or undefined. */
  async findRunning(): Promise<number | undefined> {
    let pid: number;
    try { pid = Number(readFileSync(this.paths.pidFile, 'utf8').trim().split('\n')[0]); } catch { return undefined; }
    if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return undefined;
    const info = await this.proc().catch(() => undefined);
    return info?.masterPid === pid ? pid : undefined;
  }

  /** Adopts a running master, else starts one on the config file (which must exist and pass -c). */
  async start(onDied: () => void): Promise<void> {
    const running = await this.findRunning();
    if (running) {
      this.pid = running;
      this.adopted = true;
      this.log.info('adopted a running HAProxy', { pid: running });
    } else {
      await this.spawnMaster();
    }
    if (this.watch) return;
    this.watch = setInterval(() => {
      if (this.pid !== undefined && !alive(this.pid)) {
        this.log.error('HAProxy is gone', { pid: this.pid });
        this.pid = undefined;
        onDied();
      }
    }, this.watchMs);
    this.watch.unref();
  }

  /** Starts a master on the config file and waits for its worker. */
  async spawnMaster(): Promise<void> {
    rmSync(this.paths.masterSocket, { force: true });
    const child = spawn(this.paths.binary, ['-W', '-S', `${this.paths.masterSocket},mode,600`, '-f', this.paths.config, '-p', this.paths.pidFile],
      { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => { if (stderr.length < 16_384) stderr += d; });
    child.unref();
    (child.stderr as { unref?: () => void } | null)?.unref?.();
    const pid = child.pid;
    if (pid === undefined) throw new IoFailure(`cannot start ${this.paths.binary}`);
    const info = await within(10_000, async () => {
      if (child.exitCode !== null) return null;
      const p = await this.proc();
      return p && p.workers.length ? p : undefined;
    });
    if (!info) {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      throw new ProxyRefused(`HAProxy did not start: ${stderr.trim().split('\n').slice(-3).join(' / ') || 'no worker'}`, stderr);
    }
    this.pid = pid;
    this.adopted = false;
    this.log.info('started HAProxy', { pid, worker: info.workers[0]?.pid });
  }

  /** Hitless reload through the master CLI; resolves when the new worker runs, throws when the master reports a failure. */
  async reload(): Promise<ProcInfo> {
    const before = await this.proc();
    if (!before) throw new IoFailure(`HAProxy's master socket ${this.paths.masterSocket} gave no process list`);
    await cliCommand(this.paths.masterSocket, 'reload', 10_000).catch(() => '');
    const after = await within(15_000, async () => {
      const p = await this.proc();
      return p && (p.reloads > before.reloads || p.failed > before.failed) ? p : undefined;
    });
    if (!after) throw new TryAgainLater('HAProxy did not report the reload within 15 s');
    if (after.failed > before.failed) throw new ProxyRefused('HAProxy failed to load the new configuration; the previous one keeps running');
    return after;
  }

  /** Stops HAProxy (SIGUSR1: soft stop, in-flight requests finish) and waits up to `ms`. */
  async stop(ms = 5000): Promise<void> {
    if (this.watch) clearInterval(this.watch);
    this.watch = undefined;
    const pid = this.pid;
    this.pid = undefined;
    if (pid === undefined || !alive(pid)) return;
    process.kill(pid, 'SIGUSR1');
    if (await within(ms, async () => (alive(pid) ? undefined : true))) return;
    process.kill(pid, 'SIGKILL');
  }

  /** Stops watching, leaving HAProxy serving. */
  detach(): void {
    if (this.watch) clearInterval(this.watch);
    this.watch = undefined;
  }
}
