// podman against one test network (test/integration/helpers/cni.ts newNet): a CNI config dir
// holding the network's conflist and a containers.conf copy pointing podman at it and at the
// built plugins. Shared by the podman tests.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CONTAINERS_CONF } from '../../helpers/podman';
import { exec, type ExecResult } from '../../helpers/sh';
import { DIST_BIN, REF_CNI, type TestNet } from './cni';

export interface Podman {
  run(args: readonly string[]): Promise<ExecResult>;
  cniDir: string;
}

/**
 * podman against one test network: a CNI config dir holding the network's conflist, and a copy
 * of deploy/containers.conf (CNI backend, runc, no ulimits) whose network_config_dir is that
 * dir and whose cni_plugin_dirs are dist/bin (vxnet, vxnet-ipam) and Debian's plugins.
 */
export function podmanFor(net: TestNet, env: NodeJS.ProcessEnv = process.env): Podman {
  const cniDir = join(net.tmp, 'net.d');
  fs.mkdirSync(cniDir);
  const { cniVersion: _v, name: _n, ...plugin } = net.conf('1.0.0');
  fs.writeFileSync(join(cniDir, `${net.name}.conflist`), JSON.stringify({ cniVersion: '1.0.0', name: net.name, plugins: [plugin] }, null, 2));
  const base = fs.readFileSync(CONTAINERS_CONF, 'utf8');
  const conf = base
    .replace(/^network_config_dir\s*=.*$/m, `network_config_dir = ${JSON.stringify(cniDir)}`)
    .replace(/^cni_plugin_dirs\s*=\s*\[[^\]]*\]/m, `cni_plugin_dirs = [${JSON.stringify(DIST_BIN)}, ${JSON.stringify(REF_CNI)}]`);
  if (!conf.includes(JSON.stringify(DIST_BIN)) || !conf.includes(JSON.stringify(cniDir))) {
    throw new Error(`${CONTAINERS_CONF}: cannot set network_config_dir and cni_plugin_dirs`);
  }
  const confFile = join(net.tmp, 'containers.conf');
  fs.writeFileSync(confFile, conf);
  const runEnv = { ...env, CONTAINERS_CONF: confFile };
  return {
    cniDir,
    run: (args) => exec('podman', ['--network-config-dir', cniDir, ...args], { env: runEnv, timeoutMs: 120_000 }),
  };
}

