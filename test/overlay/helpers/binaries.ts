// Hosts running nothing but the built binaries, as an operator runs them (harness.test.ts,
// no-block.test.ts): an underlay namespace with 10.238.0.1 on its bridge, etcd listening there,
// the network defined once with `vxnetctl network create`, and per host a namespace on the
// underlay running its own vxnetd (--no-docker --store ...; --no-vip unless a --vip-* flag is
// given), in which the `vxnet` CNI plugin
// hands its calls to that vxnetd. Everything is vxt-prefixed or inside the test's namespaces;
// each vxnetd is SIGKILLed by pid and its files removed by teardowns (also when a test fails).
import type { Test } from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type EtcdCluster, startEtcd } from '../../helpers/etcd';
import { type Netns, newNetns } from '../../helpers/netns';
import { mustExec } from '../../helpers/sh';
import { type CniCall, type CniOutcome, cniEnv, newContainerId, runInNetns } from '../../integration/helpers/cni';
import { type Host, type Underlay, newUnderlay } from './hosts';

const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = (name: string): string => path.join(ROOT, 'dist', 'bin', name);

/** Why these tests cannot run for want of a build, or undefined. */
export const missingBuild = (): string | undefined =>
  (['vxnetd', 'vxnetctl', 'vxnet'].every((b) => existsSync(BIN(b))) ? undefined : 'needs a build (npm run build)');

/** A host's vxnetd: its data, overlay state and CNI socket under dir; log() is its stderr so far. */
export interface VxnetdNode {
  readonly id: string;
  readonly host: Host;
  readonly dir: string;
  readonly vxnetd: ChildProcess;
  log(): string;
}

export interface BinaryCluster {
  readonly underlay: Underlay;
  readonly etcd: EtcdCluster;
  /** `vxnetctl ARGS --store <etcd>` in the underlay namespace. */
  ctl(args: string[]): Promise<CniOutcome>;
  /** Host i (a namespace on the underlay, default route via it) running `vxnetd` with the common flags and `flags`. */
  startVxnetd(i: number, id: string, flags: string[]): Promise<VxnetdNode>;
  /** A CNI ADD of a new container (a netns of its own) on n through the built plugin, in overlay mode. */
  add(n: VxnetdNode, extra?: Record<string, unknown>, args?: string): Promise<{ call: CniCall; ns: Netns; outcome: CniOutcome }>;
  /** The DEL of an earlier ADD's call on n (the same `extra`). */
  del(n: VxnetdNode, added: CniCall, extra?: Record<string, unknown>): Promise<CniOutcome>;
}

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const runIn = (ns: { name: string }, bin: string, args: string[], env: NodeJS.ProcessEnv, stdin?: unknown): Promise<CniOutcome> =>
  runInNetns(ns, bin, args, env, stdin, 30_000);

/** The underlay, etcd on it and the network `network` defined by `vxnetctl network create <defineArgs>`. */
export async function binaryCluster(t: Test, network: string, defineArgs: string[]): Promise<BinaryCluster> {
  const underlay = await newUnderlay(t, 1500);
  await mustExec('ip', ['-n', underlay.ns.name, 'addr', 'add', '10.238.0.1/24', 'dev', 'vxtul']);
  const etcd = await startEtcd(t, { netns: [underlay.ns.name], hosts: ['10.238.0.1'] });
  const tmp = mkdtempSync(path.join(tmpdir(), 'vxt-bin-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const ctl = (args: string[]): Promise<CniOutcome> => runIn(underlay.ns, BIN('vxnetctl'), [...args, '--store', etcd.storeUrl], ENV);

  const def = await ctl(['network', 'create', network, ...defineArgs]);
  if (def.code !== 0) throw new Error(`vxnetctl network create ${network}: ${def.stderr}`);

  const startVxnetd = async (i: number, id: string, flags: string[]): Promise<VxnetdNode> => {
    const host = await underlay.addHost(i);
    await mustExec('ip', ['-n', host.ns.name, 'route', 'add', 'default', 'via', '10.238.0.1']);
    const dir = path.join(tmp, id);
    const socket = `/run/docker/plugins/vxt${randomBytes(4).toString('hex')}.sock`;
    t.teardown(() => rmSync(socket, { force: true }));
    // No DNS unless asked for (dns.json's default path is host-global); no VIPs unless a --vip-
    // flag names the test's own table (the default vxnet-vip would be created in the host's namespace).
    const dns = flags.some((f) => f.startsWith('--dns'));
    const vip = flags.some((f) => f.startsWith('--vip-'));
    // `ip netns exec` execs vxnetd in place: the pid held is vxnetd's.
    const vxnetd = spawn('ip', ['netns', 'exec', host.ns.name, BIN('vxnetd'), '--no-docker', ...(vip ? [] : ['--no-vip']), ...(dns ? [] : ['--no-dns']), '--socket', socket, '--data-dir', path.join(dir, 'data'),
      '--store', etcd.storeUrl, '--host-id', id, '--overlay-dir', path.join(dir, 'overlay'), '--cni-socket', path.join(dir, 'cni.sock'), ...flags],
    { stdio: ['ignore', 'ignore', 'pipe'], env: ENV });
    t.teardown(() => { if (vxnetd.exitCode === null && vxnetd.signalCode === null) vxnetd.kill('SIGKILL'); });
    let log = '';
    vxnetd.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
    return { id, host, dir, vxnetd, log: () => log };
  };

  const confOf = (n: VxnetdNode, extra: Record<string, unknown>): Record<string, unknown> => ({
    cniVersion: '1.1.0', name: network, type: 'vxnet', mode: 'overlay', natTable: 'vxtnat',
    overlayStateDir: path.join(n.dir, 'overlay'), ipam: { dataDir: path.join(n.dir, 'data') }, ...extra,
  });
  // The plugin hands the call to its host's vxnetd (same namespace, same build).
  const call = (n: VxnetdNode, c: CniCall, extra: Record<string, unknown>): Promise<CniOutcome> =>
    runIn(n.host.ns, BIN('vxnet'), [], cniEnv({ ...c, env: { VXNET_CNI_SOCKET: path.join(n.dir, 'cni.sock') } }), confOf(n, extra));

  const add = async (n: VxnetdNode, extra: Record<string, unknown> = {}, args?: string): Promise<{ call: CniCall; ns: Netns; outcome: CniOutcome }> => {
    const ns = await newNetns(t);
    const c: CniCall = { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: ns.path, ...(args !== undefined ? { args } : {}) };
    return { call: c, ns, outcome: await call(n, c, extra) };
  };
  const del = (n: VxnetdNode, added: CniCall, extra: Record<string, unknown> = {}): Promise<CniOutcome> => call(n, { ...added, command: 'DEL' }, extra);

  return { underlay, etcd, ctl, startVxnetd, add, del };
}
