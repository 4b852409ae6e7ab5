// Cross-process exclusion for read-modify-write of a small file (two `vxnetctl endpoint label`
// runs must not lose each other's labels), and the atomic replace that goes with it. Node has
// no flock(2): the lock is a file created with O_EXCL holding the holder's pid, retried with
// a bound. A lock whose holder is dead (or older than staleMs: a holder keeps it for
// milliseconds) is broken; two breakers of one stale lock may both proceed in a window of a
// few microseconds, which for an operator's command is accepted rather than engineered away.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IoFailure, TryAgainLater } from './errors';

export interface FileLockOptions {
  /** Give up after this long (default 5 s): TryAgainLater naming the lock and its holder. */
  readonly timeoutMs?: number;
  /** A lock older than this is broken whoever holds it (default 30 s). */
  readonly staleMs?: number;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The lock's holder pid, or undefined when the file is gone or unreadable. */
function holderOf(lockPath: string): { pid: number; ageMs: number } | undefined {
  try {
    const st = fs.statSync(lockPath);
    const pid = Number(fs.readFileSync(lockPath, 'utf8').trim());
    return { pid: Number.isInteger(pid) && pid > 0 ? pid : 0, ageMs: Date.now() - st.mtimeMs };
  } catch {
    return undefined;
  }
}

/** Runs fn while holding `lockPath` (created, then removed); throws TryAgainLater after timeoutMs. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, o: FileLockOptions = {}): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const staleMs = o.staleMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(lockPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
      fs.writeSync(fd, `${process.pid}\n`);
    } catch (err) {
      if (fd !== undefined) fs.closeSync(fd);
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new IoFailure(`cannot create the lock file ${lockPath}: ${(err as Error).message}`);
      const holder = holderOf(lockPath);
      // pid 0: the holder has created the file and not yet written its pid; wait for it.
      if (holder && ((holder.pid > 0 && !alive(holder.pid)) || holder.ageMs > staleMs)) {
        try { fs.unlinkSync(lockPath); } catch { /* another waiter broke it first */ }
        continue;
      }
      if (Date.now() >= deadline) {
        throw new TryAgainLater(`${lockPath} is still locked after ${timeoutMs} ms${holder?.pid ? ` (by pid ${holder.pid})` : ''}; try again`);
      }
      await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(1, deadline - Date.now()))));
      wait = Math.min(wait * 2, 50);
      continue;
    }
    fs.closeSync(fd);
    try {
      return await fn();
    } finally {
      try { fs.unlinkSync(lockPath); } catch { /* broken as stale: nothing to remove */ }
    }
  }
}

/**
 * Replaces `file` with `text` so a reader sees the old or the new content, never a part: a
 * temp file beside it (same filesystem), fsync, rename, fsync of the directory.
 */
export function writeFileAtomic(file: string, text: string, mode = 0o644): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'wx', mode);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    try { fs.unlinkSync(tmp); } catch { /* not created */ }
    throw new IoFailure(`cannot write ${file}: ${(err as Error).message}`);
  }
  try {
    const dir = fs.openSync(path.dirname(file), 'r');
    try { fs.fsyncSync(dir); } finally { fs.closeSync(dir); }
  } catch { /* the rename is done; durability of the directory entry is best effort */ }
}
