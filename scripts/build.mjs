// Bundles each entry point into one file (dist/bin/NAME) with esbuild, so an exec'd plugin
// parses one script instead of resolving dozens of modules, and copies the native addons it
// needs to dist/native/. The shebang names this machine's node by absolute path: runtimes
// exec plugins with a PATH that may not contain node.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const dist = join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const entries = ['vxnet', 'vxnet-ipam', 'vxnetctl', 'vxnetd'];

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'bin'), { recursive: true });
mkdirSync(join(dist, 'native'), { recursive: true });

// netlink finds its addon with node-gyp-build(__dirname + '/..'); in a bundle __dirname is
// dist/bin, so point it at the copy in dist/native instead.
const netlinkAddon = {
  name: 'netlink-addon',
  setup(b) {
    b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(
        "require('node-gyp-build')(__dirname + '/..')",
        "require(require('path').join(__dirname, '..', 'native', 'netlink.node'))"),
      loader: 'js',
    }));
  },
};

for (const name of entries) {
  const outfile = join(dist, 'bin', name);
  await build({
    entryPoints: [join(root, 'bin', `${name}.ts`)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    keepNames: true,
    sourcemap: false,
    legalComments: 'none',
    external: ['better-sqlite3', '*.node'],
    plugins: [netlinkAddon],
    define: { __VXNET_BUNDLED__: 'true', __VXNET_VERSION__: JSON.stringify(pkg.version) },
    banner: { js: `#!${process.execPath}` },
    logLevel: 'warning',
  });
  chmodSync(outfile, 0o755);
}

// better-sqlite3's JS stays external (it is small and loads its addon through nativeBinding);
// bundle it into dist/lib so dist/ runs without node_modules.
await build({
  entryPoints: [require.resolve('better-sqlite3')],
  outfile: join(dist, 'node_modules', 'better-sqlite3', 'index.js'),
  bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true,
  external: ['*.node', 'bindings'], logLevel: 'warning',
});

const netlinkDir = dirname(require.resolve('netlink/package.json'));
copyFileSync(join(netlinkDir, 'prebuilds', `linux-${process.arch}`, 'node.napi.node'), join(dist, 'native', 'netlink.node'));
copyFileSync(join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node'), join(dist, 'native', 'better_sqlite3.node'));
copyFileSync(join(root, 'build', 'Release', 'vxnet_netns.node'), join(dist, 'native', 'vxnet_netns.node'));
console.log(`built ${entries.map((e) => `dist/bin/${e}`).join(' ')}`);
