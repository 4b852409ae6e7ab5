// Reading a CNI plugin's stdin (the network configuration), shared by the in-process plugin
// (./skel.ts) and the thin client that hands the call to vxnetd (./client.ts).
// Named imports: a namespace import makes the bundler copy all of node:fs's exports at load.
import { fstatSync, readFileSync, readSync } from 'node:fs';

const O_NONBLOCK = 0o4000;

/**
 * Whether reading fd 0 blocks until data comes (its open file lacks O_NONBLOCK, per
 * /proc/self/fdinfo/0); false when that cannot be told. Node has no fcntl.
 */
export function stdinBlocks(fdinfo?: string): boolean {
  try {
    const info = fdinfo ?? readFileSync('/proc/self/fdinfo/0', 'utf8');
    const at = info.indexOf('flags:');
    if (at < 0) return false;
    const flags = parseInt(info.slice(at + 6).trim(), 8);
    return Number.isInteger(flags) && (flags & O_NONBLOCK) === 0;
  } catch {
    return false;
  }
}

/**
 * The whole of stdin. Reads fd 0 synchronously without touching process.stdin first: creating
 * that stream switches a pipe or socket to non-blocking mode, and a synchronous read then fails
 * with EAGAIN whenever the runtime has not finished writing (common when many plugins start at
 * once), after readFileSync may already have consumed part of the input. So readFileSync (its
 * UTF-8 path runs in C++: about 0.3 ms less than the loop below at a plugin's start) only when
 * fd 0 blocks; when it is non-blocking anyway, what the loop read is kept and the rest is read
 * from the stream.
 */
export async function readStdin(o: { terminalChecked?: boolean } = {}): Promise<string> {
  // A terminal (or /dev/null) gives no configuration; fstat instead of tty.isatty, whose module
  // loads node:net. terminalChecked: the caller knows stdin is not a terminal (the vxnet
  // launcher's `[ -t 0 ]` sends a terminal to the in-process plugin); /dev/null reads as empty.
  if (!o.terminalChecked) {
    try { if (fstatSync(0).isCharacterDevice()) return ''; } catch { return ''; }
  }
  if (stdinBlocks()) {
    try { return readFileSync(0, 'utf8'); } catch { /* an I/O error: the loop below reads what is left */ }
  }
  const chunks: Buffer[] = [];
  const buf = Buffer.allocUnsafe(64 * 1024);
  try {
    for (;;) {
      const n = readSync(0, buf, 0, buf.length, null);
      if (n === 0) return Buffer.concat(chunks).toString('utf8');
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return Buffer.concat(chunks).toString('utf8');
  }
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
