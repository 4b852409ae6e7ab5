// vxnetctl ipam: pools, ls, show, release, gc over the IPAM store. Reads run in one view (a
// consistent snapshot). Releases decide and release inside one withLock and delete host veths
// after the commit, so no process is exec'd while CNI plugins wait for the store's lock.
import { hostVethName } from '../datapath/names';
import { Ip, contains, formatIp, parseCidr, parseIp } from '../ipam/addr';
import {
  type AllocationJson, type HistoryJson, type PoolJson, allocationJson, attachmentKey, byAddress, freeOf, historyJson, iso, poolJson, poolStats, poolSubnetsHolding,
} from '../ipam/query';
import { type GcKept, type ReleaseTarget, type VethJson, type VethPlan, collectGarbage, releaseAllocations } from '../ipam/maintenance';
import type { Allocation, HistoryEntry, IpamStore, PoolRecord } from '../ipam/store/types';
import type { BlockUsageRow } from '../overlay/registry';
import type { BlockJson } from '../api/model';
import { DatapathFailure, NotFound } from '../lib/errors';
import { type CommandName, UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { type ApiAuth, apiAuth, apiCall, remoteApi } from './api-client';
import { openExisting, openOrFail } from './store';
import { isoTime, plural, relativeTime, renderFields, renderTable, shortId, timeWithAge } from './table';

export type { AllocationJson, HistoryJson } from '../ipam/query';

export type { VethJson, VethResultJson } from '../ipam/maintenance';

// ---- helpers ----

/** An allocation as the API answers it, back in the store's terms (what the renderers take). */
const fromJson = (a: AllocationJson): Allocation => ({
  network: a.network, address: a.address, family: a.family, containerId: a.containerId, ifname: a.ifname, runtime: a.runtime,
  ...(a.name !== null ? { name: a.name } : {}), ...(a.netns !== null ? { netns: a.netns } : {}), ...(a.aliases.length ? { aliases: a.aliases } : {}),
  rangeSet: a.rangeSet, since: Date.parse(a.since),
});
const fromHistoryJson = (h: HistoryJson): HistoryEntry => ({ ...fromJson(h), until: Date.parse(h.until), reason: h.reason });

const query = (q: Record<string, string | undefined>): string => {
  const p = new URLSearchParams(Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined));
  return p.size ? `?${p}` : '';
};

/** The remote API and its auth when --api or $VXNET_API is set. */
function remote(values: Values, ctx: Ctx): { base: string; auth: ApiAuth } | undefined {
  const base = remoteApi(values, ctx.env);
  return base === undefined ? undefined : { base, auth: apiAuth(values, ctx.env) };
}

async function using<T>(store: IpamStore, fn: (store: IpamStore) => Promise<T>): Promise<T> {
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function parseAddress(text: string | undefined, command: string): Ip {
  if (text === undefined) throw new UsageError(`"vxnetctl ${command}" needs an ADDRESS (see vxnetctl ${command} --help)`);
  const ip = parseIp(text);
  if (!ip) throw new UsageError(`"${text}" is not an IP address`);
  return ip;
}

// ---- ipam pools ----

type BlockRow = BlockUsageRow;

/** Every block of the cluster's overlay networks (or of one), with per-block usage. */
async function clusterBlocks(values: Values, ctx: Ctx): Promise<{ store: string; rows: BlockRow[] }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { clusterStore, withRegistry, DEFAULT_OVERLAY_PREFIX } = require('./cluster') as typeof import('./cluster');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { listBlockUsage } = require('../overlay/registry') as typeof import('../overlay/registry');
  const { store, endpoints } = clusterStore(values, ctx.env, 'ipam pools');
  const rows = await withRegistry(endpoints, DEFAULT_OVERLAY_PREFIX, (reg) => listBlockUsage(reg, values.network));
  return { store, rows };
}

/** ipam pools from a vxnetd's API: /api/v1/pools, and /api/v1/blocks when it runs with a cluster store. */
async function remotePools(api: { base: string; auth: ApiAuth }, network: string | undefined): Promise<{ pools: PoolJson[]; cluster?: { store: string; rows: BlockRow[] } }> {
  const p = await apiCall<{ cluster: boolean; pools: PoolJson[] }>(api.base, api.auth, 'GET', `/api/v1/pools${query({ network })}`);
  if (!p.cluster) return { pools: p.pools };
  const b = await apiCall<{ blocks: BlockJson[] }>(api.base, api.auth, 'GET', `/api/v1/blocks${query({ network })}`);
  const rows: BlockRow[] = b.blocks.map((x) => ({
    network: x.network, block: x.cidr, hostId: x.host, state: x.state, size: BigInt(x.size), used: x.used, usageAt: x.usageAt === null ? null : Date.parse(x.usageAt),
    since: Date.parse(x.since), orphanedAt: x.orphanedAt === null ? undefined : Date.parse(x.orphanedAt),
  }));
  return { pools: p.pools, cluster: { store: `${api.base}'s cluster store`, rows } };
}

