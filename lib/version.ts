declare const __VXNET_VERSION__: string | undefined;

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const VERSION: string = typeof __VXNET_VERSION__ !== 'undefined' ? __VXNET_VERSION__ : (require('../package.json') as { version: string }).version;

declare const __VXNET_BUILD_ID__: string | undefined;

/**
 * Identifies the code of one build (scripts/build.mjs hashes the sources); "dev" when running
 * from TypeScript. vxnetd takes a CNI call from a plugin only of its own build (handoff/protocol.ts).
 */
export const BUILD_ID: string = typeof __VXNET_BUILD_ID__ !== 'undefined' ? __VXNET_BUILD_ID__ : 'dev';
