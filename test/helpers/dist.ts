// A private copy of the built dist/ for tests that exec vxnetctl, vxnetd or the plugins: dist/
// is self-contained and runs from anywhere, so a build another process starts meanwhile cannot
// pull a binary from under the test.
import { cpSync, existsSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import type { Test } from 'tap';
import { tmpDir } from '../ipam/helpers/embedded';

const ROOT = path.resolve(__dirname, '..', '..');
export const DEFAULT_NEEDED = ['bin/vxnetctl', 'bin/vxnet', 'bin/vxnet-ipam', 'bin/vxnetd', 'native/better_sqlite3.node'];

/** Copies dist/ once it holds every file of needed (polling a build in progress for up to 10 s). */
export async function copyDist(t: Test, needed: readonly string[] = DEFAULT_NEEDED): Promise<string> {
  const src = path.join(ROOT, 'dist');
  const complete = (dir: string): boolean => needed.every((f) => existsSync(path.join(dir, f)));
  const copy = path.join(await tmpDir(t, 'vxnet-dist-'), 'dist');
  for (let attempt = 0; attempt < 20; attempt++) {
    if (complete(src)) {
      try {
        rmSync(copy, { recursive: true, force: true });
        cpSync(src, copy, { recursive: true });
        if (complete(copy)) return copy;
      } catch { /* a build is rewriting dist/: try again */ }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${src} has no complete build (${needed.join(', ')}): run npm run build first`);
}
