// A multi-host harness on one machine: "hosts" are network namespaces joined by an underlay
// (a veth per host to a bridge in an underlay namespace of the test's own), "containers" are
// namespaces attached routed inside their host, the way vxnet attaches overlay containers
// (datapath/routed.ts: no bridge, a host route per address, default via the block's gateway on
// the VXLAN device, permanent neighbours both ways). Everything lives in vxt-* namespaces, so nothing
// touches the machine's own network; every namespace is deleted by a t.teardown registered
// when it is created (also when the test fails).
//
//   vxt-u (underlay)                 vxt-h<i> (host i)                      vxt-c<i> (container)
//   [vxtul bridge]--vxtu<i> ==veth== eth0 10.238.0.<10+i>/24              eth0 <block>.5 / ::5
//                                    vxtc<n> (route <block>.5) ==veth== (default via .1 onlink)
//                                    vxlan.<vni> (made by the code under test; holds .1 / ::1)
import type { Test } from 'tap';
import { exec, newNetns, type Netns } from '../../helpers/netns';
import { mustExec, pollUntil } from '../../helpers/sh';

export const UNDERLAY_PREFIX = '10.238.0';

export interface Host {
  readonly i: number;
  readonly ns: Netns;
  /** Underlay IPv4 address. */
  readonly underlay: string;
}

export interface Container {
  readonly ns: Netns;
  readonly ip4?: string;
  readonly ip6?: string;
}

export interface Underlay {
  readonly ns: Netns;
  readonly mtu: number;
  addHost(i: number): Promise<Host>;
}

const ipn = (ns: Netns, ...args: string[]): Promise<unknown> => mustExec('ip', ['-n', ns.name, ...args]);
const sysctl = (ns: Netns, kv: string): Promise<unknown> => mustExec('ip', ['netns', 'exec', ns.name, 'sysctl', '-q', '-w', kv]);

/** Why the root harness cannot run here, or undefined. */
export async function cannotRun(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const tool of ['ip', 'bridge', 'busybox']) {
    const r = await exec('which', [tool]);
    if (r.code !== 0) return `needs ${tool}`;
  }
  return undefined;
}

export async function newUnderlay(t: Test, mtu = 1500): Promise<Underlay> {
  const ns = await newNetns(t);
  await ipn(ns, 'link', 'add', 'vxtul', 'mtu', String(mtu), 'type', 'bridge');
  await ipn(ns, 'link', 'set', 'vxtul', 'up');
  return {
    ns, mtu,
    async addHost(i: number): Promise<Host> {
      const h = await newNetns(t);
      const underlay = `${UNDERLAY_PREFIX}.${10 + i}`;
      await ipn(ns, 'link', 'add', `vxtu${i}`, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', h.name);
      await ipn(ns, 'link', 'set', `vxtu${i}`, 'master', 'vxtul', 'up');
      await ipn(h, 'addr', 'add', `${underlay}/24`, 'dev', 'eth0');
      await ipn(h, 'link', 'set', 'eth0', 'up');
      await sysctl(h, 'net.ipv4.ip_forward=1');
      await sysctl(h, 'net.ipv6.conf.all.forwarding=1');
      return { i, ns: h, underlay };
    },
  };
}

/** Adds one container (.5 / ::5 of the blocks), attached routed (see the top of the file). */
export async function addContainer(t: Test, host: Host, mtu: number, blocks: { v4?: string; v6?: string }): Promise<Container> {
  const c = await newNetns(t);
  const h = host.ns;
  const hostSide = `vxtc${Math.floor(Math.random() * 1e6)}`;
  await ipn(h, 'link', 'add', hostSide, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', c.name);
  await ipn(h, 'link', 'set', hostSide, 'up');
  await ipn(c, 'link', 'set', 'eth0', 'up');
  const macOf = async (ns: Netns, dev: string): Promise<string> =>
    (JSON.parse((await exec('ip', ['-n', ns.name, '-j', 'link', 'show', 'dev', dev])).stdout) as Array<{ address: string }>)[0].address;
  const [hostMac, containerMac] = [await macOf(h, hostSide), await macOf(c, 'eth0')];
  const attach = async (block: string, family: '-4' | '-6'): Promise<string> => {
    const [ip] = withHost(block, 5).split('/');
    const [gw] = withHost(block, 1).split('/');
    await ipn(c, 'addr', 'add', withHost(block, 5), 'dev', 'eth0', 'noprefixroute', ...(family === '-6' ? ['nodad'] : []));
    await ipn(c, 'neigh', 'replace', gw, 'lladdr', hostMac, 'dev', 'eth0', 'nud', 'permanent');
    await ipn(c, family, 'route', 'add', 'default', 'via', gw, 'dev', 'eth0', 'onlink');
    await ipn(h, family, 'route', 'add', ip, 'dev', hostSide);
    await ipn(h, 'neigh', 'replace', ip, 'lladdr', containerMac, 'dev', hostSide, 'nud', 'permanent');
    return ip;
  };
  const ip4 = blocks.v4 ? await attach(blocks.v4, '-4') : undefined;
  const ip6 = blocks.v6 ? await attach(blocks.v6, '-6') : undefined;
  return { ns: c, ...(ip4 ? { ip4 } : {}), ...(ip6 ? { ip6 } : {}) };
}

/** "10.237.3.0/24", 5 -> "10.237.3.5/24"; "fd37:0:0:3::/64", 5 -> "fd37:0:0:3::5/64" (blocks are network addresses). */
export function withHost(block: string, n: number): string {
  const [addr, prefix] = block.split('/');
  // Blocks of /64 or longer print as "<prefix>::" (their host part is zero): append the host number.
  if (addr.includes(':')) {
    if (!addr.endsWith('::')) throw new Error(`withHost: ${block} does not end in "::"`);
    return `${addr}${n.toString(16)}/${prefix}`;
  }
  const parts = addr.split('.').map(Number);
  parts[3] += n;
  return `${parts.join('.')}/${prefix}`;
}

/** One ICMP echo from a namespace (busybox ping); true when answered within a second. */
export async function ping(from: Netns, to: string, size?: number): Promise<boolean> {
  const r = await exec('ip', ['netns', 'exec', from.name, 'busybox', 'ping', '-c', '1', '-W', '1', ...(size !== undefined ? ['-s', String(size)] : []), to], { timeoutMs: 5000 });
  return r.code === 0;
}

/** Waits (bounded) until `from` reaches `to`: the first packets may wait for a bridge's ARP/ND. */
export async function reachable(from: Netns, to: string, timeoutMs = 3000): Promise<boolean> {
  try {
    await pollUntil(() => ping(from, to), { timeoutMs, intervalMs: 100, what: `${from.name} -> ${to}` });
    return true;
  } catch {
    return false;
  }
}

/** `ip -n NS OBJ show dev DEV` as trimmed lines (for assertions on what the kernel holds). */
export async function shown(ns: Netns, args: string[]): Promise<string[]> {
  const tool = args[0] === 'fdb' ? 'bridge' : 'ip';
  const r = await exec(tool, ['-n', ns.name, ...args]);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}
