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

/** Turns on IP forwarding for the families (a host routing containers' traffic). */
export function enableForwarding(families: ReadonlyArray<4 | 6>): void {
  if (families.includes(4)) writeSysctl('net/ipv4/ip_forward', '1');
  if (families.includes(6)) writeSysctl('net/ipv6/conf/all/forwarding', '1');
}
