// Helpers for the root CNI integration tests: exec the built plugins as a runtime would, give
// each test its own network (bridge, nft table, subnet, data dir: all `vxt`-prefixed or
// private), and read vxnet's store. Every object is removed again by a t.teardown that never
// throws, so cleanup also runs when assertions fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCidr, type Cidr } from '../../../ipam/addr';
import { openStore } from '../../../ipam/store';
import type { Allocation } from '../../../ipam/store/types';
import { hostVethName } from '../../../datapath/names';
import { teardownBridgeNetwork } from '../../../datapath/teardown';
import { exec, linkAddrs, linkExists, newNetns, type Netns, type TestLike } from '../../helpers/netns';

export { hostVethName };

export const ROOT = resolve(__dirname, '..', '..', '..');
export const DIST_BIN = join(ROOT, 'dist', 'bin');
export const VXNET = join(DIST_BIN, 'vxnet');
export const VXNET_IPAM = join(DIST_BIN, 'vxnet-ipam');
/** Debian's containernetworking-plugins. */
export const REF_CNI = '/usr/lib/cni';
export const CNI_PATH = `${DIST_BIN}:${REF_CNI}`;

/**
 * Says why root integration tests cannot run here (not root: a skip), or undefined when they
 * can. A missing build is a failure, not a skip: it throws.
 */
export function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'root integration tests need root';
  if (!fs.existsSync(VXNET) || !fs.existsSync(VXNET_IPAM)) throw new Error(`${VXNET} is missing: run npm run build first`);
  return undefined;
}

/** `vxt-` + 8 hex: a container id that is globally unique, so its host veth name is too. */
export const newContainerId = (): string => `vxt-${randomBytes(6).toString('hex')}`;

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
  containerId?: string;
  ifname?: string;
  /** Netns path (CNI_NETNS); omitted when undefined. */
  netns?: string;
  /** CNI_ARGS */
  args?: string;
  /** CNI_PATH; default dist/bin:/usr/lib/cni */
  path?: string;
  /** Variables to add or (value undefined) remove. */
  env?: Record<string, string | undefined>;
}

export interface CniOutcome {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: Record<string, any> | undefined;
}

/**
 * Runs a binary inside a namespace (`ip netns exec NS BIN ARGS`) with env, stdin as JSON when
 * given; killed after timeoutMs. What a plugin or vxnetctl run on one of the test's hosts does.
 */
export function runInNetns(ns: { name: string }, bin: string, args: readonly string[], env: NodeJS.ProcessEnv, stdin?: unknown, timeoutMs = 60_000): Promise<CniOutcome> {
  return new Promise((resolveRun) => {
    const child = spawn('ip', ['netns', 'exec', ns.name, bin, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => { /* exited before reading stdin */ });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      let json: Record<string, any> | undefined;
      try { json = stdout.trim() ? (JSON.parse(stdout) as Record<string, any>) : undefined; } catch { json = undefined; }
      resolveRun({ code: code ?? -1, signal, stdout, stderr: Buffer.concat(err).toString('utf8'), json });
    });
    child.stdin.end(stdin === undefined ? '' : JSON.stringify(stdin));
  });
}

/** The environment a runtime gives a plugin: PATH plus the CNI_* variables. */
export function cniEnv(call: CniCall): NodeJS.ProcessEnv {
  // VXNET_CNI_SOCKET empty: the plugin does the work itself, whatever vxnetd runs on this
  // machine (test/integration/cni-handoff.test.ts sets it to its own vxnetd's socket).
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: call.command, VXNET_CNI_SOCKET: '' };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  env.CNI_PATH = call.path ?? CNI_PATH;
  for (const [k, v] of Object.entries(call.env ?? {})) {
    if (v === undefined) delete env[k]; else env[k] = v;
  }
  return env;
}

export interface Running {
  child: ChildProcess;
  done: Promise<CniOutcome>;
}

/** Starts a plugin binary with `stdin` (an object is JSON-encoded); `done` never rejects. */
export function startPlugin(bin: string, stdin: unknown, call: CniCall, timeoutMs = 60_000): Running {
  const child = spawn(bin, [], { env: cniEnv(call), stdio: ['pipe', 'pipe', 'pipe'] });
  const done = new Promise<CniOutcome>((resolveDone) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let spawnError = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.stdin!.on('error', () => { /* exited before reading stdin */ });
    child.on('error', (e) => { spawnError = `${e.message}\n`; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      let json: Record<string, any> | undefined;
      try { json = stdout.trim() ? (JSON.parse(stdout) as Record<string, any>) : undefined; } catch { json = undefined; }
      resolveDone({ code: code ?? -1, signal, stdout, stderr: Buffer.concat(err).toString('utf8') + spawnError, json });
    });
    child.stdin!.end(typeof stdin === 'string' ? stdin : JSON.stringify(stdin));
  });
  return { child, done };
}

