// vxnetctl's connection to the cluster store (etcd) for the overlay commands (hosts, network):
// the store URL from --store or $VXNET_STORE, and a registry opened behind a short probe, so
// an etcd that does not answer is one "cannot reach etcd" line after a few seconds, not a hang.
import { IoFailure, VxnetError } from '../lib/errors';
import { createLogger } from '../lib/log';
import { createEtcd } from '../etcd/client';
import { etcdReason } from '../etcd/errors';
import { parseEtcdUrl } from '../etcd/url';
import { DEFAULT_OVERLAY_PREFIX } from '../overlay/records';
import { OverlayRegistry } from '../overlay/registry';
import { UsageError, type Values } from './args';

/** How long the first answer from etcd may take. */
export const PROBE_TIMEOUT_MS = 3000;
/** How long a whole command may take once etcd answered. */
export const COMMAND_TIMEOUT_MS = 15_000;

/** --store or $VXNET_STORE, validated; throws UsageError naming the command. */
export function clusterStore(values: Values, env: Readonly<Record<string, string | undefined>>, command: string): { store: string; endpoints: string[] } {
  const store = values.store ?? (env.VXNET_STORE || undefined);
  if (store === undefined) throw new UsageError(`${command} needs the cluster store: --store etcd://HOST:PORT[,HOST:PORT...] or $VXNET_STORE (see vxnetctl ${command} --help)`);
  try {
    return { store, endpoints: parseEtcdUrl(store).endpoints };
  } catch (err) {
    throw new UsageError(`--store: ${(err as Error).message}`);
  }
}

export function within<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(onTimeout()), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Opens the registry, probes etcd once, runs fn within COMMAND_TIMEOUT_MS, closes the client. */
export async function withRegistry<T>(endpoints: readonly string[], prefix: string, fn: (reg: OverlayRegistry) => Promise<T>): Promise<T> {
  const etcd = createEtcd(endpoints);
  const unreachable = (why: string): IoFailure => new IoFailure(`cannot reach etcd at ${endpoints.join(',')}: ${why}`);
  try {
    // One call with a short deadline and no retry budget: an etcd that is down answers here.
    await within(etcd.get(`${prefix}hosts/`).options({ deadline: Date.now() + PROBE_TIMEOUT_MS }).string(),
      PROBE_TIMEOUT_MS + 500, () => unreachable(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`))
      .catch((err: unknown) => {
        if (err instanceof VxnetError) throw err;
        throw unreachable(etcdReason(err));
      });
    const reg = new OverlayRegistry(etcd, prefix, createLogger('vxnetctl', 'error'));
    return await within(fn(reg), COMMAND_TIMEOUT_MS, () => unreachable(`no result within ${COMMAND_TIMEOUT_MS / 1000} s`));
  } finally {
    etcd.close();
  }
}

export { DEFAULT_OVERLAY_PREFIX };
