// Temp directories and embedded stores for tests that need a real IpamStore without root.
// Everything lives under os.tmpdir() and is removed by the test's teardown.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Ip, parseIp } from '../../../ipam/addr';
import { openStore } from '../../../ipam/store';
import type { IpamStore, Owner } from '../../../ipam/store/types';

/** A fresh directory under os.tmpdir(), removed when t ends. */
export async function tmpDir(t: tap.Test, prefix = 'vxnet-test-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface TmpStore {
  readonly store: IpamStore;
  readonly dataDir: string;
}

/** An embedded store in a fresh temp dir, closed and removed when t ends. */
export async function tmpStore(t: tap.Test): Promise<TmpStore> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vxnet-ipam-'));
  const store = openStore({ dataDir });
  t.teardown(async () => {
    await store.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });
  return { store, dataDir };
}

/** The owner of a test attachment: network "net", ifname eth0, runtime cni unless given. */
export const owner = (containerId: string, more: Partial<Owner> = {}): Owner =>
  ({ network: 'net', containerId, ifname: 'eth0', runtime: 'cni', ...more });

/** parseIp that fails loudly: tests only pass literals. */
export function ip(text: string): Ip {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`test literal ${text} is not an IP address`);
  return parsed;
}