async function pools(ctx: Ctx, values: Values): Promise<void> {
  if (values.api !== undefined && values.store !== undefined) throw new UsageError('give --store or --api, not both (see vxnetctl ipam pools --help)');
  // An explicit --store wins over $VXNET_API.
  const api = values.store !== undefined ? undefined : remote(values, ctx);
  let cluster: { store: string; rows: BlockRow[] } | undefined;
  let list: PoolJson[] = [];
  let store: string | null = null;
  let missing: string | undefined;
  if (api) {
    const r = await remotePools(api, values.network);
    list = r.pools;
    cluster = r.cluster;
    store = api.base;
  } else {
    cluster = values.store !== undefined ? await clusterBlocks(values, ctx) : undefined;
    const opened = openExisting(ctx.dataDir);
    if ('store' in opened) {
      store = opened.store.description;
      list = (await using(opened.store, (s) => s.view((tx) => poolStats(tx, values.network)))).map(poolJson);
    } else {
      missing = opened.missing;
    }
  }
  const note = missing !== undefined ? missing
    : list.length === 0 ? (values.network !== undefined ? `no network "${values.network}" in the IPAM store${api ? ` of ${api.base}` : ''}` : 'no pools yet (no network has allocated an address)')
      : null;
  if (ctx.json) {
    writeJson(ctx, {
      store, note, pools: list,
      ...(cluster ? {
        cluster: cluster.store,
        blocks: cluster.rows.map(({ since: _since, orphanedAt: _orphanedAt, ...b }) => ({
          ...b, size: b.size.toString(), free: b.used === null ? null : freeOf(b.size, b.used).toString(), usageAt: b.usageAt === null ? null : iso(b.usageAt),
        })),
      } : {}),
    });
    return;
  }
  if (cluster) printClusterBlocks(ctx, cluster);
  if (note !== null) {
    ctx.stdout(note + '\n');
    return;
  }
  const rows = list.flatMap((p) => p.error === undefined
    ? p.rangeSets.map((s) => [p.network, s.subnets.join(','), s.size, s.used, s.free])
    : [[p.network, `unreadable definition: ${p.error}`, '?', p.used, '?']]);
  ctx.stdout(renderTable([
    { header: 'NETWORK' }, { header: 'SUBNETS' }, { header: 'SIZE', align: 'right' }, { header: 'USED', align: 'right' }, { header: 'FREE', align: 'right' },
  ], rows));
}

function printClusterBlocks(ctx: Ctx, cluster: { store: string; rows: BlockRow[] }): void {
  if (cluster.rows.length === 0) {
    ctx.stdout(`(no overlay block in ${cluster.store})\n\n`);
    return;
  }
  ctx.stdout(`Overlay blocks in ${cluster.store} (USED as each host's vxnetd last published it):\n`);
  ctx.stdout(renderTable([
    { header: 'NETWORK' }, { header: 'BLOCK' }, { header: 'HOST' }, { header: 'STATE' },
    { header: 'SIZE', align: 'right' }, { header: 'USED', align: 'right' }, { header: 'FREE', align: 'right' },
  ], cluster.rows.map((b) => [b.network, b.block, b.hostId, b.state, b.size, b.used ?? '-', b.used === null ? '-' : freeOf(b.size, b.used)])));
  ctx.stdout('\nThis host\'s IPAM store:\n');
}

// ---- ipam ls ----

