// vxnetctl network create | ls | rm: overlay network definitions in the cluster store (etcd),
// the one definition every host's vxnetd joins (vxnetd --overlay-network NAME, or every
// defined network when it names none). Through overlay/registry.ts, bounded by ./cluster.ts.
import { InvalidNetworkConfig, NetworkConflict, NotFound } from '../lib/errors';
import { formatCidr } from '../ipam/addr';
import { OverlayNetwork, overlayNetworkToJson, parseOverlayNetwork } from '../overlay/plan';
import type { OverlayRegistry } from '../overlay/registry';
import { DEFAULT_OVERLAY_PREFIX } from '../overlay/records';
import { type CommandName, UsageError, type Values } from './args';
import { clusterStore, withRegistry } from './cluster';
import { type Ctx, writeJson } from './context';
import { renderTable } from './table';

const number = (flag: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${flag} ${JSON.stringify(text)}: must be a whole number`);
  return Number(text);
};

/** The definition the create options describe; throws UsageError. */
export function networkFromOptions(name: string | undefined, values: Values): OverlayNetwork {
  if (name === undefined) throw new UsageError('network create needs the network\'s name (see vxnetctl network create --help)');
  const vni = number('vni', values.vni);
  if (vni === undefined) throw new UsageError('network create needs --vni N (the VXLAN network identifier, 1-16777215)');
  if (!values.subnet?.length) throw new UsageError('network create needs --subnet CIDR (repeat once for dual stack)');
  const input: Record<string, unknown> = { name, vni, subnets: [...values.subnet] };
  const optional = { blockPrefix: ['block-prefix', values['block-prefix']], blockPrefix6: ['block-prefix6', values['block-prefix6']], mtu: ['mtu', values.mtu], port: ['port', values.port] } as const;
  for (const [field, [flag, text]] of Object.entries(optional)) {
    const n = number(flag, text);
    if (n !== undefined) input[field] = n;
  }
  try {
    return parseOverlayNetwork(input);
  } catch (err) {
    if (err instanceof InvalidNetworkConfig) {
      // parseOverlayNetwork names its fields; say them as this command's flags.
      const flags: Record<string, string> = { blockPrefix6: '--block-prefix6', blockPrefix: '--block-prefix', subnets: '--subnet', name: 'NAME', vni: '--vni', mtu: '--mtu', port: '--port' };
      const msg = err.message.replace(/^(blockPrefix6|blockPrefix|subnets|name|vni|mtu|port)(\[\d+\])?/, (_m, f: string) => flags[f]);
      throw new UsageError(msg);
    }
    throw err;
  }
}

const describe = (n: OverlayNetwork): string => {
  const blocks = n.subnets.map((s) => `/${n.blockPrefix[s.ip.family] ?? '?'}`).join(',');
  return `vni ${n.vni}, subnets ${n.subnets.map(formatCidr).join(',')}, blocks ${blocks}, mtu ${n.mtu ?? 'underlay - 50'}, port ${n.port}`;
};

async function create(ctx: Ctx, reg: OverlayRegistry, proposed: OverlayNetwork): Promise<void> {
  const other = (await reg.networks()).find((n) => n.vni === proposed.vni && n.name !== proposed.name);
  if (other) throw new NetworkConflict(`vni ${proposed.vni} is already overlay network ${other.name}'s; choose another --vni`);
  const { network, created, differs } = await reg.defineNetwork(proposed);
  if (differs) {
    throw new NetworkConflict(`overlay network ${network.name} is already defined differently: ${describe(network)} (asked: ${describe(proposed)}); remove it first (vxnetctl network rm) if no host uses it`);
  }
  if (ctx.json) {
    writeJson(ctx, { network: overlayNetworkToJson(network), created });
    return;
  }
  ctx.stdout(`${created ? 'defined' : 'already defined (identical)'}: overlay network ${network.name}: ${describe(network)}\n`);
}

/** held: blocks of hosts whose lease is alive; orphaned: the others (expired, in or past their grace). */
interface NetworkRow { network: OverlayNetwork; hosts: string[]; held: number; orphaned: number }

async function ls(ctx: Ctx, reg: OverlayRegistry, store: string): Promise<void> {
  const rows: NetworkRow[] = [];
  const alive = new Set((await reg.hosts()).items.map((h) => h.id));
  for (const network of await reg.networks()) {
    const blocks = await reg.blocks(network.name);
    const members = await reg.members(network.name);
    const held = blocks.filter((b) => alive.has(b.hostId)).length;
    rows.push({ network, hosts: members.items.map((m) => m.id).sort(), held, orphaned: blocks.length - held });
  }
  rows.sort((a, b) => (a.network.name < b.network.name ? -1 : 1));
  if (ctx.json) {
    writeJson(ctx, { store, networks: rows.map((r) => ({ ...overlayNetworkToJson(r.network), mtu: r.network.mtu ?? null, hosts: r.hosts, blocks: { held: r.held, orphaned: r.orphaned } })) });
    return;
  }
  if (rows.length === 0) {
    ctx.stdout(`(no overlay network defined in ${store}; vxnetctl network create NAME --vni N --subnet CIDR)\n`);
    return;
  }
  ctx.stdout(renderTable([
    { header: 'NETWORK' }, { header: 'VNI', align: 'right' }, { header: 'SUBNETS' }, { header: 'BLOCK' }, { header: 'MTU' }, { header: 'PORT', align: 'right' },
    { header: 'HOSTS', align: 'right' }, { header: 'BLOCKS', align: 'right' }, { header: 'ORPHANED', align: 'right' },
  ], rows.map((r) => [
    r.network.name, r.network.vni, r.network.subnets.map(formatCidr).join(','), r.network.subnets.map((s) => `/${r.network.blockPrefix[s.ip.family]}`).join(','),
    r.network.mtu ?? 'auto', r.network.port, r.hosts.length, r.held, r.orphaned,
  ])));
}

async function rm(ctx: Ctx, reg: OverlayRegistry, name: string): Promise<void> {
  const r = await reg.removeNetwork(name);
  if (!r.removed) throw new NotFound(`no overlay network ${name} in the cluster store`);
  if (ctx.json) {
    writeJson(ctx, { network: name, removed: true, blocks: r.blocks });
    return;
  }
  ctx.stdout(`removed overlay network ${name} (and ${r.blocks} block record${r.blocks === 1 ? '' : 's'})\n`);
}

export async function runNetwork(command: CommandName, values: Values, positionals: readonly string[], ctx: Ctx, prefix = DEFAULT_OVERLAY_PREFIX): Promise<void> {
  const { store, endpoints } = clusterStore(values, ctx.env, command);
  switch (command) {
    case 'network create': {
      const proposed = networkFromOptions(positionals[0], values);
      return withRegistry(endpoints, prefix, (reg) => create(ctx, reg, proposed));
    }
    case 'network ls':
      return withRegistry(endpoints, prefix, (reg) => ls(ctx, reg, store));
    case 'network rm': {
      const name = positionals[0];
      if (name === undefined) throw new UsageError('network rm needs the network\'s name (see vxnetctl network rm --help)');
      return withRegistry(endpoints, prefix, (reg) => rm(ctx, reg, name));
    }
    default:
      throw new Error(`not a network command: ${command}`);
  }
}
