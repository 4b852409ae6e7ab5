// The overlay agent as vxnetd starts it: from vxnetd's typed flags (bin/vxnetd/flags.ts) to a
// running agent in one call. Opens the etcd client, the netlink sockets (host namespace, or
// the one given: tests and hosts-as-namespaces), picks the host id and underlay address when
// they are not given, starts the agent; stop() undoes all of it (the datapath stays, see
// agent.ts). Nothing here parses: the flags were checked once, where vxnetd read them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { InvalidNetworkConfig } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { Cidr, Ip } from '../ipam/addr';
import { openNetns } from '../net/netns';
import { Rtnl } from '../net/rtnl';
import { createEtcd, type EtcdObserver } from '../etcd/client';
import { OverlayAgent } from './agent';
import { detectUnderlay } from './apply';
import { DEFAULT_LOCAL_DIR } from './local';
import type { OverlayNetwork } from './plan';

export interface OverlayServiceConfig {
  /** The cluster store's etcd endpoints, host:port (vxnetd --store, parsed). */
  readonly endpoints: readonly string[];
  /** Overlay networks this host defines if the cluster does not (the cluster's stored ones win). */
  readonly networks: readonly OverlayNetwork[];
  /** Networks joined by name, as the cluster defines them. No network at all: every defined one. */
  readonly join?: readonly string[];
  /** Default: /etc/machine-id, else the hostname. */
  readonly hostId?: string;
  /** Default: the address of the default route's link. */
  readonly underlay?: Ip;
  readonly ttlSeconds?: number;
  readonly graceMs?: number;
  readonly prefix?: string;
  /** Default /run/vxnet/overlay. */
  readonly localDir?: string;
  /** Run the datapath side in this network namespace (a path such as /run/netns/x). */
  readonly netns?: string;
  /** Addresses in use per block, from the host's IPAM store (AgentComponents.usage). */
  readonly usage?: (network: string, blocks: readonly Cidr[]) => Promise<number[]>;
  /** Told of the registry's etcd operations (vxnetd's metrics). */
  readonly etcdObserver?: EtcdObserver;
}

export interface OverlayService {
  readonly agent: OverlayAgent;
  readonly hostId: string;
  readonly underlay: Ip;
  stop(options?: { revoke?: boolean }): Promise<void>;
}

export function defaultHostId(): string {
  try {
    const id = fs.readFileSync('/etc/machine-id', 'utf8').trim();
    if (/^[0-9a-f]{32}$/.test(id)) return id;
  } catch { /* no machine id */ }
  return os.hostname();
}

export async function startOverlayService(cfg: OverlayServiceConfig, log: Logger): Promise<OverlayService> {
  const { networks } = cfg;
  const join = cfg.join ?? [];
  const handle = cfg.netns ? openNetns(cfg.netns) : undefined;
  const rtnl = Rtnl.open(handle);
  const etcd = createEtcd(cfg.endpoints);
  const cleanup = (): void => { etcd.close(); rtnl.close(); handle?.close(); };
  try {
    const underlay = cfg.underlay ?? await detectUnderlay(rtnl);
    if (!underlay) throw new InvalidNetworkConfig('underlay: not given and no default route to take it from');
    const hostId = cfg.hostId ?? defaultHostId();
    const agent = new OverlayAgent({
      hostId, underlay, networks, join, joinAll: networks.length === 0 && join.length === 0,
      ...(cfg.ttlSeconds !== undefined ? { ttlSeconds: cfg.ttlSeconds } : {}),
      ...(cfg.graceMs !== undefined ? { graceMs: cfg.graceMs } : {}),
      ...(cfg.prefix !== undefined ? { prefix: cfg.prefix } : {}),
      localDir: cfg.localDir ?? DEFAULT_LOCAL_DIR,
    }, { etcd, rtnl, log, monitor: (fn) => Rtnl.monitor(handle, fn), ...(cfg.usage ? { usage: cfg.usage } : {}), ...(cfg.etcdObserver ? { etcdObserver: cfg.etcdObserver } : {}) });
    try {
      await agent.start();
    } catch (err) {
      await agent.stop({ revoke: true });
      throw err;
    }
    let stopped = false;
    return {
      agent, hostId, underlay,
      async stop(options = {}): Promise<void> {
        if (stopped) return;
        stopped = true;
        await agent.stop(options);
        cleanup();
      },
    };
  } catch (err) {
    cleanup();
    throw err;
  }
}