async function ls(ctx: Ctx, values: Values): Promise<void> {
  const api = remote(values, ctx);
  let allocations: Allocation[] = [];
  let store: string | null = null;
  let note: string | null = null;
  if (api) {
    const r = await apiCall<{ allocations: AllocationJson[] }>(api.base, api.auth, 'GET', `/api/v1/allocations${query({ network: values.network })}`);
    allocations = r.allocations.map(fromJson);
    store = api.base;
  } else {
    const opened = openExisting(ctx.dataDir);
    if ('store' in opened) {
      store = opened.store.description;
      allocations = await using(opened.store, (s) => s.view((tx) => tx.list(values.network !== undefined ? { network: values.network } : {})));
      allocations.sort(byAddress);
    } else {
      note = opened.missing;
    }
  }
  if (ctx.json) {
    writeJson(ctx, { store, note, allocations: allocations.map(allocationJson) });
    return;
  }
  if (note !== null) {
    ctx.stdout(note + '\n');
    return;
  }
  if (allocations.length === 0) {
    ctx.stdout(values.network !== undefined ? `no addresses allocated in network "${values.network}"\n` : 'no addresses allocated\n');
    return;
  }
  const now = ctx.now();
  ctx.stdout(renderTable(
    [{ header: 'NETWORK' }, { header: 'ADDRESS' }, { header: 'CONTAINER' }, { header: 'NAME' }, { header: 'IFNAME' }, { header: 'RUNTIME' }, { header: 'SINCE' }],
    allocations.map((a) => [a.network, a.address, shortId(a.containerId), a.name, a.ifname, a.runtime, relativeTime(a.since, now)]),
  ));
}

// ---- ipam show ----

/** ipam show's entries from a vxnetd's API: /api/v1/history and the networks' subnets. */
async function remoteShowEntries(api: { base: string; auth: ApiAuth }, network: string | undefined, ip: Ip): Promise<ShowEntry[]> {
  const address = formatIp(ip);
  const h = await apiCall<{ current: AllocationJson[]; past: HistoryJson[] }>(api.base, api.auth, 'GET', `/api/v1/history${query({ address, network })}`);
  const nets = await apiCall<{ networks: Array<{ name: string; subnets: string[] }> }>(api.base, api.auth, 'GET', '/api/v1/networks');
  const names = [...new Set([...(network !== undefined ? [network] : []), ...nets.networks.map((n) => n.name), ...h.past.map((x) => x.network), ...h.current.map((x) => x.network)])]
    .filter((n) => network === undefined || n === network);
  const out: ShowEntry[] = [];
  for (const n of names) {
    const subnets = (nets.networks.find((x) => x.name === n)?.subnets ?? []).filter((c) => { const cidr = parseCidr(c); return cidr !== undefined && contains(cidr, ip); });
    const owner = h.current.find((x) => x.network === n);
    const past = h.past.filter((x) => x.network === n).map(fromHistoryJson);
    if (owner || past.length > 0 || subnets.length > 0) out.push({ network: n, subnets, history: past, ...(owner ? { owner: fromJson(owner) } : {}) });
  }
  if (out.length === 0) {
    throw new NotFound(network !== undefined
      ? `${address} is outside network "${network}"'s subnets and has no history there (${api.base})`
      : `${address} is in no network's subnets and has no history (${api.base})`);
  }
  return out;
}

interface ShowEntry {
  network: string;
  /** Subnets of the network's pool that contain the address (empty when none does). */
  subnets: string[];
  owner?: Allocation;
  history: HistoryEntry[];
}

