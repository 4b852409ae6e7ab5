// Where native addons live and how they load. The bundled executables load them from
// dist/native/ with process.dlopen (which also works inside a V8 startup snapshot, where
// require() of a file does not); run from source (tests), they load from node_modules and
// build/Release as usual.
import * as path from 'node:path';

declare const __VXNET_BUNDLED__: boolean | undefined;

export const bundled = typeof __VXNET_BUNDLED__ !== 'undefined' && __VXNET_BUNDLED__;

/** The dist/ directory of a bundled executable: set by its launcher, else next to the bundle. */
export function distDir(): string {
  return process.env.VXNET_DIST || path.join(__dirname, '..');
}

const loaded = new Map<string, unknown>();

/** Loads dist/native/FILE of a bundled executable. */
export function loadBundledAddon<T>(file: string): T {
  let exports = loaded.get(file);
  if (!exports) {
    const mod = { exports: {} as unknown };
    process.dlopen(mod as NodeJS.Module, path.join(distDir(), 'native', file));
    exports = mod.exports;
    loaded.set(file, exports);
  }
  return exports as T;
}

interface NetnsAddon {
  setns(fd: number, nstype: number): void;
  unshare(flags: number): void;
  readonly CLONE_NEWNET: number;
  /** _exit(2): no 'exit' event, no teardown; for a process whose output is written. */
  exitNow(code: number): never;
  /** native/rtnl.c: a route netlink socket of the calling thread's namespace, and its exchanges. */
  nlOpen(): number;
  nlNamespaceOf(fd: number): number;
  nlExchangeSync(fd: number, request: Buffer): Buffer;
  nlExchange(fd: number, request: Buffer): Promise<Buffer>;
}

let netnsAddon: NetnsAddon | undefined;

export function netnsBinding(): NetnsAddon {
  if (!netnsAddon) {
    netnsAddon = bundled
      ? loadBundledAddon<NetnsAddon>('vxnet_netns.node')
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      : (require(path.join(__dirname, '..', 'build', 'Release', 'vxnet_netns.node')) as NetnsAddon);
  }
  return netnsAddon;
}

// netlink's raw.js loads its addon through this hook in bundles (see scripts/build.mjs), on
// first use rather than at module load, so the bundle can be put in a startup snapshot.
(globalThis as { __vxnetLoadAddon?: (file: string) => unknown }).__vxnetLoadAddon = loadBundledAddon;
