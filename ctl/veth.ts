// Host-side veth removal for `ipam release` and `ipam gc`. For now this spawns `ip link del`;
// deleteHostVeth is the one place to point at vxnet's netlink layer later (same contract:
// 'deleted', 'absent' when there is no such link, a DatapathFailure otherwise).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { DatapathFailure } from '../lib/errors';
import { VETH_PREFIX } from '../datapath/names';

export type VethResult = 'deleted' | 'absent';

export interface VethOps {
  exists(name: string): boolean;
  remove(name: string): Promise<VethResult>;
}

// Only names hostVethName derives ("vx" + 12 hex) are ever deleted: a typo or a corrupt
// record must not take down eth0 or a bridge.
const VETH_NAME = new RegExp(`^${VETH_PREFIX}[0-9a-f]{12}$`);

function checkName(name: string): void {
  if (!VETH_NAME.test(name)) throw new DatapathFailure(`refusing to delete link "${name}": not a vxnet host veth name`);
}

/**
 * Whether the link exists in this process's network namespace. /proc/self/net/dev lists the
 * links of the reader's namespace (/sys/class/net shows those of whoever mounted sysfs).
 */
export function hostVethExists(name: string): boolean {
  checkName(name);
  let dev: string;
  try {
    dev = readFileSync('/proc/self/net/dev', 'utf8');
  } catch {
    return false;
  }
  return dev.split('\n').some((line) => line.trimStart().startsWith(`${name}:`));
}

/** Deletes the host side of an attachment's veth pair (the container side goes with it). */
export async function deleteHostVeth(name: string): Promise<VethResult> {
  if (!hostVethExists(name)) return 'absent';
  return new Promise((resolve, reject) => {
    execFile('ip', ['link', 'del', 'dev', name], { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve('deleted');
      if (/Cannot find device|does not exist/i.test(stderr)) return resolve('absent');
      const why = (stderr.trim() || err.message).split('\n')[0];
      reject(new DatapathFailure(`cannot delete host veth ${name}: ${why}`));
    });
  });
}

export const systemVeth: VethOps = { exists: hostVethExists, remove: deleteHostVeth };
