// vxnetctl doctor: the I/O shell around doctor-rules.ts. It reads what vxnet believes (the IPAM
// store, the overlay agent's state files, vxnetd's VIPs when its API answers) and what the
// kernel has (links, addresses, host routes, FORWARD rules, nftables tables, the recorded
// network namespaces), and with --fix applies the safe fixes. Every fix is decided again inside
// the store's write lock, so an ADD running meanwhile (its veth made, its address not yet
// committed) is never taken for an orphan: its allocation cannot commit until the lock is ours,
// and one committed before is seen.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Cidr, type Ip, formatCidr, formatIp, parseCidr, parseIp } from '../ipam/addr';
import { canonicalRangeSets } from '../ipam/range';
import type { IpamStore, IpamTx } from '../ipam/store/types';
import { hostVethName, isVxnetVethName } from '../datapath/names';
import { ensureForwardRules, ensureMasquerade, findTool } from '../net/nat';
import { type KernelNatTable, overlaps, parseNatTable } from './doctor-nat';
import { Rtnl } from '../net/rtnl';
import { DEFAULT_LOCAL_DIR, type LocalOverlayState, listLocalStates, subnetsOf } from '../overlay/local';
import { type Entries, desiredEntries, gatewayOf, vtepIpOf } from '../overlay/plan';
import { UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';
import { queryBatch } from '../dns/batch';
import { type HostPort, formatHostPort, parseHostPort } from '../dns/upstreams';
import type { VipView } from '../vip/model';
import { FALLBACK_DOMAIN, apiGet, apiUrl, dnsJsonPath, parseEndpoints, readDnsJson } from './dns';
import { type DnsAnswerSeen, type DnsExpectation, type DnsObserved, dnsFindings, endpointOf, expectedNames } from './doctor-dns';
import { apiAuth } from './api-client';
import {
  type Believed, type BelievedAllocation, type BelievedNetwork, type BelievedOverlay, type Finding, type FixAction, type NetnsState, type Observed,
  diagnose, exitStatus,
} from './doctor-rules';
import { type KernelVipTable, findingKey, parseVipTable, vipFindings } from './doctor-vips';
import { parseVips } from './vip';
import { netnsState } from './ipam';
import { openExisting } from './store';
import { plural } from './table';

const FIX_REASON = 'vxnetctl doctor';
/** The CNI config directory the runtimes read (install's --conf-dir default). */
const DEFAULT_CONF_DIR = '/etc/cni/net.d';
/** vxnetd's --vip-table default (bin/vxnetd/flags.ts, a layer above this one). */
const DEFAULT_VIP_TABLE = 'vxnet-vip';

interface BelievedRead {
  readonly believed: Believed;
  readonly store: IpamStore | undefined;
  readonly notes: string[];
  readonly services: ServicesRead;
}

/** vxnetd's VIPs and the names its DNS must serve (from its API), and where its DNS server is. */
interface ServicesRead {
  readonly vips?: Believed['vips'];
  readonly dns?: Believed['dns'];
  readonly server?: HostPort;
  readonly domain: string;
}

/** Per DNS question; a server that does not answer costs this twice (two tries), once. */
const DNS_TIMEOUT_MS = 1000;
/** How long a difference must last to be reported (a sync or a catalog change in flight is not a problem). */
const CONFIRM_MS = 1000;

/**
 * From vxnetd's API: its VIPs (/v1/vips) and the catalog's endpoints (/v1/endpoints), and from
 * dns.json (or --server) its DNS server. What does not answer becomes a note, and that part is
 * not checked (except that a DNS server dns.json names is still asked whether it answers).
 */
async function readServices(values: Values, ctx: Ctx, notes: string[]): Promise<ServicesRead> {
  const base = apiUrl(values, ctx.env);
  const table = values['vip-table'] ?? DEFAULT_VIP_TABLE;
  let views: VipView[] | undefined;
  let endpoints: ReturnType<typeof parseEndpoints> | undefined;
  let reachable = true;
  try {
    views = parseVips((await apiGet(base, '/v1/vips', [], apiAuth(values, ctx.env))).body, `${base}/v1/vips`);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    reachable = !/cannot reach/.test(msg);
    notes.push(reachable ? `${msg}: the VIP table was not checked (vxnetd with --no-vip?)` : `vxnetd's API did not answer at ${base}: the VIP table and the DNS names were not checked`);
  }
  if (reachable) {
    try {
      endpoints = parseEndpoints((await apiGet(base, '/v1/endpoints', [], apiAuth(values, ctx.env))).body, `${base}/v1/endpoints`);
    } catch (err) {
      notes.push(`${err instanceof Error ? err.message : String(err)}: the DNS names were not checked`);
    }
  }
  const stateFile = dnsJsonPath(ctx.env);
  const dnsJson = readDnsJson(ctx.env);
  let server: HostPort | undefined;
  let from = stateFile;
  if (values.server !== undefined) {
    server = parseHostPort(values.server);
    if (!server || server.port === 0) throw new UsageError(`--server ${JSON.stringify(values.server)}: expected ADDRESS[:PORT] or [IPV6]:PORT`);
    from = `--server ${values.server}`;
  } else {
    server = dnsJson?.nameservers.map((n) => parseHostPort(n)).find((hp) => hp !== undefined && hp.port !== 0);
    if (!server) notes.push(`no DNS server in ${stateFile} (vxnetd serves no DNS here, or it stopped cleanly; --server ADDR to name one): the DNS zone was not checked`);
  }
  const domain = dnsJson?.domain ?? FALLBACK_DOMAIN;
  let expected: DnsExpectation[] = [];
  if (server && endpoints) {
    const built = expectedNames(endpoints.map(endpointOf), views ?? [], domain);
    expected = built.names;
    if (built.refused > 0) notes.push(`${plural(built.refused, 'name', 'names')} of the catalog cannot be served in DNS (vxnetd logs them): not checked`);
  }
  return {
    ...(views ? { vips: { views, table } } : {}),
    ...(server ? { server, dns: { expected, stateFile: from } } : {}),
    domain,
  };
}

/** The VIP table as nft lists it; null when there is no such table, undefined when nft cannot tell (a note says why). */
function readVipTable(table: string, notes: string[]): KernelVipTable | null | undefined {
  const bin = findTool('nft');
  if (!bin) {
    notes.push('nft is not installed: the VIP table was not checked');
    return undefined;
  }
  const r = spawnSync(bin, ['-j', 'list', 'table', 'inet', table], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    if (/No such file or directory/.test(r.stderr)) return null;
    notes.push(`nft -j list table inet ${table} failed (${(r.stderr || r.error?.message || '').trim()}): the VIP table was not checked`);
    return undefined;
  }
  try {
    return parseVipTable(JSON.parse(r.stdout) as unknown);
  } catch (err) {
    notes.push(`nft -j list table inet ${table}: not JSON (${(err as Error).message}): the VIP table was not checked`);
    return undefined;
  }
}

/**
 * Asks the DNS server: the domain's SOA first (is anything serving the zone there), then, when
 * it answers, A and AAAA of every expected name (`only`: of these names), 256 questions in flight.
 */
async function askDns(s: ServicesRead, only?: ReadonlySet<string>): Promise<DnsObserved | undefined> {
  if (!s.server || !s.dns) return undefined;
  const server = s.server;
  const [probe] = await queryBatch(server, [{ name: s.domain, type: 'SOA' }], { timeoutMs: DNS_TIMEOUT_MS });
  const answers = new Map<string, { A: DnsAnswerSeen; AAAA: DnsAnswerSeen }>();
  if (probe.rcode === 'NOERROR') {
    const names = s.dns.expected.map((e) => e.name).filter((n) => !only || only.has(n));
    const got = await queryBatch(server, names.flatMap((name) => [{ name, type: 'A' }, { name, type: 'AAAA' }]), { timeoutMs: DNS_TIMEOUT_MS });
    names.forEach((name, i) => answers.set(name, { A: got[2 * i], AAAA: got[2 * i + 1] }));
  }
  return { server: formatHostPort(server), probe, answers };
}

/**
 * The VIP and DNS findings again after CONFIRM_MS, from a fresh read of both sides: only those
 * found both times are kept (a VIP synced or a name added between the API's answer and the
 * kernel's or the server's is not a problem).
 */
async function confirmServices(first: readonly Finding[], values: Values, ctx: Ctx): Promise<Finding[]> {
  const isService = (f: Finding): boolean => f.kind.startsWith('vip-') || f.kind.startsWith('dns-');
  if (!first.some(isService)) return [...first];
  await new Promise((resolve) => setTimeout(resolve, CONFIRM_MS));
  const again = await readServices(values, ctx, []);
  const names = new Set(first.filter((f) => f.kind.startsWith('dns-name-')).map((f) => /^DNS name (\S+)/.exec(f.subject)?.[1] ?? ''));
  const second: Finding[] = [];
  if (again.vips) {
    const kernel = readVipTable(again.vips.table, []);
    if (kernel !== undefined) second.push(...vipFindings(again.vips.table, again.vips.views, kernel ?? undefined));
  }
  if (again.dns) {
    const capped = first.some((f) => / more names \(dns-/.test(f.subject));
    const seen = await askDns(again, capped ? undefined : names);
    const expected = capped ? again.dns.expected : again.dns.expected.filter((e) => names.has(e.name));
    if (seen) second.push(...dnsFindings(expected, seen, again.dns.stateFile));
  }
  const keys = new Set(second.map(findingKey));
  return first.filter((f) => !isService(f) || keys.has(findingKey(f)));
}

const hostCidr = (ip: ReturnType<typeof vtepIpOf>): string => formatCidr({ ip, prefix: ip.family === 4 ? 32 : 128 });

async function readBelieved(ctx: Ctx, values: Values): Promise<BelievedRead> {
  const notes: string[] = [];
  const opened = openExisting(ctx.dataDir);
  let allocations: BelievedAllocation[] = [];
  let networks: BelievedNetwork[] = [];
  let store: IpamStore | undefined;
  if ('missing' in opened) {
    notes.push(`${opened.missing}; --fix deletes no link (is --data-dir right?)`);
  } else {
    store = opened.store;
    ({ allocations, networks } = await store.view(async (tx) => ({ allocations: await tx.list({}), networks: networksOf(await tx.listPools(), notes) })));
  }
  const overlayDir = values['overlay-dir'] ?? DEFAULT_LOCAL_DIR;
  const states = listLocalStates(overlayDir);
  const peers = await peersOf(values, ctx, states, notes);
  const overlays: BelievedOverlay[] = states.map((s) => {
    const p = peers?.get(s.network);
    return {
      network: s.network, device: s.device, vni: s.vni,
      deviceAddresses: [...s.blocks.map((b) => hostCidr(vtepIpOf(b))), ...s.blocks.map((b) => hostCidr(gatewayOf(b)))],
      subnets: subnetsOf(s).map(formatCidr),
      ...(p ? { peerEntries: p.entries, peers: p.count } : {}),
    };
  });
  const services = await readServices(values, ctx, notes);
  const configs = natConfigs(values['conf-dir'] ?? DEFAULT_CONF_DIR, ctx.dataDir);
  const believed: Believed = {
    storeFound: store !== undefined, allocations, networks, overlays,
    natTableNames: [...new Set([...configs.tables, ...(values['nat-table'] ?? [])])], otherSubnets: configs.subnets,
    ...(services.vips ? { vips: services.vips } : {}), ...(services.dns ? { dns: services.dns } : {}),
  };
  return { believed, store, notes, services };
}

/**
 * With --store (or $VXNET_STORE): each overlay network's peers in etcd, as the entries this
 * host's device should hold (what the agent would program). Undefined without a store or when
 * etcd does not answer (a note says so).
 */
async function peersOf(values: Values, ctx: Ctx, states: readonly LocalOverlayState[], notes: string[]): Promise<Map<string, { entries: Entries; count: number }> | undefined> {
  if (states.length === 0 || (values.store === undefined && !ctx.env.VXNET_STORE)) return undefined;
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { clusterStore, withRegistry, DEFAULT_OVERLAY_PREFIX } = require('./cluster') as typeof import('./cluster');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const { store, endpoints } = clusterStore(values, ctx.env, 'doctor');
  try {
    return await withRegistry(endpoints, DEFAULT_OVERLAY_PREFIX, async (reg) => {
      const out = new Map<string, { entries: Entries; count: number }>();
      for (const s of states) {
        const members = (await reg.members(s.network)).items.filter((m) => m.id !== s.hostId);
        out.set(s.network, { entries: desiredEntries(members, s.hostId).entries, count: members.length });
      }
      return out;
    });
  } catch (err) {
    notes.push(`${err instanceof Error ? err.message : String(err)}: the overlay's peer entries were not checked against ${store}`);
    return undefined;
  }
}

function networksOf(pools: ReadonlyArray<{ network: string; definition: string }>, notes: string[]): BelievedNetwork[] {
  const out: BelievedNetwork[] = [];
  for (const p of pools) {
    try {
      const sets = canonicalRangeSets(JSON.parse(p.definition) as unknown, `pool "${p.network}"`);
      out.push({
        network: p.network,
        subnets: sets.flat().map((r) => formatCidr(r.subnet)),
        gateways: sets.map((set) => `${formatIp(set[0].gateway)}/${set[0].subnet.prefix}`),
      });
    } catch (err) {
      notes.push(`network ${p.network}: unreadable pool definition (${(err as Error).message}); its bridge was not checked`);
    }
  }
  return out;
}

/**
 * NAT table names vxnet's configs name (the natTable of each vxnet plugin in the CNI config
 * directory, of each Docker network record under DATA_DIR/docker/networks) and the Docker
 * records' subnets. Unreadable files are skipped: they only add candidates.
 */
function natConfigs(confDir: string, dataDir: string): { tables: string[]; subnets: Array<{ network: string; subnet: string }> } {
  const tables: string[] = [];
  const subnets: Array<{ network: string; subnet: string }> = [];
  const jsonFiles = (dir: string, exts: readonly string[]): unknown[] => {
    let names: string[];
    try { names = fs.readdirSync(dir).filter((f) => exts.some((e) => f.endsWith(e))); } catch { return []; }
    const out: unknown[] = [];
    for (const f of names) {
      try { out.push(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as unknown); } catch { /* not JSON: not a config */ }
    }
    return out;
  };
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  for (const conf of jsonFiles(confDir, ['.conf', '.conflist', '.json'])) {
    if (!isObj(conf)) continue;
    const plugins = Array.isArray(conf.plugins) ? conf.plugins : [conf];
    for (const p of plugins) if (isObj(p) && p.type === 'vxnet' && typeof p.natTable === 'string') tables.push(p.natTable);
  }
  for (const rec of jsonFiles(path.join(dataDir, 'docker', 'networks'), ['.json'])) {
    if (!isObj(rec)) continue;
    if (isObj(rec.options) && typeof rec.options.natTable === 'string') tables.push(rec.options.natTable);
    const network = typeof rec.name === 'string' ? rec.name : `docker network ${String(rec.id).slice(0, 12)}`;
    for (const k of ['pool', 'pool6']) if (typeof rec[k] === 'string') subnets.push({ network, subnet: rec[k] as string });
  }
  return { tables: [...new Set(tables)], subnets };
}

/** The ip and ip6 tables nft lists, each read; undefined without nft or its table list. */
function natTablesOf(tables: readonly string[] | undefined, notes: string[]): Record<string, KernelNatTable> | undefined {
  const bin = findTool('nft');
  if (!bin || !tables) return undefined;
  const out: Record<string, KernelNatTable> = {};
  for (const key of tables) {
    const [family, name] = key.split(' ');
    if ((family !== 'ip' && family !== 'ip6') || !name) continue;
    const r = spawnSync(bin, ['-j', 'list', 'table', family, name], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) continue; // deleted since listed
    try {
      const t = parseNatTable(JSON.parse(r.stdout) as unknown);
      if (t) out[key] = t;
    } catch (err) {
      notes.push(`nft -j list table ${key}: not JSON (${(err as Error).message}): its masquerading was not checked`);
    }
  }
  return out;
}

function forwardingOf(): Partial<Record<4 | 6, boolean>> {
  const out: Partial<Record<4 | 6, boolean>> = {};
  const read = (file: string): string | undefined => { try { return fs.readFileSync(file, 'utf8').trim(); } catch { return undefined; } };
  const v4 = read('/proc/sys/net/ipv4/ip_forward');
  const v6 = read('/proc/sys/net/ipv6/conf/all/forwarding');
  if (v4 !== undefined) out[4] = v4 !== '0';
  if (v6 !== undefined) out[6] = v6 !== '0';
  return out;
}

/** `iptables -S FORWARD` as word lists without "-A FORWARD" and quotes; undefined without the tool. */
function forwardRulesOf(family: 4 | 6): string[][] | undefined {
  const bin = findTool(family === 4 ? 'iptables' : 'ip6tables');
  if (!bin) return undefined;
  const r = spawnSync(bin, ['-w', '-S', 'FORWARD'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter((w) => w[0] === '-A' && w[1] === 'FORWARD')
    .map((w) => w.slice(2).map((x) => x.replace(/^"(.*)"$/, '$1')));
}

function nftTables(): string[] | undefined {
  const bin = findTool('nft');
  if (!bin) return undefined;
  const r = spawnSync(bin, ['list', 'tables'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('table ')).map((l) => l.slice('table '.length));
}

async function observe(believed: Believed, services: ServicesRead, notes: string[]): Promise<Observed> {
  const host = Rtnl.open();
  try {
    const links = (await host.links()).map((l) => ({ index: l.index, name: l.name, kind: l.kind, up: l.up, master: l.master, alias: l.alias }));
    const addresses = (await host.addresses()).map((a) => ({ index: a.index, cidr: formatCidr(a.cidr) }));
    const hostRoutes: Array<{ address: string; family: 4 | 6; oif: number }> = [];
    const routes = [...await host.routes(4), ...await host.routes(6)];
    for (const r of routes) {
      const family = r.dst.ip.family;
      if (r.gw !== undefined || r.oif === undefined || r.dst.prefix !== (family === 4 ? 32 : 128)) continue;
      hostRoutes.push({ address: formatIp(r.dst.ip), family, oif: r.oif });
    }
    // The overlay devices' entries, read as the agent reads them (overlay/apply.ts actual()).
    const overlayEntries: Record<string, Entries> = {};
    for (const ov of believed.overlays) {
      const dev = links.find((l) => l.name === ov.device && l.kind === 'vxlan');
      if (!dev || !ov.peerEntries) continue;
      // One dump at a time: the kernel refuses a second dump on a socket while one runs.
      const neigh = await host.neighbours(dev.index);
      const fdb = await host.fdb(dev.index);
      overlayEntries[ov.device] = {
        neigh: neigh.filter((x) => x.permanent && x.mac !== '').map((x) => ({ ip: x.ip, mac: x.mac })),
        fdb: fdb.filter((f) => f.dst !== undefined).map((f) => ({ mac: f.mac, dst: f.dst as Ip })),
        routes: routes.filter((r) => r.oif === dev.index && r.gw !== undefined).map((r) => ({ dst: r.dst, via: r.gw as Ip })),
      };
    }
    const netns: Record<string, NetnsState> = {};
    for (const a of believed.allocations) if (a.netns !== undefined && !(a.netns in netns)) netns[a.netns] = netnsState(a.netns);
    const forward: Observed['forward'] = {};
    for (const family of [4, 6] as const) {
      const rules = forwardRulesOf(family);
      if (rules) forward[family] = rules;
    }
    const vipTable = believed.vips ? readVipTable(believed.vips.table, notes) : undefined;
    const dns = await askDns(services);
    const tables = nftTables();
    if (!tables) notes.push('nft is not installed or cannot list tables: masquerading was not checked');
    const natTables = natTablesOf(tables, notes);
    return {
      links, addresses, hostRoutes, netns, forward, nftTables: tables, overlayEntries, forwarding: forwardingOf(),
      ...(natTables ? { natTables } : {}),
      ...(vipTable !== undefined ? { vipTable } : {}), ...(dns ? { dns } : {}),
    };
  } finally {
    host.close();
  }
}

interface FixResult { readonly fixed: boolean; readonly detail?: string }

/** Applies one safe finding's actions; inside the store's lock when there is a store. */
async function applyFinding(f: Finding, host: Rtnl, tx: IpamTx | undefined): Promise<FixResult> {
  const details: string[] = [];
  for (const a of f.actions) {
    const r = await applyAction(a, host, tx);
    if (r !== undefined) details.push(r);
  }
  return details.length === 0 ? { fixed: true } : { fixed: false, detail: details.join('; ') };
}

/** Undefined when done; otherwise why it was not. */
async function applyAction(a: FixAction, host: Rtnl, tx: IpamTx | undefined): Promise<string | undefined> {
  switch (a.op) {
    case 'release': {
      if (!tx) return 'no IPAM store';
      if (netnsState(a.netns) !== 'gone') return `network namespace ${a.netns} exists again; kept`;
      await tx.releaseByOwner(a.network, a.containerId, a.ifname, FIX_REASON);
      const left = (await tx.list({ containerId: a.containerId })).filter((x) => x.ifname === a.ifname);
      if (left.length === 0) await host.deleteLink(a.veth);
      return undefined;
    }
    case 'delete-link': {
      if (!tx) return 'no IPAM store: not deleting a link it might account for';
      const owned = (await tx.list({})).some((x) => hostVethName(x.containerId, x.ifname) === a.name);
      if (owned) return `${a.name} has an allocation now; kept`;
      await host.deleteLink(a.name);
      return undefined;
    }
    case 'delete-route': {
      const link = await host.link(a.link);
      if (!link) return undefined;
      if (tx) {
        const held = (await tx.list({})).some((x) => x.address === a.address && hostVethName(x.containerId, x.ifname) === a.link);
        if (held) return `${a.address} is allocated to ${a.link}'s container now; kept`;
      }
      const ip = parseIp(a.address);
      if (!ip) return `not an address: ${a.address}`;
      await host.deleteRoute({ dst: { ip, prefix: a.family === 4 ? 32 : 128 }, oif: link.index });
      return undefined;
    }
    case 'delete-forward-rule': {
      const bin = findTool(a.family === 4 ? 'iptables' : 'ip6tables');
      if (!bin) return 'iptables is not installed';
      const r = spawnSync(bin, ['-w', '-D', 'FORWARD', ...a.rule], { encoding: 'utf8' });
      if (r.status !== 0 && !/does a matching rule exist|No chain\/target\/match|Bad rule/i.test(r.stderr)) return `${bin} -D failed: ${r.stderr.trim()}`;
      return undefined;
    }
    case 'add-forward-rules': {
      // Inserted unless present (iptables -C first): what the network's setup inserts.
      ensureForwardRules(`the FORWARD rules ${a.rules.map((r) => r.join(' ')).join('; ')}`, [a.family], () => a.rules.map((r) => [...r]));
      return undefined;
    }
    case 'masquerade': {
      const subnets = a.subnets.map((x) => parseCidr(x)).filter((c): c is Cidr => c !== undefined);
      ensureMasquerade(a.table, a.network, subnets);
      return undefined;
    }
    case 'unmasquerade': {
      if (tx) {
        // Decided again under the lock: a network created since (its pool commits before its element) keeps it.
        const pools = networksOf(await tx.listPools(), []);
        const owner = pools.find((p) => p.subnets.some((s) => overlaps(s, a.element)));
        if (owner) return `network ${owner.network} has ${a.element} now; kept`;
      }
      const bin = findTool('nft');
      if (!bin) return 'nft is not installed';
      const r = spawnSync(bin, ['delete', 'element', a.family === 4 ? 'ip' : 'ip6', a.table, 'masq', `{ ${a.element} }`], { encoding: 'utf8' });
      if (r.status !== 0) return `nft delete element failed: ${r.stderr.trim()}`;
      return undefined;
    }
  }
}

async function applyFixes(findings: readonly Finding[], store: IpamStore | undefined): Promise<Map<Finding, FixResult>> {
  const results = new Map<Finding, FixResult>();
  const safe = findings.filter((f) => f.safe);
  if (safe.length === 0) return results;
  const host = Rtnl.open();
  const run = async (tx: IpamTx | undefined): Promise<void> => {
    for (const f of safe) {
      try {
        results.set(f, await applyFinding(f, host, tx));
      } catch (err) {
        results.set(f, { fixed: false, detail: err instanceof Error ? err.message : String(err) });
      }
    }
  };
  try {
    if (store) await store.withLock(async (tx) => { await run(tx); });
    else await run(undefined);
  } finally {
    host.close();
  }
  return results;
}

function render(ctx: Ctx, findings: readonly Finding[], results: ReadonlyMap<Finding, FixResult> | undefined, checked: string, notes: readonly string[]): void {
  const out: string[] = notes.map((n) => `note: ${n}\n`);
  if (findings.length === 0) {
    out.push(`no problems found (${checked})\n`);
    ctx.stdout(out.join(''));
    return;
  }
  const safe = findings.filter((f) => f.safe).length;
  for (const f of findings) {
    const r = results?.get(f);
    const state = !f.safe ? (results ? 'left: not safe to fix automatically' : 'not safe to fix automatically')
      : !results ? 'safe: vxnetctl doctor --fix applies it'
        : r?.fixed ? 'FIXED' : `not fixed: ${r?.detail ?? 'not attempted'}`;
    out.push(`${f.kind}: ${f.subject}\n  what:  ${f.what}\n  why:   ${f.why}\n  fix:   ${f.fix}\n  state: ${state}\n\n`);
  }
  const fixed = results ? [...results.values()].filter((r) => r.fixed).length : 0;
  out.push(results
    ? `${plural(findings.length, 'problem', 'problems')} found, ${fixed} fixed, ${findings.length - fixed} left (${checked})\n`
    : `${plural(findings.length, 'problem', 'problems')} found, ${safe} safe to fix (vxnetctl doctor --fix) (${checked})\n`);
  ctx.stdout(out.join(''));
}

/** Runs the doctor; resolves to its exit status (doctor-rules.ts exitStatus). */
export async function runDoctor(values: Values, ctx: Ctx): Promise<number> {
  const fix = values.fix === true;
  const { believed, store, notes, services } = await readBelieved(ctx, values);
  try {
    const observed = await observe(believed, services, notes);
    const findings = await confirmServices(diagnose(believed, observed), values, ctx);
    const results = fix ? await applyFixes(findings, store) : undefined;
    const vxnetLinks = observed.links.filter((l) => isVxnetVethName(l.name)).length;
    const counts = {
      allocations: believed.allocations.length, networks: believed.networks.length, overlays: believed.overlays.length, vxnetLinks,
      vips: observed.vipTable !== undefined ? believed.vips?.views.length ?? null : null,
      dnsNames: observed.dns && observed.dns.probe.rcode === 'NOERROR' ? observed.dns.answers.size : null,
      natTables: observed.natTables ? Object.values(observed.natTables).filter((t) => t.elements !== undefined).length : null,
      forwardRules: observed.forward[4] || observed.forward[6]
        ? [...observed.forward[4] ?? [], ...observed.forward[6] ?? []].filter((r) => r.some((w) => w.startsWith('vxnet:'))).length : null,
    };
    const checked = `checked ${plural(counts.allocations, 'allocation', 'allocations')}, ${plural(counts.networks, 'network', 'networks')}, `
      + `${plural(counts.overlays, 'overlay network', 'overlay networks')}, ${plural(vxnetLinks, 'vxnet veth', 'vxnet veths')}`
      + (counts.vips !== null ? `, ${plural(counts.vips, 'VIP', 'VIPs')}` : '')
      + (counts.dnsNames !== null ? `, ${plural(counts.dnsNames, 'DNS name', 'DNS names')}` : '')
      + (counts.natTables !== null ? `, ${plural(counts.natTables, 'masquerade table', 'masquerade tables')}` : '')
      + (counts.forwardRules !== null ? `, ${plural(counts.forwardRules, 'vxnet FORWARD rule', 'vxnet FORWARD rules')}` : '');
    const fixed = results ? [...results.values()].filter((r) => r.fixed).length : 0;
    if (ctx.json) {
      writeJson(ctx, {
        dataDir: ctx.dataDir, store: store?.description ?? null, overlayDir: values['overlay-dir'] ?? DEFAULT_LOCAL_DIR,
        fix, checked: counts, notes,
        findings: findings.map((f) => {
          const r = results?.get(f);
          return {
            kind: f.kind, subject: f.subject, what: f.what, why: f.why, fix: f.fix, safe: f.safe,
            fixed: results ? r?.fixed === true : null, error: r && !r.fixed ? r.detail ?? null : null,
          };
        }),
        found: findings.length, fixed,
      });
    } else {
      render(ctx, findings, results, checked, notes);
    }
    return exitStatus(findings.length, fixed);
  } finally {
    await store?.close();
  }
}
