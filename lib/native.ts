// Where native addons live. The bundled executables (dist/bin/*) load them from dist/native/,
// copied there by scripts/build.mjs; run from source (tests), they load from node_modules and
// build/Release as usual.
import * as path from 'node:path';

declare const __VXNET_BUNDLED__: boolean | undefined;

export const bundled = typeof __VXNET_BUNDLED__ !== 'undefined' && __VXNET_BUNDLED__;

/** Absolute path of a bundled addon, or undefined when running from source. */
export function bundledAddon(file: string): string | undefined {
  return bundled ? path.join(__dirname, '..', 'native', file) : undefined;
}

interface NetnsAddon {
  setns(fd: number, nstype: number): void;
  unshare(flags: number): void;
  readonly CLONE_NEWNET: number;
}

let netnsAddon: NetnsAddon | undefined;

export function netnsBinding(): NetnsAddon {
  if (!netnsAddon) {
    const file = bundledAddon('vxnet_netns.node') ?? path.join(__dirname, '..', 'build', 'Release', 'vxnet_netns.node');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    netnsAddon = require(file) as NetnsAddon;
  }
  return netnsAddon;
}
