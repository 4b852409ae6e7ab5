// vxnetctl ipam: pools, ls, show, release, gc over the IPAM store. Reads run in one view (a
// consistent snapshot). Releases decide and release inside one withLock and delete host veths
// after the commit, so no process is exec'd while CNI plugins wait for the store's lock.
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { hostVethName } from '../datapath/names';
import { Ip, contains, formatCidr, formatIp, ipKey, parseIp } from '../ipam/addr';
import { RangeSet, canonicalRangeSets, setCapacity, setToJson } from '../ipam/range';
import type { Allocation, HistoryEntry, IpamStore, IpamTx, PoolRecord } from '../ipam/store/types';
import { DatapathFailure, NotFound } from '../lib/errors';
import { type CommandName, UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { openExisting, openOrFail } from './store';
import { isoTime, plural, relativeTime, renderFields, renderTable, shortId, timeWithAge } from './table';

const RELEASE_REASON = 'vxnetctl release';
const GC_REASON = 'vxnetctl gc';

// ---- JSON shapes (stable field names; absent values are null, never missing) ----

export interface AllocationJson {
  network: string;
  address: string;
  family: 4 | 6;
  containerId: string;
  ifname: string;
  name: string | null;
  runtime: string;
  netns: string | null;
  aliases: string[];
  rangeSet: number;
  /** ISO 8601. */
  since: string;
}

export interface HistoryJson extends AllocationJson {
  until: string;
  reason: string;
}

export type VethResultJson = 'deleted' | 'absent' | 'kept' | 'would-delete' | 'error';

export interface VethJson {
  name: string;
  containerId: string;
  ifname: string;
  result: VethResultJson;
  error?: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export const allocationJson = (a: Allocation): AllocationJson => ({
  network: a.network, address: a.address, family: a.family, containerId: a.containerId, ifname: a.ifname,
  name: a.name ?? null, runtime: a.runtime, netns: a.netns ?? null, aliases: [...(a.aliases ?? [])], rangeSet: a.rangeSet,
  since: iso(a.since),
});

const historyJson = (h: HistoryEntry): HistoryJson => ({ ...allocationJson(h), until: iso(h.until), reason: h.reason });

// ---- helpers ----

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

/** The pool's range sets, or the reason its stored definition cannot be read. */
function poolSets(record: PoolRecord): RangeSet[] | Error {
  try {
    return canonicalRangeSets(JSON.parse(record.definition) as unknown, `pool "${record.network}"`);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

const subnetsOfSet = (set: RangeSet): string[] => [...new Set(setToJson(set).map((r) => r.subnet))];

const byAddress = (a: Allocation, b: Allocation): number =>
  a.network < b.network ? -1 : a.network > b.network ? 1
    : a.family - b.family || (ipKey(parseIp(a.address) as Ip) < ipKey(parseIp(b.address) as Ip) ? -1 : 1);

const attachmentKey = (a: { network?: string; containerId: string; ifname: string }): string =>
  `${a.network ?? ''}\u0000${a.containerId}\u0000${a.ifname}`;

// ---- ipam pools ----

interface SetStat { subnets: string[]; ranges: ReturnType<typeof setToJson>; size: bigint; used: number }
interface PoolStat { network: string; updated: number; used: number; sets?: SetStat[]; error?: string }

async function poolStat(tx: IpamTx, record: PoolRecord): Promise<PoolStat> {
  const sets = poolSets(record);
  const used = await tx.countByNetwork(record.network);
  if (sets instanceof Error) return { network: record.network, updated: record.updated, used, error: sets.message };
  const perSet = sets.map(() => 0);
  if (sets.length === 1) perSet[0] = used;
  else for (const a of await tx.list({ network: record.network })) if (a.rangeSet < perSet.length) perSet[a.rangeSet] += 1;
  return {
    network: record.network, updated: record.updated, used,
    sets: sets.map((set, i) => ({ subnets: subnetsOfSet(set), ranges: setToJson(set), size: setCapacity(set), used: perSet[i] })),
  };
}

const freeOf = (size: bigint, used: number): bigint => (size > BigInt(used) ? size - BigInt(used) : 0n);

/** One overlay block as the cluster store has it, with its host's published usage. */
interface BlockRow { network: string; block: string; hostId: string; state: 'held' | 'orphaned'; size: bigint; used: number | null; usageAt: number | null }

/** Every block of the cluster's overlay networks (or of one), with per-block usage. */
async function clusterBlocks(values: Values, ctx: Ctx): Promise<{ store: string; rows: BlockRow[] }> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { clusterStore, withRegistry, DEFAULT_OVERLAY_PREFIX } = require('./cluster') as typeof import('./cluster');
  const { blockRanges } = require('../overlay/local') as typeof import('../overlay/local');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const { store, endpoints } = clusterStore(values, ctx.env, 'ipam pools');
  const rows = await withRegistry(endpoints, DEFAULT_OVERLAY_PREFIX, async (reg) => {
    const alive = new Set((await reg.hosts()).items.map((h) => h.id));
    const out: BlockRow[] = [];
    for (const network of await reg.networks()) {
      if (values.network !== undefined && network.name !== values.network) continue;
      const usages = await reg.usages(network.name);
      for (const b of await reg.blocks(network.name)) {
        const block = formatCidr(b.block);
        // The addresses CNI and Docker hand out of a block (overlay/local.ts blockRanges).
        const size = setCapacity(canonicalRangeSets(blockRanges([b.block]), 'block')[0]);
        const u = alive.has(b.hostId) ? usages.get(b.hostId) : undefined;
        const used = u?.blocks.find((x) => formatCidr(x.block) === block)?.used;
        out.push({ network: network.name, block, hostId: b.hostId, state: alive.has(b.hostId) ? 'held' : 'orphaned', size, used: used ?? null, usageAt: used === undefined ? null : u!.at });
      }
    }
    return out;
  });
  return { store, rows };
}

async function pools(ctx: Ctx, values: Values): Promise<void> {
  const cluster = values.store !== undefined ? await clusterBlocks(values, ctx) : undefined;
  const opened = openExisting(ctx.dataDir);
  let stats: PoolStat[] = [];
  let store: string | null = null;
  if ('store' in opened) {
    store = opened.store.description;
    stats = await using(opened.store, (s) => s.view(async (tx) => {
      const records = values.network !== undefined
        ? [await tx.getPool(values.network)].filter((p): p is PoolRecord => p !== undefined)
        : await tx.listPools();
      const out: PoolStat[] = [];
      for (const r of records) out.push(await poolStat(tx, r));
      return out;
    }));
  }
  const note = 'missing' in opened ? opened.missing
    : stats.length === 0 ? (values.network !== undefined ? `no network "${values.network}" in the IPAM store` : 'no pools yet (no network has allocated an address)')
      : null;
  if (ctx.json) {
    writeJson(ctx, {
      store, note,
      pools: stats.map((p) => {
        const size = p.sets?.reduce((n, s) => n + s.size, 0n);
        return {
          network: p.network,
          subnets: p.sets ? p.sets.flatMap((s) => s.subnets) : [],
          size: size === undefined ? null : size.toString(),
          used: p.used,
          free: size === undefined ? null : freeOf(size, p.used).toString(),
          updated: iso(p.updated),
          rangeSets: (p.sets ?? []).map((s) => ({
            subnets: s.subnets, ranges: s.ranges, size: s.size.toString(), used: s.used, free: freeOf(s.size, s.used).toString(),
          })),
          ...(p.error !== undefined ? { error: p.error } : {}),
        };
      }),
      ...(cluster ? {
        cluster: cluster.store,
        blocks: cluster.rows.map((b) => ({
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
  const rows = stats.flatMap((p) => p.sets
    ? p.sets.map((s) => [p.network, s.subnets.join(','), s.size, s.used, freeOf(s.size, s.used)])
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
  const opened = openExisting(ctx.dataDir);
  let allocations: Allocation[] = [];
  if ('store' in opened) {
    allocations = await using(opened.store, (s) => s.view((tx) => tx.list(values.network !== undefined ? { network: values.network } : {})));
    allocations.sort(byAddress);
  }
  const note = 'missing' in opened ? opened.missing : null;
  if (ctx.json) {
    writeJson(ctx, { store: 'store' in opened ? opened.store.description : null, note, allocations: allocations.map(allocationJson) });
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
  const entries = await using(openOrFail(ctx.dataDir), (s) => s.view(async (tx) => {
    const records = values.network !== undefined
      ? [await tx.getPool(values.network)].filter((p): p is PoolRecord => p !== undefined)
      : await tx.listPools();
    const history = await tx.history(values.network, ip);
    const networks = [...new Set([...(values.network !== undefined ? [values.network] : []), ...records.map((r) => r.network), ...history.map((h) => h.network)])];
    const out: ShowEntry[] = [];
    for (const network of networks) {
      const record = records.find((r) => r.network === network);
      const sets = record ? poolSets(record) : [];
      const subnets = sets instanceof Error ? [] : [...new Set(sets.flat().filter((r) => contains(r.subnet, ip)).flatMap((r) => subnetsOfSet([r])))];
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
  const vethState = (o: Allocation): { name: string; exists: boolean } => {
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
    if (o && veth) {
      fields.push(['Container', o.containerId], ['Name', o.name], ['Ifname', o.ifname], ['Runtime', o.runtime],
        ['Netns', o.netns], ['Aliases', o.aliases?.join(', ')], ['Host veth', `${veth.name} (${veth.exists ? 'present' : 'absent'})`]);
    }
    const history = e.history.length === 0 ? 'History: none\n'
      : 'History (newest first):\n' + renderTable(
        [{ header: 'CONTAINER' }, { header: 'NAME' }, { header: 'IFNAME' }, { header: 'RUNTIME' }, { header: 'FROM' }, { header: 'UNTIL' }, { header: 'REASON' }],
        e.history.map((h) => [shortId(h.containerId), h.name, h.ifname, h.runtime, isoTime(h.since), isoTime(h.until), h.reason]));
    return renderFields(fields) + '\n' + history;
  }).join('\n'));
}

// ---- ipam release ----

interface VethPlan { name: string; containerId: string; ifname: string; remaining: Allocation[] }

/** For each attachment touched, its host veth and what the attachment still holds (any network). */
async function vethPlans(tx: IpamTx, touched: readonly Allocation[], releasing: ReadonlySet<string> = new Set()): Promise<VethPlan[]> {
  const plans = new Map<string, VethPlan>();
  for (const a of touched) {
    const key = attachmentKey({ containerId: a.containerId, ifname: a.ifname });
    if (plans.has(key)) continue;
    const remaining = (await tx.list({ containerId: a.containerId }))
      .filter((r) => r.ifname === a.ifname && !releasing.has(attachmentKey(r)));
    plans.set(key, { name: hostVethName(a.containerId, a.ifname), containerId: a.containerId, ifname: a.ifname, remaining });
  }
  return [...plans.values()];
}

/** Deletes the veths of attachments left with no address; never throws (errors are results). */
async function applyVethPlans(ctx: Ctx, plans: readonly VethPlan[], dryRun: boolean): Promise<VethJson[]> {
  const out: VethJson[] = [];
  for (const p of plans) {
    const base = { name: p.name, containerId: p.containerId, ifname: p.ifname };
    if (p.remaining.length > 0) { out.push({ ...base, result: 'kept' }); continue; }
    try {
      if (dryRun) out.push({ ...base, result: ctx.veth.exists(p.name) ? 'would-delete' : 'absent' });
      else out.push({ ...base, result: await ctx.veth.remove(p.name) });
    } catch (err) {
      out.push({ ...base, result: 'error', error: err instanceof Error ? err.message : String(err) });
    }
  }
  return out;
}

function vethLine(v: VethJson, plans: readonly VethPlan[]): string {
  switch (v.result) {
    case 'deleted': return `deleted host veth ${v.name}`;
    case 'would-delete': return `would delete host veth ${v.name}`;
    case 'absent': return `host veth ${v.name} was already gone`;
    case 'error': return `cannot delete host veth ${v.name}: ${v.error}`;
    case 'kept': {
      const left = plans.find((p) => p.name === v.name)?.remaining ?? [];
      return `kept host veth ${v.name}: container ${shortId(v.containerId)} ${v.ifname} still holds ${left.map((a) => `${a.address} (network ${a.network})`).join(', ')}`;
    }
  }
}

/** Fails the command (exit 1) after its output when a veth could not be deleted. */
function failOnVethErrors(veths: readonly VethJson[]): void {
  const failed = veths.filter((v) => v.result === 'error');
  if (failed.length === 1) throw new DatapathFailure(`released, but ${failed[0].error}`);
  if (failed.length > 1) throw new DatapathFailure(`released, but ${failed.length} host veths could not be deleted (${failed.map((v) => v.name).join(', ')}): ${failed[0].error}`);
}

/** The full container id a (possibly short) id names among the network's allocations. */
async function resolveContainer(tx: IpamTx, network: string, id: string, ifname: string | undefined): Promise<string> {
  if ((await tx.listByOwner(network, id, ifname)).length > 0) return id;
  const ids = [...new Set((await tx.list({ network }))
    .filter((a) => a.containerId.startsWith(id) && (ifname === undefined || a.ifname === ifname))
    .map((a) => a.containerId))];
  if (ids.length === 1) return ids[0];
  if (ids.length > 1) throw new UsageError(`container id "${id}" is ambiguous in network "${network}": it matches ${ids.map(shortId).join(', ')}`);
  throw new NotFound(`no address of network "${network}" is allocated to container ${id}${ifname !== undefined ? ` ${ifname}` : ''}`);
}

async function release(ctx: Ctx, values: Values, positionals: readonly string[]): Promise<void> {
  const container = values.container;
  const network = values.network;
  if (positionals.length > 0 && container !== undefined) throw new UsageError('give an ADDRESS or --container, not both (see vxnetctl ipam release --help)');
  if (positionals.length === 0 && container === undefined) throw new UsageError('"vxnetctl ipam release" needs an ADDRESS, or --container ID --network N (see vxnetctl ipam release --help)');
  if (values.ifname !== undefined && container === undefined) throw new UsageError('--ifname goes with --container (see vxnetctl ipam release --help)');
  if (container !== undefined && network === undefined) throw new UsageError('--container needs --network N (see vxnetctl ipam release --help)');
  const ip = container === undefined ? parseAddress(positionals[0], 'ipam release') : undefined;

  const { released, plans } = await using(openOrFail(ctx.dataDir), (s) => s.withLock(async (tx) => {
    let out: Allocation[];
    if (ip) {
      const address = formatIp(ip);
      const networks = network !== undefined ? [network] : (await tx.listPools()).map((p) => p.network);
      const holders: Allocation[] = [];
      for (const n of networks) {
        const owner = await tx.ownerOf(n, ip);
        if (owner) holders.push(owner);
      }
      if (holders.length === 0) throw new NotFound(network !== undefined ? `${address} is not allocated in network "${network}"` : `${address} is not allocated in any network`);
      if (holders.length > 1) throw new UsageError(`${address} is allocated in networks ${holders.map((h) => `"${h.network}"`).join(', ')}: give --network`);
      out = [await tx.releaseAddress(holders[0].network, ip, RELEASE_REASON) as Allocation];
    } else {
      const n = network as string;
      const id = await resolveContainer(tx, n, container as string, values.ifname);
      out = await tx.releaseByOwner(n, id, values.ifname, RELEASE_REASON);
    }
    return { released: out, plans: await vethPlans(tx, out) };
  }));
  const veths = await applyVethPlans(ctx, plans, false);
  if (ctx.json) {
    writeJson(ctx, { released: released.map(allocationJson), veths });
  } else {
    ctx.stdout(released.map((a) => `released ${a.address} from container ${shortId(a.containerId)} ${a.ifname} (network ${a.network})\n`).join('')
      + veths.filter((v) => v.result !== 'error').map((v) => vethLine(v, plans) + '\n').join(''));
  }
  failOnVethErrors(veths);
}

// ---- ipam gc ----

export type NetnsState = 'alive' | 'gone' | 'unknown';

/** Whether a recorded netns path still exists; only a definite ENOENT/ENOTDIR counts as gone. */
export function netnsState(netns: string): NetnsState {
  if (!path.isAbsolute(netns)) return 'unknown';
  try {
    statSync(netns);
    return 'alive';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : 'unknown';
  }
}

interface GcKept { alive: number; noNetns: number; otherRuntime: number; unknown: number }

async function gc(ctx: Ctx, values: Values): Promise<void> {
  const dryRun = values['dry-run'] === true;
  const opened = openExisting(ctx.dataDir);
  if ('missing' in opened) {
    if (ctx.json) writeJson(ctx, { dryRun, checked: 0, note: opened.missing, released: [], kept: { alive: 0, noNetns: 0, otherRuntime: 0, unknown: 0 }, veths: [] });
    else ctx.stdout(opened.missing + '\n');
    return;
  }
  const unknown: string[] = [];
  const run = async (tx: IpamTx): Promise<{ checked: number; released: Allocation[]; kept: GcKept; plans: VethPlan[] }> => {
    const all = await tx.list(values.network !== undefined ? { network: values.network } : {});
    const kept: GcKept = { alive: 0, noNetns: 0, otherRuntime: 0, unknown: 0 };
    const stale = new Map<string, Allocation>();
    const states = new Map<string, NetnsState>();
    for (const a of all) {
      if (a.runtime !== 'cni') { kept.otherRuntime += 1; continue; }
      if (a.netns === undefined) { kept.noNetns += 1; continue; }
      let state = states.get(a.netns);
      if (state === undefined) { state = netnsState(a.netns); states.set(a.netns, state); }
      if (state === 'gone') { if (!stale.has(attachmentKey(a))) stale.set(attachmentKey(a), a); continue; }
      if (state === 'unknown') { kept.unknown += 1; if (!unknown.includes(a.netns)) unknown.push(a.netns); continue; }
      kept.alive += 1;
    }
    let released: Allocation[];
    if (dryRun) {
      released = all.filter((a) => stale.has(attachmentKey(a)));
    } else {
      released = [];
      for (const a of stale.values()) released.push(...await tx.releaseByOwner(a.network, a.containerId, a.ifname, GC_REASON));
    }
    const plans = await vethPlans(tx, released, dryRun ? new Set(stale.keys()) : new Set());
    return { checked: all.length, released: released.sort(byAddress), kept, plans };
  };
  const result = await using(opened.store, (s) => (dryRun ? s.view(run) : s.withLock(run)));
  for (const netns of unknown) ctx.stderr(`vxnetctl: warning: cannot tell whether netns ${netns} exists; kept its allocations\n`);
  const veths = await applyVethPlans(ctx, result.plans, dryRun);
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