/** Runs a plugin binary to completion. */
export function runPlugin(bin: string, stdin: unknown, call: CniCall, timeoutMs?: number): Promise<CniOutcome> {
  return startPlugin(bin, stdin, call, timeoutMs).done;
}

/** Short description of an outcome for assertion messages. */
export const describe = (o: CniOutcome): string =>
  `exit ${o.signal ?? o.code}; stdout ${o.stdout.trim().slice(0, 600)}; stderr ${o.stderr.trim().slice(0, 600)}`;

/** Runs `fn` over `items` with at most `limit` at once; resolves with the results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// --- subnets -------------------------------------------------------------------------------
// Each network takes 10.239.<n>.0/24 (and fd00:239:<n>::/64) for one n, reserved across test
// processes by an exclusive file holding the owner's pid (a dead owner's file is stale).

const SUBNET_DIR = join(tmpdir(), 'vxt-subnets');

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

async function hostUses(n: number): Promise<boolean> {
  const r = await exec('ip', ['-o', 'route', 'show', 'table', 'all']);
  return r.stdout.includes(`10.239.${n}.`) || r.stdout.includes(`fd00:239:${n.toString(16)}::`);
}

/** Reserves a free third octet n (1..254); the returned function releases it. */
export async function reserveSubnet(): Promise<{ n: number; release: () => void }> {
  fs.mkdirSync(SUBNET_DIR, { recursive: true });
  for (let attempt = 0; attempt < 500; attempt++) {
    const n = 1 + (randomBytes(1)[0] % 254);
    const file = join(SUBNET_DIR, String(n));
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
    } catch {
      let owner = NaN;
      try { owner = Number(fs.readFileSync(file, 'utf8')); } catch { /* just removed */ }
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) fs.rmSync(file, { force: true });
      continue;
    }
    if (await hostUses(n)) { fs.rmSync(file, { force: true }); continue; }
    return { n, release: () => fs.rmSync(file, { force: true }) };
  }
  throw new Error('no free 10.239.x.0/24 test subnet');
}

// --- networks ------------------------------------------------------------------------------

export interface NetOptions {
  /** Add an IPv6 range set (fd00:239:<n>::/64). */
  dual?: boolean;
  /** IPv4 prefix length of the subnet (default 24). */
  v4Prefix?: number;
  ipMasq?: boolean;
  /**
   * Replace the ipam section, given the network's temp dir and subnets. With a type other
   * than vxnet-ipam, teardown skips the GC (delegated IPAM may not support it).
   */
  ipam?: (n: { tmp: string; v4: string; v6: string | undefined; name: string }) => Record<string, unknown>;
  /** Extra top-level config keys. */
  extra?: Record<string, unknown>;
}

export interface TestNet {
  name: string;
  bridge: string;
  natTable: string;
  /** Private temp directory (removed by teardown); the store is in dataDir under it. */
  tmp: string;
  dataDir: string;
  n: number;
  v4: string;
  v6: string | undefined;
  /** The network config (single plugin) at `cniVersion`, with `extra` merged in. */
  conf(cniVersion?: string, extra?: Record<string, unknown>): Record<string, any>;
  /** Allocations of this network in the store. */
  allocations(): Promise<Allocation[]>;
  /** The `v4` address with last octet `host`. */
  ip4(host: number): string;
}

/** Allocations in the embedded store at dataDir ([] when the store was never created). */
export async function storeAllocations(dataDir: string, network?: string): Promise<Allocation[]> {
  if (!fs.existsSync(join(dataDir, 'ipam.db'))) return [];
  const store = openStore({ dataDir, mustExist: true });
  try {
    return await store.view((tx) => tx.list(network === undefined ? {} : { network }));
  } finally {
    await store.close();
  }
}

/** Removes nft tables `ip NAME` and `ip6 NAME` (vxt* only). */
export async function deleteNftTables(name: string): Promise<void> {
  if (!name.startsWith('vxt')) throw new Error(`refusing to delete nft table ${name}`);
  for (const family of ['ip', 'ip6']) await exec('nft', ['delete', 'table', family, name]);
}

/**
 * A fresh vxnet network for one test: name/bridge/natTable `vxt<hex>`, subnet 10.239.<n>.0/24
 * (plus fd00:239:<n>::/64 with `dual`), store in a temp dir. Teardown (registered here, so it
 * runs after the teardowns of namespaces created later): GC with no valid attachment (releases
 * everything and deletes the bridge's veths), then the bridge, masquerading and FORWARD rules,
 * the nft tables, the temp dir.
 */
