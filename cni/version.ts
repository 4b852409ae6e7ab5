// CNI spec versions vxnet speaks, and the check every command makes against the config's.
import { IncompatibleVersion, InvalidNetworkConfig } from '../lib/errors';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** The config's cniVersion, if vxnet speaks it; IncompatibleVersion (code 1) otherwise. */
export function checkVersion(version: unknown): CniVersion {
  if (version === undefined || version === '') throw new InvalidNetworkConfig('cniVersion: missing');
  if (typeof version !== 'string') throw new InvalidNetworkConfig(`cniVersion: ${JSON.stringify(version)} is not a version string`);
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new IncompatibleVersion('incompatible CNI versions', `config is "${version}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`);
  }
  return version as CniVersion;
}
