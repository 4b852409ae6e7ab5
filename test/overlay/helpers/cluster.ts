// Overlay agents on host namespaces, for the etcd-backed tests: each agent runs in this process
// with its netlink sockets inside its host's namespace and an etcd client of its own.
import type { Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Ip, formatCidr, parseIp } from '../../../ipam/addr';
import { createLogger } from '../../../lib/log';
import { openNetns } from '../../../net/netns';
import { Rtnl } from '../../../net/rtnl';
import { OverlayAgent } from '../../../overlay/agent';
import { OverlayNetwork, vxlanDeviceName } from '../../../overlay/plan';
import { createEtcd } from '../../../etcd/client';
import { Container, Host, Underlay, shown } from './hosts';

export interface Node { id: string; host: Host; agent: OverlayAgent; c?: Container; v4: string; v6: string }

export interface ClusterOptions {
  readonly endpoints: string[];
  readonly network: OverlayNetwork;
  readonly ttlSeconds: number;
  readonly graceMs?: number;
  readonly prefix?: string;
}

export function overlayCluster(t: Test, underlay: Underlay, o: ClusterOptions) {
  const prefix = o.prefix ?? `/vxt-${process.pid}-${Date.now()}/overlay/`;
  const localRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'vxt-overlay-'));
  t.teardown(() => fs.rmSync(localRoot, { recursive: true, force: true }));
  /** Where host `id`'s agent writes its local state for the CNI plugin. */
  const localDir = (id: string): string => path.join(localRoot, id);
  const log = createLogger('overlay-test', 'error');
  const dev = vxlanDeviceName(o.network.vni);

  const startAgent = async (host: Host, id: string): Promise<OverlayAgent> => {
    const client = createEtcd(o.endpoints);
    const handle = openNetns(host.ns.path);
    const rtnl = Rtnl.open(handle);
    const agent = new OverlayAgent({
      hostId: id, underlay: parseIp(host.underlay) as Ip, networks: [o.network], ttlSeconds: o.ttlSeconds, graceMs: o.graceMs ?? 60_000, prefix, retryMs: 200, localDir: localDir(id),
    }, { etcd: client, rtnl, log, monitor: (fn) => Rtnl.monitor(handle, fn) });
    // Registered before start: the teardown runs even if start fails half-way.
    t.teardown(async () => { await agent.stop({ revoke: true }); client.close(); rtnl.close(); handle.close(); });
    await agent.start();
    return agent;
  };

  const addNode = async (i: number, host?: Host): Promise<Node> => {
    const h = host ?? await underlay.addHost(i);
    const id = `host-${i}`;
    const agent = await startAgent(h, id);
    const [v4, v6] = agent.blocks(o.network.name).map(formatCidr);
    return { id, host: h, agent, v4, v6 };
  };

  /** Destinations of the routes on a node's VXLAN device, both families. */
  const routes = async (n: Node): Promise<string[]> => [
    ...(await shown(n.host.ns, ['-4', 'route', 'show', 'dev', dev])), ...(await shown(n.host.ns, ['-6', 'route', 'show', 'dev', dev])),
  ].map((l) => l.split(' ')[0]);
  const hasRoutesTo = async (n: Node, to: Node): Promise<boolean> => {
    const r = await routes(n);
    return r.includes(to.v4) && r.includes(to.v6);
  };
  const noRoutesTo = async (n: Node, to: Node): Promise<boolean> => {
    const r = await routes(n);
    return !r.includes(to.v4) && !r.includes(to.v6);
  };
  return { prefix, dev, localDir, startAgent, addNode, routes, hasRoutesTo, noRoutesTo };
}
