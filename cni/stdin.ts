// Reading a CNI plugin's stdin (the network configuration), shared by the in-process plugin
// (./skel.ts) and the thin client that hands the call to vxnetd (./client.ts).
// Named imports: a namespace import makes the bundler copy all of node:fs's exports at load.
import { fstatSync, readSync } from 'node:fs';

/**
 * The whole of stdin. Reads fd 0 synchronously without touching process.stdin first: creating
 * that stream switches a pipe or socket to non-blocking mode, and a synchronous read then fails
 * with EAGAIN whenever the runtime has not finished writing (common when many plugins start at
 * once), after readFileSync may already have consumed part of the input. If the fd is
 * non-blocking anyway, what was read so far is kept and the rest is read from the stream.
 */
export async function readStdin(o: { terminalChecked?: boolean } = {}): Promise<string> {
  // A terminal (or /dev/null) gives no configuration; fstat instead of tty.isatty, whose module
  // loads node:net. terminalChecked: the caller knows stdin is not a terminal (the vxnet
  // launcher's `[ -t 0 ]` sends a terminal to the in-process plugin); /dev/null reads as empty.
  if (!o.terminalChecked) {
    try { if (fstatSync(0).isCharacterDevice()) return ''; } catch { return ''; }
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
