// Writes a /proc/sys value only when it differs (a write can cost more than the read, and a
// read-only /proc/sys with the right value is no error).
import * as fs from 'node:fs';
import { DatapathFailure } from '../lib/errors';

/** Sets `key` (slash-separated, as under /proc/sys) to `value`; DatapathFailure naming the key when it cannot. */
export function writeSysctl(key: string, value: string): void {
  const file = `/proc/sys/${key}`;
  try {
    if (fs.readFileSync(file, 'utf8').trim() !== value) fs.writeFileSync(file, value);
  } catch (err) {
    throw new DatapathFailure(`cannot set ${key.replace(/\//g, '.')}=${value}: ${(err as Error).message}`);
  }
}