async function show(ctx: Ctx, values: Values, positionals: readonly string[]): Promise<void> {
  const ip = parseAddress(positionals[0], 'ipam show');
  const address = formatIp(ip);
  const api = remote(values, ctx);
  const entries = api ? await remoteShowEntries(api, values.network, ip) : await using(openOrFail(ctx.dataDir), (s) => s.view(async (tx) => {
    const records = values.network !== undefined
      ? [await tx.getPool(values.network)].filter((p): p is PoolRecord => p !== undefined)
      : await tx.listPools();
    const history = await tx.history(values.network, ip);
    const networks = [...new Set([...(values.network !== undefined ? [values.network] : []), ...records.map((r) => r.network), ...history.map((h) => h.network)])];
    const out: ShowEntry[] = [];
    for (const network of networks) {
      const subnets = poolSubnetsHolding(records.find((r) => r.network === network), ip);
      const owner = await tx.ownerOf(network, ip);
      const past = history.filter((h) => h.network === network);
      if (owner || past.length > 0 || subnets.length > 0) out.push({ network, subnets, history: past, ...(owner ? { owner } : {}) });
    }
    if (out.length === 0) {
      if (values.network !== undefined && records.length === 0) throw new NotFound(`no network "${values.network}" in the IPAM store`);
      throw new NotFound(values.network !== undefined
        ? `${address} is outside network "${values.network}"'s subnets and has no history there`
        : `${address} is in no network's subnets and has no history`);
    }
    return out;
  }));
  // The host veth is this host's to look at: not known through a remote API.
  const vethState = (o: Allocation): { name: string; exists: boolean } | null => {
    if (api) return null;
    const name = hostVethName(o.containerId, o.ifname);
    return { name, exists: ctx.veth.exists(name) };
  };
  if (ctx.json) {
    writeJson(ctx, {
      address,
      networks: entries.map((e) => ({
        network: e.network,
        subnets: e.subnets,
        owner: e.owner ? allocationJson(e.owner) : null,
        hostVeth: e.owner ? vethState(e.owner) : null,
        history: e.history.map(historyJson),
      })),
    });
    return;
  }
  const now = ctx.now();
  ctx.stdout(entries.map((e) => {
    const o = e.owner;
    const veth = o && vethState(o);
    const fields: Array<[string, string | number | undefined]> = [
      ['Address', address],
      ['Network', `${e.network}${e.subnets.length ? ` (${e.subnets.join(', ')})` : ''}`],
      ['Status', o ? `allocated since ${timeWithAge(o.since, now)}` : 'free'],
    ];
    if (o) {
      fields.push(['Container', o.containerId], ['Name', o.name], ['Ifname', o.ifname], ['Runtime', o.runtime],
        ['Netns', o.netns], ['Aliases', o.aliases?.join(', ')]);
      if (veth) fields.push(['Host veth', `${veth.name} (${veth.exists ? 'present' : 'absent'})`]);
    }
    const history = e.history.length === 0 ? 'History: none\n'
      : 'History (newest first):\n' + renderTable(
        [{ header: 'CONTAINER' }, { header: 'NAME' }, { header: 'IFNAME' }, { header: 'RUNTIME' }, { header: 'FROM' }, { header: 'UNTIL' }, { header: 'REASON' }],
        e.history.map((h) => [shortId(h.containerId), h.name, h.ifname, h.runtime, isoTime(h.since), isoTime(h.until), h.reason]));
    return renderFields(fields) + '\n' + history;
  }).join('\n'));
}

// ---- ipam release ----

function vethLine(v: VethJson, plans: readonly VethPlan[]): string {
  switch (v.result) {
    case 'deleted': return `deleted host veth ${v.name}`;
    case 'would-delete': return `would delete host veth ${v.name}`;
    case 'absent': return `host veth ${v.name} was already gone`;
    case 'error': return `cannot delete host veth ${v.name}: ${v.error}`;
    case 'kept': {
      const left = plans.find((p) => p.name === v.name)?.remaining ?? [];
      return `kept host veth ${v.name}: container ${shortId(v.containerId)} ${v.ifname} still holds ${left.length ? left.map((a) => `${a.address} (network ${a.network})`).join(', ') : 'other addresses'}`;
    }
  }
}

/** Fails the command (exit 1) after its output when a veth could not be deleted. */
function failOnVethErrors(veths: readonly VethJson[]): void {
  const failed = veths.filter((v) => v.result === 'error');
  if (failed.length === 1) throw new DatapathFailure(`released, but ${failed[0].error}`);
  if (failed.length > 1) throw new DatapathFailure(`released, but ${failed.length} host veths could not be deleted (${failed.map((v) => v.name).join(', ')}): ${failed[0].error}`);
}

async function release(ctx: Ctx, values: Values, positionals: readonly string[]): Promise<void> {
  const container = values.container;
  const network = values.network;
  if (positionals.length > 0 && container !== undefined) throw new UsageError('give an ADDRESS or --container, not both (see vxnetctl ipam release --help)');
  if (positionals.length === 0 && container === undefined) throw new UsageError('"vxnetctl ipam release" needs an ADDRESS, or --container ID --network N (see vxnetctl ipam release --help)');
  if (values.ifname !== undefined && container === undefined) throw new UsageError('--ifname goes with --container (see vxnetctl ipam release --help)');
  if (container !== undefined && network === undefined) throw new UsageError('--container needs --network N (see vxnetctl ipam release --help)');
  const ip = container === undefined ? parseAddress(positionals[0], 'ipam release') : undefined;

  const target: ReleaseTarget = ip
    ? { address: ip, ...(network !== undefined ? { network } : {}) }
    : { network: network as string, containerId: container as string, ...(values.ifname !== undefined ? { ifname: values.ifname } : {}) };
  const api = remote(values, ctx);
  const { released, plans, veths } = api
    ? await (async () => {
      const body = ip ? { address: formatIp(ip), ...(network !== undefined ? { network } : {}) }
        : { network, containerId: container, ...(values.ifname !== undefined ? { ifname: values.ifname } : {}) };
      const r = await apiCall<{ released: AllocationJson[]; veths: VethJson[] }>(api.base, api.auth, 'POST', '/api/v1/allocations/release', body);
      return { released: r.released.map(fromJson), plans: [] as VethPlan[], veths: r.veths };
    })()
    : await using(openOrFail(ctx.dataDir), (s) => releaseAllocations(s, target, { vethName: hostVethName, veth: ctx.veth }));
  if (ctx.json) {
    writeJson(ctx, { released: released.map(allocationJson), veths });
  } else {
    ctx.stdout(released.map((a) => `released ${a.address} from container ${shortId(a.containerId)} ${a.ifname} (network ${a.network})\n`).join('')
      + veths.filter((v) => v.result !== 'error').map((v) => vethLine(v, plans) + '\n').join(''));
  }
  failOnVethErrors(veths);
}

