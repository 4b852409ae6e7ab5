// Unix-socket servers only root may use, for vxnetd's Docker plugin API and CNI hand-off.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { IoFailure } from './errors';

/** Whether something accepts connections on the unix socket. */
function socketAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    const done = (v: boolean): void => { c.destroy(); resolve(v); };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    c.setTimeout(2000, () => done(false));
  });
}

/**
 * Listens on a unix socket only root may use (directory 0700 when created, socket 0600); a
 * stale socket is replaced, a live one (another vxnetd) is an error.
 */
export async function listenOnSocket<S extends import('node:net').Server>(server: S, socketPath: string): Promise<S> {
  const dir = path.dirname(socketPath);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new IoFailure(`cannot create ${dir}: ${(err as Error).message}`);
  }
  let st: fs.Stats | undefined;
  try { st = fs.lstatSync(socketPath); } catch { st = undefined; }
  if (st) {
    if (!st.isSocket()) throw new IoFailure(`${socketPath} exists and is not a socket; remove it or choose another path`);
    if (await socketAlive(socketPath)) throw new IoFailure(`another process serves ${socketPath} (is vxnetd running already?)`);
    fs.rmSync(socketPath, { force: true });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const old = process.umask(0o177);
    try {
      server.listen(socketPath, () => { server.off('error', reject); resolve(); });
    } finally {
      process.umask(old);
    }
  }).catch((err: Error) => { throw new IoFailure(`cannot listen on ${socketPath}: ${err.message}`); });
  fs.chmodSync(socketPath, 0o600);
  return server;
}
