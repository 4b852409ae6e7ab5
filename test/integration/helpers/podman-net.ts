// podman against one test network (test/integration/helpers/cni.ts newNet): a CNI config dir
// holding the network's conflist and a containers.conf copy pointing podman at it and at the
// built plugins. Shared by the podman tests.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { podmanWithBuiltPlugins } from '../../helpers/podman';
import type { ExecResult } from '../../helpers/sh';
import type { TestNet } from './cni';

export interface Podman {
  run(args: readonly string[]): Promise<ExecResult>;
  cniDir: string;
}

/**
 * podman against one test network: a CNI config dir holding the network's conflist, and
 * test/helpers/podman.ts podmanWithBuiltPlugins's containers.conf for it in the net's tmp dir.
 */
export function podmanFor(net: TestNet, env: NodeJS.ProcessEnv = process.env): Podman {
  const cniDir = join(net.tmp, 'net.d');
  fs.mkdirSync(cniDir);
  const { cniVersion: _v, name: _n, ...plugin } = net.conf('1.0.0');
  fs.writeFileSync(join(cniDir, `${net.name}.conflist`), JSON.stringify({ cniVersion: '1.0.0', name: net.name, plugins: [plugin] }, null, 2));
  return { cniDir, run: podmanWithBuiltPlugins(cniDir, join(net.tmp, 'containers.conf'), env) };
}
