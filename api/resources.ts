// Each resource of the operator API as a function of the sources (./sources.ts): the same
// queries vxnetctl runs (ipam/query.ts, ipam/maintenance.ts, overlay/registry.ts,
// catalog/operator-labels.ts), answered in the API's shapes (./model.ts). The router
// (./router.ts) only parses the request and sends what these return.
import { checkEndpointName, checkLabelKey, checkLabelValue } from '../catalog/label-rules';
import { editLabelsFile, labelsFilePath, readLabelsFile } from '../catalog/operator-labels';
import { labelsOf } from '../catalog/label-rules';
import type { Endpoint } from '../catalog/endpoint';
import { formatCidr, ipKey, parseIp } from '../ipam/addr';
import { collectGarbage, releaseAllocations, type ReleaseTarget } from '../ipam/maintenance';
import {
  type AllocationQuery, type PoolJson, addressTimeline, allocationJson, findAllocations, freeOf, historyJson, iso, matchesAllocation, poolJson, poolStats,
} from '../ipam/query';
import { DecodingFailure, NotFound } from '../lib/errors';
import { listBlockUsage, listHosts } from '../overlay/registry';
import type {
  ApiAllocationJson, BlockJson, DnsRecordsJson, EdgeRoutesJson, EndpointJson, GcAnswerJson, HistoryAnswerJson, HostJson,
  LabelsAnswerJson, NetworkJson, ReleaseAnswerJson, RemoteAllocationJson, SummaryJson, UsageJson, VipJson,
} from './model';
import type { ApiSources } from './sources';

const now = (src: ApiSources): number => (src.now ?? Date.now)();

const usage = (size: bigint, used: number): UsageJson => ({ size: size.toString(), used, free: freeOf(size, used).toString() });

export async function networks(src: ApiSources): Promise<{ networks: NetworkJson[] }> {
  const pools = await src.store.view((tx) => poolStats(tx));
  const local = new Map(pools.map((p) => {
    const size = p.sets?.reduce((n, s) => n + s.size, 0n);
    return [p.network, { subnets: p.sets ? p.sets.flatMap((s) => s.subnets) : [], usage: size === undefined ? null : usage(size, p.used) }] as const;
  }));
  const out: NetworkJson[] = [];
  if (src.cluster) {
    const reg = src.cluster.registry;
    const blocks = await listBlockUsage(reg);
    for (const n of await reg.networks()) {
      const mine = blocks.filter((b) => b.network === n.name && b.state === 'held');
      const size = mine.reduce((s, b) => s + b.size, 0n);
      const used = mine.reduce((s, b) => s + (b.used ?? 0), 0);
      const l = local.get(n.name);
      out.push({
        name: n.name, mode: 'overlay', subnets: n.subnets.map(formatCidr), vni: n.vni, mtu: n.mtu ?? null,
        blockPrefix: n.blockPrefix[4] ?? n.blockPrefix[6] ?? null, ...usage(size, used), local: l?.usage ?? null,
      });
      local.delete(n.name);
    }
  }
  for (const [name, l] of local) {
    out.push({ name, mode: 'bridge', subnets: l.subnets, vni: null, mtu: null, blockPrefix: null, ...(l.usage ?? { size: '0', used: 0, free: '0' }), local: l.usage });
  }
  return { networks: out.sort((a, b) => a.name.localeCompare(b.name)) };
}

/** This host's IPAM pools per range set, as `vxnetctl ipam pools` shows them; cluster: blocks at /api/v1/blocks. */
export async function pools(src: ApiSources, network?: string): Promise<{ host: string; cluster: boolean; pools: PoolJson[] }> {
  const stats = await src.store.view((tx) => poolStats(tx, network));
  return { host: src.host, cluster: src.cluster !== undefined, pools: stats.map(poolJson) };
}

