// The kernel side of the Docker driver, behind a small interface so the driver's logic can be
// tested without root: the network's bridge (datapath/bridge.ts, the same code and naming as the
// CNI plugin, so one network is one bridge), or for an overlay network its routed setup
// (datapath/routed.ts, as the CNI plugin's overlay mode), and an endpoint's veth pair, made in
// the host namespace as Docker's remote driver API wants (Docker moves the container end itself),
// made by the same code as the CNI plugin's pairs (datapath/attach.ts).
import type { Cidr, Ip } from '../ipam/addr';
import { BridgeSpec, ensureBridge } from './bridge';
import { teardownBridgeNetwork } from './teardown';
import { DatapathFailure } from '../lib/errors';
import { createHostPair } from './attach';
import { openNetns } from '../net/netns';
import { Rtnl } from '../net/rtnl';
import { writeSysctl } from '../net/sysctl';
import { retiredName, setupAliasPrefix } from './names';
import { RoutedNetworkSpec, ensureRoutedNetwork, programHostEnd, teardownRoutedNetwork } from './routed';

export interface Datapath {
  ensureBridge(spec: BridgeSpec): Promise<void>;
  /** The bridge vxnet made for the network (its alias names the network), if any. */
  findBridgeOf(network: string): Promise<string | undefined>;
  /** An overlay network's routed host-wide setup (forwarding, masquerading, FORWARD rules). */
  ensureRoutedNetwork(spec: RoutedNetworkSpec): Promise<void>;
  /**
   * Creates the pair in the host namespace, host end up and on the bridge (no bridge: routed);
   * replaces leftovers of the same names.
   */
  createVeth(o: { host: string; container: string; bridge: string | undefined; mtu: number | undefined; mac: string }): Promise<void>;
  /**
   * A routed endpoint's host end: host routes to its addresses and, as the CNI side, a permanent
   * neighbour entry per address (the container's MAC), so the host never asks. IPv4: proxy ARP,
   * since Docker gives the container its IPv4 address with the block's prefix (the container
   * asks ARP for every address of it, and the host answers for what it routes elsewhere).
   * IPv6: the container has its address alone and routes through its gateway, which the host
   * end answers by proxy NDP (`gateways6`: a proxy entry each, answered at once).
   */
  routeToEndpoint(o: { host: string; ips: readonly Ip[]; mac: string; gateways6: readonly Ip[] }): Promise<void>;
  /** Names of the host namespace's links that start with prefix. */
  linksNamed(prefix: string): Promise<string[]>;
  /** Removes a link if it exists (the pair goes with either end). */
  removeLink(name: string): Promise<boolean>;
  /** Removes the bridge, its masquerading and FORWARD rules, only if vxnet made that bridge for this network. */
  teardownNetwork(o: { network: string; bridge: string; natTable: string; subnets: readonly Cidr[] }): Promise<boolean>;
  /** Removes an overlay network's routed host-wide setup. */
  teardownRoutedNetwork(spec: RoutedNetworkSpec): Promise<void>;
}


async function withHost<T>(fn: (h: Rtnl) => Promise<T>): Promise<T> {
  const h = Rtnl.open();
  try {
    return await fn(h);
  } finally {
    h.close();
  }
}

export const kernelDatapath: Datapath = {
  ensureBridge: (spec) => withHost(async (h) => { await ensureBridge(h, spec); }),

  findBridgeOf: (network) => withHost(async (h) => {
    const prefix = setupAliasPrefix(network);
    return (await h.links()).find((l) => l.kind === 'bridge' && l.alias?.startsWith(prefix))?.name;
  }),

  ensureRoutedNetwork: (spec) => withHost(async (h) => { await ensureRoutedNetwork(h, spec); }),

  createVeth: (o) => withHost(async (h) => {
    // The peer is "created in" the host's own namespace: it stays here, under its name, until Docker moves it.
    const self = openNetns('/proc/self/ns/net');
    try {
      await createHostPair(h, { host: o.host, container: o.container, ns: self, mac: o.mac, mtu: o.mtu }, o.bridge);
    } finally {
      self.close();
    }
  }),

  routeToEndpoint: (o) => withHost(async (h) => {
    const link = await h.link(o.host);
    if (!link) throw new DatapathFailure(`veth ${o.host} vanished before its routes could be set`);
    if (o.ips.some((ip) => ip.family === 4)) writeSysctl(`net/ipv4/conf/${o.host}/proxy_arp`, '1');
    if (o.gateways6.length > 0) {
      // NDP is proxied only on a forwarding interface.
      writeSysctl(`net/ipv6/conf/${o.host}/forwarding`, '1');
      writeSysctl(`net/ipv6/conf/${o.host}/proxy_ndp`, '1');
      // A proxied answer to a multicast solicitation otherwise waits up to proxy_delay (0.8 s).
      writeSysctl(`net/ipv6/neigh/${o.host}/proxy_delay`, '0');
      await Promise.all(o.gateways6.map((gw) => h.addProxyNeighbour(link.index, gw)));
    }
    await programHostEnd(h, link.index, o.ips, o.mac);
  }),

  linksNamed: (prefix) => withHost(async (h) => (await h.links()).map((l) => l.name).filter((n) => n.startsWith(prefix))),

  removeLink: (name) => withHost(async (h) => {
    const link = await h.link(name);
    if (!link) return false;
    // Out of service at once, deleted in the background (see Rtnl.retireLink).
    await h.retireLink(link, retiredName());
    return true;
  }),

  async teardownNetwork(o) {
    const ours = await withHost(async (h) => (await h.link(o.bridge))?.alias?.startsWith(setupAliasPrefix(o.network)) ?? false);
    if (!ours) return false;
    await teardownBridgeNetwork({ bridge: o.bridge, natTable: o.natTable, subnets: o.subnets });
    return true;
  },

  teardownRoutedNetwork: (spec) => teardownRoutedNetwork(spec),
};