export async function newNet(t: TestLike, opts: NetOptions = {}): Promise<TestNet> {
  const hex = randomBytes(4).toString('hex');
  const name = `vxt${hex}`;
  const bridge = `vxt${hex}`;
  const natTable = `vxt${hex}`;
  const { n, release } = await reserveSubnet();
  const tmp = fs.mkdtempSync(join(tmpdir(), 'vxt-cni-'));
  const dataDir = join(tmp, 'store');
  const prefix = opts.v4Prefix ?? 24;
  const v4 = `10.239.${n}.0/${prefix}`;
  const v6 = opts.dual ? `fd00:239:${n.toString(16)}::/64` : undefined;
  const ipam = opts.ipam?.({ tmp, v4, v6, name }) ?? {
    type: 'vxnet-ipam',
    ranges: [[{ subnet: v4 }], ...(v6 ? [[{ subnet: v6 }]] : [])],
    dataDir,
  };
  const conf = (cniVersion = '1.1.0', extra: Record<string, unknown> = {}): Record<string, any> => ({
    cniVersion, name, type: 'vxnet', bridge, natTable, ipMasq: opts.ipMasq ?? false,
    ipam, ...opts.extra, ...extra,
  });
  t.teardown(async () => {
    try {
      if ((ipam.type ?? 'vxnet-ipam') === 'vxnet-ipam') {
        const gc = await runPlugin(VXNET, { ...conf('1.1.0'), 'cni.dev/valid-attachments': [] }, { command: 'GC' });
        if (gc.code !== 0) t.comment(`teardown: GC ${name}: ${describe(gc)}`);
      }
      const subnets = [v4, ...(v6 ? [v6] : [])].map((s) => parseCidr(s) as Cidr);
      await teardownBridgeNetwork({ bridge, natTable, subnets });
      await deleteNftTables(natTable);
      if (await linkExists(bridge)) t.comment(`teardown: bridge ${bridge} is still there`);
    } catch (e) {
      t.comment(`teardown of ${name} failed: ${(e as Error).message}`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      release();
    }
  });
  return {
    name, bridge, natTable, tmp, dataDir, n, v4, v6, conf,
    allocations: () => storeAllocations(dataDir, name),
    ip4: (host) => `10.239.${n}.${host}`,
  };
}

// --- attachments ---------------------------------------------------------------------------

export interface Attached {
  ns: Netns;
  containerId: string;
  ifname: string;
  add: CniOutcome;
}

/** New namespace + ADD through dist/bin/vxnet; fails the test (throws) if the ADD fails. */
export async function attach(t: TestLike, net: TestNet, o: { cniVersion?: string; conf?: Record<string, unknown>; args?: string; ifname?: string; env?: CniCall['env'] } = {}): Promise<Attached> {
  const ns = await newNetns(t);
  const containerId = newContainerId();
  const ifname = o.ifname ?? 'eth0';
  const add = await runPlugin(VXNET, net.conf(o.cniVersion, o.conf), { command: 'ADD', containerId, ifname, netns: ns.path, args: o.args, ...(o.env ? { env: o.env } : {}) });
  if (add.code !== 0 || !add.json) throw new Error(`ADD ${containerId} failed: ${describe(add)}`);
  return { ns, containerId, ifname, add };
}

/** Non-link-local addresses (CIDR) of link `name`, in namespace `ns` or the host. */
export async function globalAddrs(name: string, ns?: string): Promise<string[]> {
  return (await linkAddrs(name, ns)).filter((a) => !a.startsWith('fe80:'));
}

/** Addresses (CIDR) of the result's ips. */
export const resultAddrs = (r: Record<string, any> | undefined): string[] => ((r?.ips ?? []) as Array<{ address: string }>).map((i) => i.address);
export const bare = (cidr: string): string => cidr.split('/')[0];

/** `busybox ping -c1 -W2 addr` from namespace `ns`, retried up to `tries` times (ARP/ND on a fresh link). */
export async function ping(ns: string, addr: string, tries = 3): Promise<{ ok: boolean; output: string }> {
  if (!addr.startsWith('10.239.') && !addr.startsWith('fd00:239:')) throw new Error(`refusing to ping ${addr}: not a test address`);
  let output = '';
  for (let i = 0; i < tries; i++) {
    const r = await exec('ip', ['netns', 'exec', ns, 'busybox', 'ping', ...(addr.includes(':') ? ['-6'] : []), '-c1', '-W2', addr], { timeoutMs: 10_000 });
    output = r.stdout + r.stderr;
    if (r.code === 0) return { ok: true, output };
  }
  return { ok: false, output };
}

/** True when an error outcome carries a stack trace (a plugin must print none). */
export const hasStackTrace = (text: string): boolean => /\n\s+at .+:\d+:\d+\)?/.test(text) || /^\s+at /m.test(text);

/** A link's identity: its index and MAC (in namespace `ns` or the host's); undefined when it does not exist. */
export async function linkIdentity(name: string, ns?: string): Promise<{ index: number; mac: string } | undefined> {
  const r = await exec('ip', [...(ns ? ['-n', ns] : []), '-j', 'link', 'show', 'dev', name]);
  if (r.code !== 0) return undefined;
  const [link] = JSON.parse(r.stdout || '[]') as Array<{ ifindex: number; address: string }>;
  return link ? { index: link.ifindex, mac: link.address } : undefined;
}