export async function hosts(src: ApiSources): Promise<{ hosts: HostJson[] }> {
  if (!src.cluster) {
    return { hosts: [{ id: src.host, address: src.hostAddress?.() ?? null, since: null, leaseTtl: null, leaseExpiresAt: null, state: 'alive', networks: [], blocks: 0, self: true }] };
  }
  const t = now(src);
  const listing = await listHosts(src.cluster.registry, t, src.cluster.graceMs);
  const blocksOf = (id: string): number => listing.blocks.filter((b) => b.hostId === id).length;
  const out: HostJson[] = listing.hosts.map((h) => ({
    id: h.id, address: h.underlay, since: iso(h.since), leaseTtl: h.ttlSeconds ?? null,
    leaseExpiresAt: h.ttlSeconds === undefined ? null : iso(t + h.ttlSeconds * 1000),
    state: h.ttlSeconds === undefined ? 'expired' : 'alive',
    networks: h.networks.map((n) => ({ network: n.network, mac: n.mac, vteps: [...n.vteps], blocks: [...n.blocks] })),
    blocks: blocksOf(h.id), self: h.id === src.host,
  }));
  // Hosts gone (no host record) whose blocks are still reserved for them.
  for (const id of [...new Set(listing.blocks.map((b) => b.hostId))].filter((id) => !out.some((h) => h.id === id)).sort()) {
    out.push({ id, address: null, since: null, leaseTtl: null, leaseExpiresAt: null, state: 'expired', networks: [], blocks: blocksOf(id), self: id === src.host });
  }
  return { hosts: out };
}

export async function blocks(src: ApiSources, network?: string): Promise<{ blocks: BlockJson[] }> {
  if (!src.cluster) return { blocks: [] };
  const rows = await listBlockUsage(src.cluster.registry, network);
  return {
    blocks: rows.map((b) => ({
      network: b.network, cidr: b.block, host: b.hostId, state: b.state, size: b.size.toString(), used: b.used,
      free: b.used === null ? null : freeOf(b.size, b.used).toString(), usageAt: b.usageAt === null ? null : iso(b.usageAt),
      since: iso(b.since), orphanedAt: b.orphanedAt === undefined ? null : iso(b.orphanedAt),
    })),
  };
}

/**
 * This host's allocations (its IPAM store: addresses are allocated on the host, design.md
 * "Stores"), and in `remote` the other hosts' containers as the endpoint catalog has them (each
 * host publishes every container holding an address under its lease in etcd; with --store):
 * what an operator on one host can know of another's without asking it. The query filters both.
 */
export async function allocations(src: ApiSources, query: AllocationQuery): Promise<{ host: string; allocations: ApiAllocationJson[]; remote: RemoteAllocationJson[] }> {
  const found = await src.store.view((tx) => findAllocations(tx, query));
  return { host: src.host, allocations: found.map((a) => ({ ...allocationJson(a), host: src.host })), remote: remoteAllocations(src.catalog.list(), src.host, query) };
}

