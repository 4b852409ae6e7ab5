// The cluster store's address as operators write it (vxnetd --store, vxnetctl --store,
// $VXNET_STORE): etcd://host:port[,host:port...]. It names the etcd cluster that holds the
// overlay's shared state (networks, host leases, blocks); addresses themselves are allocated
// from each host's embedded store, never from etcd. Pure.
import { InvalidNetworkConfig } from '../lib/errors';

export const DEFAULT_ETCD_PORT = 2379;

/**
 * Parses `etcd://host:port[,host:port...]` into endpoints (`host:port`, IPv6 hosts in
 * brackets, port 2379 when none is given). Throws InvalidNetworkConfig naming what is wrong.
 */
export function parseEtcdUrl(url: string): { endpoints: string[] } {
  const m = /^etcd:\/\/([^/?#]*)\/?$/.exec(url.trim());
  if (!m) throw new InvalidNetworkConfig(`cluster store "${url}" is not etcd://host:port[,host:port...]`);
  const endpoints = m[1].split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (endpoints.length === 0) throw new InvalidNetworkConfig(`cluster store "${url}" names no etcd endpoint`);
  return {
    endpoints: endpoints.map((e) => {
      const hp = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(e);
      const port = hp?.[2] === undefined ? DEFAULT_ETCD_PORT : Number(hp[2]);
      if (!hp || port < 1 || port > 65535) throw new InvalidNetworkConfig(`cluster store "${url}": "${e}" is not host:port`);
      return `${hp[1]}:${port}`;
    }),
  };
}

/** gRPC's form of an endpoint: `http://host:port` (an explicit http(s):// is kept). */
export const endpointUrl = (endpoint: string): string => (/^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`);
