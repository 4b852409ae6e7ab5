// Builds dist/: each entry point bundled into one file with esbuild (an exec'd plugin then
// parses one script instead of resolving dozens of modules), native addons copied to
// dist/native/, and for the two CNI plugins a V8 startup snapshot of the bundle: Node then
// starts with vxnet's code already loaded and initialised, instead of compiling and running
// ~250 KB of JavaScript on every exec (see README "Performance").
//
// dist/bin/NAME is what runtimes exec:
//   vxnet, vxnet-ipam  a /bin/sh launcher: exec node --snapshot-blob dist/snap/NAME.blob
//   vxnetctl, vxnetd, vxnet-lb   the bundle itself, with a node shebang
// dist/ui/ is the web view (ui/, plain TypeScript) bundled by Vite: index.html and hashed
// assets under dist/ui/assets/, which vxnetd serves at /ui/ (bin/vxnetd/ui.ts).
// Paths are absolute (runtimes exec plugins with a minimal PATH and cwd); `vxnetctl install`
// rewrites the launchers for the directory it installs to.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netlinkAddon } from './esbuild-netlink.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const dist = process.env.VXNET_BUILD_OUT || join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const snapshotted = new Set(process.env.VXNET_NO_SNAPSHOT ? [] : ['vxnet', 'vxnet-ipam']);
const entries = ['vxnet', 'vxnet-ipam', 'vxnetctl', 'vxnetd', 'vxnet-lb'];

rmSync(dist, { recursive: true, force: true });
for (const d of ['bin', 'lib', 'native', 'snap', 'deploy']) mkdirSync(join(dist, d), { recursive: true });

// V8 cannot serialize regular expressions compiled to machine code (ip-num runs some while it
// loads), so snapshots are built, and must then run, with the regexp bytecode interpreter.
const SNAPSHOT_FLAGS = ['--regexp-interpret-all'];

// NODE_EXTRA_CA_CERTS makes Node read and parse a CA bundle at start-up (about 35 ms here);
// a CNI plugin opens no TLS connection. NODE_OPTIONS could carry flags the snapshot was not
// built with, which makes Node refuse it.
/**
 * The launcher runtimes exec: one /bin/sh exec (about a millisecond) to pass node its flags.
 * vxnet's runs the hand-off client instead (handoff/client.ts) when vxnetd's CNI socket exists
 * ($VXNET_CNI_SOCKET, default /run/vxnet/cni.sock; empty: never) and stdin is not a terminal
 * (a person trying the plugin by hand gets the in-process one); the client runs this
 * launcher again with the hand-off off when vxnetd does not take the call.
 */
export function launcher(distDir, name) {
  const handoff = name !== 'vxnet' ? '' : `S="\${VXNET_CNI_SOCKET-/run/vxnet/cni.sock}"
if [ $# -eq 0 ] && [ -n "$S" ] && [ -S "$S" ] && [ ! -t 0 ]; then
  VXNET_CNI_SOCKET="$S" VXNET_LAUNCHER="$0" exec '${process.execPath}' '${distDir}/lib/vxnet-client.js'
fi
`;
  return `#!/bin/sh
# ${name}: starts Node from the startup snapshot of ${name} (see README "Performance").
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS NODE_PENDING_DEPRECATION
${handoff}VXNET_DIST='${distDir}' exec '${process.execPath}' ${SNAPSHOT_FLAGS.join(' ')} --snapshot-blob '${distDir}/snap/${name}.blob' -- "$@"
`;
}

// One id for the code of this build: vxnetd takes CNI calls only from plugins of its own build.
function buildId() {
  const h = createHash('sha256');
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|c|json)$/.test(e.name)) { h.update(p.slice(root.length)); h.update(readFileSync(p)); }
    }
  };
  for (const d of ['bin', 'handoff', 'cni', 'cnm', 'ctl', 'datapath', 'etcd', 'ipam', 'lib', 'net', 'overlay', 'native']) walk(join(root, d));
  h.update(readFileSync(join(root, 'package-lock.json')));
  return h.digest('hex').slice(0, 16);
}
const BUILD_ID = buildId();

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
    define: { __VXNET_BUNDLED__: 'true', __VXNET_VERSION__: JSON.stringify(pkg.version), __VXNET_BUILD_ID__: JSON.stringify(BUILD_ID) },
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

// The vxnet launcher's hand-off client: a bundle of its own, no snapshot (it loads ~4 KB).
await build({
  entryPoints: [join(root, 'bin', 'vxnet-client.ts')], outfile: join(dist, 'lib', 'vxnet-client.js'),
  bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, legalComments: 'none', logLevel: 'warning',
  define: { __VXNET_BUNDLED__: 'true', __VXNET_VERSION__: JSON.stringify(pkg.version), __VXNET_BUILD_ID__: JSON.stringify(BUILD_ID) },
});

// etcd3 (in the vxnetd and vxnetctl bundles, through etcd/) loads its gRPC service definitions
// from ../proto/ beside the bundle at run time.
mkdirSync(join(dist, 'proto'), { recursive: true });
for (const f of ['rpc.proto', 'kv.proto', 'auth.proto']) copyFileSync(join(dirname(require.resolve('etcd3/package.json')), 'proto', f), join(dist, 'proto', f));

const netlinkDir = dirname(require.resolve('netlink/package.json'));
copyFileSync(join(netlinkDir, 'prebuilds', `linux-${process.arch}`, 'node.napi.node'), join(dist, 'native', 'netlink.node'));
copyFileSync(join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node'), join(dist, 'native', 'better_sqlite3.node'));
copyFileSync(join(root, 'build', 'Release', 'vxnet_netns.node'), join(dist, 'native', 'vxnet_netns.node'));
for (const unit of ['vxnetd.service', 'vxnet-lb.service']) copyFileSync(join(root, 'deploy', unit), join(dist, 'deploy', unit));
// The web view: a browser bundle, built by Vite from ui/ (ui/README.md). Its base is /ui/, where
// vxnetd serves it; nothing is fetched from elsewhere at run time (no CDN, no web fonts).
const { build: viteBuild } = await import('vite');
await viteBuild({
  root: join(root, 'ui'), base: '/ui/', configFile: false, logLevel: 'warn', publicDir: false,
  build: { outDir: join(dist, 'ui'), emptyOutDir: true, target: 'es2022', sourcemap: false, reportCompressedSize: false },
});
console.log(`built ${entries.map((e) => `dist/bin/${e}`).join(' ')}${snapshotted.size ? ` (snapshots: ${[...snapshotted].join(', ')})` : ''} dist/ui/`);