/** The other hosts' endpoints as one row per address, filtered as the store's allocations are, sorted by network then address. Pure. */
export function remoteAllocations(all: readonly Endpoint[], self: string, query: AllocationQuery): RemoteAllocationJson[] {
  const rows: Array<RemoteAllocationJson & { key: string }> = [];
  for (const e of all) {
    if (e.host === self) continue;
    for (const address of e.addresses) {
      const ip = parseIp(address);
      if (!ip) continue;
      const row = {
        network: e.network, address, family: ip.family, containerId: e.containerId, name: e.name === '' ? null : e.name,
        runtime: e.runtime, aliases: [...e.aliases], host: e.host, endpoint: e.id,
      };
      if (!matchesAllocation({ network: row.network, containerId: row.containerId, address, ...(row.name !== null ? { name: row.name } : {}) }, query)) continue;
      rows.push({ ...row, key: ipKey(ip) });
    }
  }
  rows.sort((a, b) => (a.network < b.network ? -1 : a.network > b.network ? 1 : a.family - b.family || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
  return rows.map(({ key: _key, ...r }) => r);
}

/** `at`: ISO 8601 or epoch milliseconds. Throws DecodingFailure. */
export function parseTime(text: string, what: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) throw new DecodingFailure(`${what} ${JSON.stringify(text)}: not a time (ISO 8601, e.g. 2026-12-05T14:02:00Z, or epoch milliseconds)`);
  return ms;
}

export async function history(src: ApiSources, q: { address?: string; network?: string; at?: string; limit?: number }): Promise<HistoryAnswerJson> {
  const ip = q.address !== undefined ? parseIp(q.address) : undefined;
  if (q.address !== undefined && !ip) throw new DecodingFailure(`address ${JSON.stringify(q.address)}: not an IP address`);
  if (!ip && q.network === undefined) throw new DecodingFailure('history needs an address (and/or a network): ?address=10.0.0.5[&network=N][&at=ISO]');
  const at = q.at !== undefined ? parseTime(q.at, 'at') : undefined;
  const { current, past } = await src.store.view(async (tx) => ({
    current: await findAllocations(tx, { ...(q.network !== undefined ? { network: q.network } : {}), ...(q.address !== undefined ? { address: q.address } : {}) }),
    past: await tx.history(q.network, ip, q.limit),
  }));
  const { events, holders } = addressTimeline(current, past, at);
  return {
    address: q.address ?? null, network: q.network ?? null, at: at === undefined ? null : iso(at),
    events, holders, holder: holders[0] ?? null, current: current.map(allocationJson), past: past.map(historyJson),
  };
}

export function endpointJson(e: Endpoint): EndpointJson {
  return {
    id: e.id, name: e.name, aliases: [...e.aliases], service: e.service ?? null, network: e.network, containerId: e.containerId,
    addresses: [...e.addresses], host: e.host, runtime: e.runtime, labels: { ...e.labels },
    ports: e.ports.map((p) => ({ port: p.port, protocol: p.protocol, name: p.name ?? null })),
    health: e.health ?? null, healthy: e.health === undefined ? null : e.health === 'healthy',
  };
}

export function endpoints(src: ApiSources, q: { host?: string; network?: string; name?: string; q?: string } = {}): { endpoints: EndpointJson[] } {
  const needle = q.q?.toLowerCase();
  const list = src.catalog.list(q.host).filter((e) => (q.network === undefined || e.network === q.network) && (q.name === undefined || e.name === q.name)
    && (!needle || [e.name, e.id, e.service ?? '', ...e.addresses].some((s) => s.toLowerCase().includes(needle))));
  return { endpoints: list.sort((a, b) => a.id.localeCompare(b.id)).map(endpointJson) };
}

export function dnsRecords(src: ApiSources): DnsRecordsJson {
  return src.dns ? src.dns() : { running: false, domain: null, serial: null, records: [] };
}

export function vips(src: ApiSources): { running: boolean; vips: VipJson[] } {
  return { running: src.vips !== undefined, vips: src.vips ? [...src.vips()] : [] };
}

export async function edgeRoutes(src: ApiSources): Promise<EdgeRoutesJson> {
  return src.edge ? src.edge() : { running: false, source: null, haproxyUp: null, routes: [] };
}

export async function summary(src: ApiSources): Promise<SummaryJson> {
  const [n, h, count] = await Promise.all([
    networks(src), hosts(src), src.store.view(async (tx) => (await tx.list()).length),
  ]);
  return {
    host: src.host, version: src.version, store: src.cluster ? 'etcd' : 'embedded', networks: n.networks.length,
    hosts: h.hosts.filter((x) => x.state === 'alive').length, allocations: count, endpoints: src.catalog.size, vips: src.vips ? src.vips().length : 0,
    time: iso(now(src)),
  };
}

// ---- mutations ----

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function stringField(body: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) throw new DecodingFailure(`body: "${key}" is required`);
    return undefined;
  }
  if (typeof v !== 'string' || v === '') throw new DecodingFailure(`body: "${key}" must be a non-empty string`);
  return v;
}

