// Removes what a bridge network left on the host once no container uses it: the bridge, its
// masquerading and its FORWARD accept rules. The Docker driver calls it when the last user
// of a network removes it (`docker network rm`, through datapath/docker.ts); the CNI plugin
// never does (like the reference bridge plugin it keeps the bridge between containers).
import type { Cidr } from '../ipam/addr';
import { removeForwardAccept, removeMasquerade } from '../net/nat';
import { Rtnl } from '../net/rtnl';

export interface NetworkTeardown {
  readonly bridge: string;
  readonly natTable: string;
  readonly subnets: readonly Cidr[];
}

export async function teardownBridgeNetwork(spec: NetworkTeardown): Promise<void> {
  const host = Rtnl.open();
  try {
    await host.deleteLink(spec.bridge);
  } finally {
    host.close();
  }
  removeMasquerade(spec.natTable, spec.subnets);
  removeForwardAccept(spec.bridge);
}
