// Reading a CNI plugin's stdin (the network configuration), shared by the in-process plugin
// (./skel.ts) and the thin client that hands the call to vxnetd (./client.ts).
import * as fs from 'node:fs';

/**
 * The whole of stdin. Reads fd 0 synchronously without touching process.stdin first: creating
 * that stream switches a pipe or socket to non-blocking mode, and a synchronous read then fails
 * with EAGAIN whenever the runtime has not finished writing (common when many plugins start at
 * once), after readFileSync may already have consumed part of the input. If the fd is
 * non-blocking anyway, what was read so far is kept and the rest is read from the stream.
 */
export async function readStdin(): Promise<string> {
  // A terminal (or /dev/null) gives no configuration; fstat instead of tty.isatty, whose module
  // loads node:net (2 ms the hand-off client does without).
  try { if (fs.fstatSync(0).isCharacterDevice()) return ''; } catch { return ''; }
  const chunks: Buffer[] = [];
  const buf = Buffer.allocUnsafe(64 * 1024);
  try {
    for (;;) {
      const n = fs.readSync(0, buf, 0, buf.length, null);
      if (n === 0) return Buffer.concat(chunks).toString('utf8');
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return Buffer.concat(chunks).toString('utf8');
  }
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