/** POST /api/v1/allocations/release: `{network, containerId, ifname?}` or `{address, network?}`. */
export async function release(src: ApiSources, body: unknown): Promise<ReleaseAnswerJson> {
  if (!isObject(body)) throw new DecodingFailure('body: expected {"network", "containerId", "ifname"?} or {"address", "network"?}');
  const network = stringField(body, 'network', false);
  const address = stringField(body, 'address', false);
  const containerId = stringField(body, 'containerId', false);
  const ifname = stringField(body, 'ifname', false);
  let target: ReleaseTarget;
  if (address !== undefined) {
    if (containerId !== undefined || ifname !== undefined) throw new DecodingFailure('body: give "address" or "containerId", not both');
    const ip = parseIp(address);
    if (!ip) throw new DecodingFailure(`body: "address" ${JSON.stringify(address)} is not an IP address`);
    target = { address: ip, ...(network !== undefined ? { network } : {}) };
  } else {
    if (containerId === undefined) throw new DecodingFailure('body: give "address", or "containerId" with "network"');
    if (network === undefined) throw new DecodingFailure('body: "containerId" needs "network"');
    target = { network, containerId, ...(ifname !== undefined ? { ifname } : {}) };
  }
  const r = await releaseAllocations(src.store, target, { vethName: src.vethName, veth: src.veth, reason: 'api release' });
  return { released: r.released.map(allocationJson), veths: r.veths };
}

/** POST /api/v1/gc: `{network?, dryRun?}`. */
export async function gc(src: ApiSources, body: unknown): Promise<GcAnswerJson> {
  const b = body === undefined || body === null ? {} : body;
  if (!isObject(b)) throw new DecodingFailure('body: expected {"network"?, "dryRun"?}');
  const network = stringField(b, 'network', false);
  if (b.dryRun !== undefined && typeof b.dryRun !== 'boolean') throw new DecodingFailure('body: "dryRun" must be true or false');
  const dryRun = b.dryRun === true;
  const r = await collectGarbage(src.store, { ...(network !== undefined ? { network } : {}), dryRun, vethName: src.vethName, veth: src.veth, reason: 'api gc' });
  return { dryRun, checked: r.checked, released: r.released.map(allocationJson), kept: r.kept, unknownNetns: r.unknown, veths: r.veths };
}

/** The endpoint an id (HOST/NETWORK/CONTAINERID) or a name stands for; NotFound when none. */
function endpointNamed(src: ApiSources, idOrName: string): { id: string; name: string } {
  const e = src.catalog.get(idOrName);
  if (e) return { id: e.id, name: e.name };
  const byName = src.catalog.list().find((x) => x.name === idOrName);
  if (byName) return { id: byName.id, name: byName.name };
  throw new NotFound(`no endpoint ${JSON.stringify(idOrName)} (GET /api/v1/endpoints lists them; give its id or name)`);
}

export function getLabels(src: ApiSources, idOrName: string): LabelsAnswerJson {
  const { id, name } = endpointNamed(src, idOrName);
  return { id, name, labels: { ...(labelsOf(readLabelsFile(labelsFilePath(src.dataDir)), name) ?? {}) } };
}

/**
 * PUT /api/v1/endpoints/{id}/labels `{labels: {k: v}}`: the endpoint's operator labels become
 * exactly these (keyed by its name, as `vxnetctl endpoint label` keeps them); {} removes all.
 */
export async function putLabels(src: ApiSources, idOrName: string, body: unknown): Promise<LabelsAnswerJson> {
  if (!isObject(body) || !isObject(body.labels)) throw new DecodingFailure('body: expected {"labels": {"KEY": "VALUE", ...}}');
  const { id, name } = endpointNamed(src, idOrName);
  checkEndpointName(name);
  // Built with fromEntries (own data properties): "__proto__" is a label key like any other.
  const wanted = new Map<string, string>();
  for (const [k, v] of Object.entries(body.labels)) {
    if (typeof v !== 'string') throw new DecodingFailure(`body: label ${JSON.stringify(k)} must have a string value`);
    wanted.set(checkLabelKey(k), checkLabelValue(k, v));
  }
  const file = labelsFilePath(src.dataDir);
  const before = labelsOf(readLabelsFile(file), name) ?? {};
  const remove = Object.keys(before).filter((k) => !wanted.has(k));
  const labels = wanted.size === 0 && remove.length === 0 ? {} : await editLabelsFile(file, name, { set: Object.fromEntries(wanted), remove });
  return { id, name, labels: { ...labels } };
}
