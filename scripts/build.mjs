// Builds dist/: each entry point bundled into one file with esbuild (an exec'd plugin then
// parses one script instead of resolving dozens of modules), native addons copied to
// dist/native/, and for the two CNI plugins a V8 startup snapshot of the bundle: Node then
// starts with vxnet's code already loaded and initialised, instead of compiling and running
// ~250 KB of JavaScript on every exec (see README "Performance").
//
// dist/bin/NAME is what runtimes exec:
//   vxnet, vxnet-ipam  a /bin/sh launcher: exec node --snapshot-blob dist/snap/NAME.blob
//   vxnetctl, vxnetd   the bundle itself, with a node shebang
// Paths are absolute (runtimes exec plugins with a minimal PATH and cwd); `vxnetctl install`
// rewrites the launchers for the directory it installs to.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netlinkAddon } from './esbuild-netlink.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const dist = process.env.VXNET_BUILD_OUT || join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const snapshotted = new Set(process.env.VXNET_NO_SNAPSHOT ? [] : ['vxnet', 'vxnet-ipam']);
const entries = ['vxnet', 'vxnet-ipam', 'vxnetctl', 'vxnetd'];

rmSync(dist, { recursive: true, force: true });
for (const d of ['bin', 'lib', 'native', 'snap', 'deploy']) mkdirSync(join(dist, d), { recursive: true });

// V8 cannot serialize regular expressions compiled to machine code (ip-num runs some while it
// loads), so snapshots are built, and must then run, with the regexp bytecode interpreter.
const SNAPSHOT_FLAGS = ['--regexp-interpret-all'];

// NODE_EXTRA_CA_CERTS makes Node read and parse a CA bundle at start-up (about 35 ms here);
// a CNI plugin opens no TLS connection. NODE_OPTIONS could carry flags the snapshot was not
// built with, which makes Node refuse it.
/** The launcher runtimes exec: one /bin/sh exec (about a millisecond) to pass node its flags. */
export function launcher(distDir, name) {
  return `#!/bin/sh
# ${name}: starts Node from the startup snapshot of ${name} (see README "Performance").
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS
VXNET_DIST='${distDir}' exec '${process.execPath}' ${SNAPSHOT_FLAGS.join(' ')} --snapshot-blob '${distDir}/snap/${name}.blob' -- "$@"
`;
}

for (const name of entries) {
  const bundle = join(dist, 'lib', `${name}.js`);
  await build({
    entryPoints: [join(root, 'bin', `${name}.ts`)],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    external: ['*.node', 'bindings'],
    plugins: [netlinkAddon],
    define: { __VXNET_BUNDLED__: 'true', __VXNET_VERSION__: JSON.stringify(pkg.version) },
    banner: { js: `#!${process.execPath}` },
    logLevel: 'warning',
  });
  const exe = join(dist, 'bin', name);
  if (snapshotted.has(name)) {
    const r = spawnSync(process.execPath, [...SNAPSHOT_FLAGS, '--snapshot-blob', join(dist, 'snap', `${name}.blob`), '--build-snapshot', bundle], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the snapshot of ${name} failed:\n${r.stderr}${r.stdout}`);
    writeFileSync(exe, launcher(dist, name));
  } else {
    copyFileSync(bundle, exe);
  }
  chmodSync(exe, 0o755);
}

// The etcd client (gRPC, protobuf) is a bundle of its own, loaded only by the etcd store, so the
// CNI plugins' bundles and snapshots do not carry it.
await build({
  entryPoints: [join(root, 'ipam', 'store', 'etcd-client.ts')], outfile: join(dist, 'lib', 'etcd-client.js'),
  bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, keepNames: true, legalComments: 'none', logLevel: 'warning',
});
mkdirSync(join(dist, 'proto'), { recursive: true });
for (const f of ['rpc.proto', 'kv.proto', 'auth.proto']) copyFileSync(join(dirname(require.resolve('etcd3/package.json')), 'proto', f), join(dist, 'proto', f));

const netlinkDir = dirname(require.resolve('netlink/package.json'));
copyFileSync(join(netlinkDir, 'prebuilds', `linux-${process.arch}`, 'node.napi.node'), join(dist, 'native', 'netlink.node'));
copyFileSync(join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node'), join(dist, 'native', 'better_sqlite3.node'));
copyFileSync(join(root, 'build', 'Release', 'vxnet_netns.node'), join(dist, 'native', 'vxnet_netns.node'));
copyFileSync(join(root, 'deploy', 'vxnetd.service'), join(dist, 'deploy', 'vxnetd.service'));
console.log(`built ${entries.map((e) => `dist/bin/${e}`).join(' ')}${snapshotted.size ? ` (snapshots: ${[...snapshotted].join(', ')})` : ''}`);
