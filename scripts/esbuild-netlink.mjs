// esbuild plugin for bundles that use node-netlink: netlink loads its addon at module load with
// node-gyp-build(__dirname + '/..'); in a bundle it must come from dist/native (through
// lib/native.ts's __vxnetLoadAddon hook), and lazily, so that a startup snapshot can hold the
// module. Used by scripts/build.mjs and the benches that bundle vxnet code.
import { readFileSync } from 'node:fs';

export const netlinkAddon = {
  name: 'netlink-addon',
  setup(b) {
    b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(
        "require('node-gyp-build')(__dirname + '/..')",
        "(() => { let b; return new Proxy({}, { get(_, k) { b ??= globalThis.__vxnetLoadAddon('netlink.node'); return b[k]; } }); })()"),
      loader: 'js',
    }));
  },
};
