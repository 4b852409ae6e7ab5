declare const __VXNET_VERSION__: string | undefined;

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const VERSION: string = typeof __VXNET_VERSION__ !== 'undefined' ? __VXNET_VERSION__ : (require('../package.json') as { version: string }).version;