// ---- ipam gc ----

export { netnsState, type NetnsState } from '../ipam/maintenance';

async function gc(ctx: Ctx, values: Values): Promise<void> {
  const dryRun = values['dry-run'] === true;
  const api = remote(values, ctx);
  const opened = api ? undefined : openExisting(ctx.dataDir);
  if (opened && 'missing' in opened) {
    if (ctx.json) writeJson(ctx, { dryRun, checked: 0, note: opened.missing, released: [], kept: { alive: 0, noNetns: 0, otherRuntime: 0, unknown: 0 }, veths: [] });
    else ctx.stdout(opened.missing + '\n');
    return;
  }
  const result = !opened || !('store' in opened)
    ? await (async () => {
      const a = api as { base: string; auth: ApiAuth };
      const r = await apiCall<{ checked: number; released: AllocationJson[]; kept: GcKept; unknownNetns: string[]; veths: VethJson[] }>(
        a.base, a.auth, 'POST', '/api/v1/gc', { ...(values.network !== undefined ? { network: values.network } : {}), dryRun });
      return { checked: r.checked, released: r.released.map(fromJson), kept: r.kept, unknown: r.unknownNetns, veths: r.veths };
    })()
    : await using(opened.store, (s) => collectGarbage(s, {
      ...(values.network !== undefined ? { network: values.network } : {}), dryRun, vethName: hostVethName, veth: ctx.veth,
    }));
  for (const netns of result.unknown) ctx.stderr(`vxnetctl: warning: cannot tell whether netns ${netns} exists; kept its allocations\n`);
  const veths = result.veths;
  if (ctx.json) {
    writeJson(ctx, { dryRun, checked: result.checked, note: null, released: result.released.map(allocationJson), kept: result.kept, veths });
    failOnVethErrors(veths);
    return;
  }
  const k = result.kept;
  const keptText = [
    k.alive && `${k.alive} live`, k.noNetns && `${k.noNetns} without a netns`,
    k.otherRuntime && `${k.otherRuntime} of other runtimes`, k.unknown && `${k.unknown} unknown`,
  ].filter(Boolean).join(', ');
  const checked = `checked ${plural(result.checked, 'allocation', 'allocations')}${keptText ? `; kept ${keptText}` : ''}`;
  if (result.released.length === 0) {
    ctx.stdout(`nothing to collect (${checked})\n`);
    return;
  }
  const vethOf = (a: Allocation): string => {
    const v = veths.find((x) => x.containerId === a.containerId && x.ifname === a.ifname);
    return v ? `${v.name} (${v.result}${v.error ? `: ${v.error}` : ''})` : '';
  };
  ctx.stdout(renderTable(
    [{ header: 'NETWORK' }, { header: 'ADDRESS' }, { header: 'CONTAINER' }, { header: 'IFNAME' }, { header: 'NETNS' }, { header: 'HOST VETH' }],
    result.released.map((a) => [a.network, a.address, shortId(a.containerId), a.ifname, a.netns, vethOf(a)]),
  ));
  const attachments = new Set(result.released.map(attachmentKey)).size;
  ctx.stdout(`${dryRun ? 'would release' : 'released'} ${plural(result.released.length, 'address', 'addresses')} of ${plural(attachments, 'attachment', 'attachments')} whose netns is gone (${checked})\n`);
  failOnVethErrors(veths);
}

export function runIpam(command: CommandName, values: Values, positionals: readonly string[], ctx: Ctx): Promise<void> {
  switch (command) {
    case 'ipam pools': return pools(ctx, values);
    case 'ipam ls': return ls(ctx, values);
    case 'ipam show': return show(ctx, values, positionals);
    case 'ipam release': return release(ctx, values, positionals);
    case 'ipam gc': return gc(ctx, values);
    default: throw new Error(`not an ipam command: ${command}`);
  }
}
