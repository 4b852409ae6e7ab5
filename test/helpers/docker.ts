// Docker for the vxnetd end-to-end tests: a dockerd (the one running, else one this process
// starts and stops again, by pid), the local busybox image (docker import of busybox-static:
// no registry is reachable), a vxnetd of the test's own (its own plugin name, socket and data
// directory), and networks and containers named vxt*, each removed by a t.teardown. tap runs
// teardowns last-registered-first: start vxnetd before creating the networks that need it, and
// those before the containers on them, so removal runs containers, networks, then vxnetd.
//
// /usr/bin/docker is Debian's 20.10 client, the one matching the daemon (/usr/local/bin/docker
// may be a newer client).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assertTestName, type TestLike } from './netns';
import { exec, execSync, pollUntil, type ExecOptions, type ExecResult } from './sh';

export const DOCKER = '/usr/bin/docker';
export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER_SOCKET = '/var/run/docker.sock';
/** The image `ensureDockerImage` builds (the benchmark uses it too). */
export const DOCKER_IMAGE = 'local/busybox:latest';
export const PLUGIN_DIR = '/run/docker/plugins';

const repoRoot = resolve(__dirname, '..', '..');
export const VXNETD = join(repoRoot, 'dist', 'bin', 'vxnetd');
export const VXNETCTL = join(repoRoot, 'dist', 'bin', 'vxnetctl');

/** Why the Docker tests cannot run here, or undefined. */
export function cannotRunDocker(): string | undefined {
  if (process.getuid?.() !== 0) return 'the Docker tests need root';
  if (!fs.existsSync(DOCKER) || !fs.existsSync(DOCKERD)) return `${DOCKER} or ${DOCKERD} is missing (apt-get install docker.io)`;
  if (!fs.existsSync(VXNETD)) return `${VXNETD} is missing: run npm run build first`;
  return undefined;
}

/** `docker args...` with the 20.10 client; never rejects. */
export function docker(args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return exec(DOCKER, args, { timeoutMs: 120_000, ...opts });
}

export async function mustDocker(args: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const r = await docker(args, opts);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: exit ${r.signal ?? r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout.trim();
}

// ---- dockerd ----

let startedDockerd: ChildProcess | undefined;
let dockerdPending: Promise<void> | undefined;

const dockerdUp = async (): Promise<boolean> => (await exec(DOCKER, ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 })).code === 0;

/**
 * Resolves once a dockerd answers: the running one, else one started here (data root
 * /var/lib/docker, log in $TMPDIR/vxt-dockerd.log) and stopped when this process exits.
 */
export function ensureDockerd(): Promise<void> {
  dockerdPending ??= (async () => {
    if (await dockerdUp()) return;
    const log = fs.openSync(join(tmpdir(), 'vxt-dockerd.log'), 'a');
    const child = spawn(DOCKERD, [], { detached: true, stdio: ['ignore', log, log], env: daemonEnv() });
    fs.closeSync(log);
    startedDockerd = child;
    let exited: string | undefined;
    child.once('exit', (code, signal) => { exited = `dockerd exited (${signal ?? code}); see ${join(tmpdir(), 'vxt-dockerd.log')}`; });
    child.unref();
    await pollUntil(async () => { if (exited) throw new Error(exited); return dockerdUp(); },
      { timeoutMs: 60_000, intervalMs: 200, what: 'dockerd to answer' });
  })().catch((e: unknown) => { dockerdPending = undefined; throw e; });
  return dockerdPending;
}

process.once('exit', () => {
  // Only the dockerd this process started, by its pid; it stops its containers and its containerd.
  if (startedDockerd?.pid && startedDockerd.exitCode === null) {
    try { process.kill(startedDockerd.pid, 'SIGTERM'); } catch { /* gone */ }
    execSync('sh', ['-c', `for i in $(seq 1 300); do kill -0 ${startedDockerd.pid} 2>/dev/null || exit 0; sleep 0.1; done`], { timeoutMs: 35_000 });
  }
});

// ---- image ----

let imagePending: Promise<string> | undefined;

/** Builds local/busybox with `docker import` of a rootfs around busybox-static (fast when it exists). */
export function ensureDockerImage(): Promise<string> {
  imagePending ??= (async () => {
    await ensureDockerd();
    if ((await docker(['image', 'inspect', DOCKER_IMAGE])).code === 0) return DOCKER_IMAGE;
    const work = fs.mkdtempSync(join(tmpdir(), 'vxt-rootfs-'));
    try {
      const root = join(work, 'rootfs');
      for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'run', 'var']) fs.mkdirSync(join(root, d), { recursive: true });
      fs.chmodSync(join(root, 'tmp'), 0o1777);
      fs.copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
      fs.chmodSync(join(root, 'bin', 'busybox'), 0o755);
      const list = await exec('/bin/busybox', ['--list']);
      if (list.code !== 0) throw new Error('/bin/busybox --list failed: is busybox-static installed?');
      for (const applet of list.stdout.split('\n').map((s) => s.trim())) {
        if (applet && applet !== 'busybox' && !applet.includes('/')) fs.symlinkSync('busybox', join(root, 'bin', applet));
      }
      fs.writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
      fs.writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
      const tar = join(work, 'rootfs.tar');
      const t = await exec('tar', ['-C', root, '--numeric-owner', '-cf', tar, '.']);
      if (t.code !== 0) throw new Error(`tar: ${t.stderr.trim()}`);
      await mustDocker(['import', '-c', 'CMD ["/bin/sh"]', '-c', 'ENV PATH=/bin', '-m', 'vxnet test image: busybox-static', tar, DOCKER_IMAGE]);
      return DOCKER_IMAGE;
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  })().catch((e: unknown) => { imagePending = undefined; throw e; });
  return imagePending;
}

// ---- vxnetd ----

export interface Vxnetd {
  /** Docker's name for the plugin: -d NAME --ipam-driver NAME. */
  readonly plugin: string;
  readonly socket: string;
  readonly dataDir: string;
  readonly logFile: string;
  pid(): number | undefined;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit (the socket file stays, as after a crash). */
  kill9(): Promise<void>;
  /** Starts it again (same socket and data directory); resolves once it answers. */
  start(): Promise<void>;
  logs(): string;
}

export interface VxnetdOptions {
  /** Data directory (default: a new vxt-vxnetd-* temp dir removed by a teardown). */
  dataDir?: string;
  extraArgs?: readonly string[];
}

/** The environment for daemons a test starts: the test's, less the loader options tap gives its own children. */
export function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !/^_?TAP/.test(k)) env[k] = v;
  return env;
}

/** POSTs to a plugin socket; resolves with the status and the parsed JSON body (raw text if not JSON). */
export function pluginCall(socket: string, method: string, body = '', timeoutMs = 10_000): Promise<{ status: number; json: any; text: string }> {
  return new Promise((resolveCall, reject) => {
    const req = http.request({ socketPath: socket, path: `/${method}`, method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' }, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        let json: unknown;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolveCall({ status: res.statusCode ?? 0, json, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method}: no reply in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Starts dist/bin/vxnetd as plugin vxt<8 hex> on /run/docker/plugins/<plugin>.sock, logging at
 * debug level to a file in its data directory; a teardown stops it (by pid) and removes the
 * socket. Resolves once it answers Plugin.Activate.
 */
export async function startVxnetd(t: TestLike, o: VxnetdOptions = {}): Promise<Vxnetd> {
  const plugin = `vxt${randomBytes(4).toString('hex')}`;
  const socket = join(PLUGIN_DIR, `${plugin}.sock`);
  let dataDir = o.dataDir;
  if (!dataDir) {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-vxnetd-'));
    dataDir = dir;
    t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }); });
  }
  const logFile = join(dataDir, 'vxnetd.log');
  let child: ChildProcess | undefined;
  let exit: Promise<void> = Promise.resolve();
  const dir = dataDir;

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) throw new Error('vxnetd is running already');
    const log = fs.openSync(logFile, 'a');
    const dnsArgs = (o.extraArgs ?? []).some((a) => a.startsWith('--dns') || a.startsWith('--http'));
    // No DNS unless the test asks for it: the default addresses and dns.json are host-global.
    // No VIPs unless a --vip-* flag names the test's own table (the default one is host-global).
    const vipArgs = (o.extraArgs ?? []).some((a) => a.startsWith('--vip-'));
    const c = spawn(VXNETD, [...(dnsArgs ? [] : ['--no-dns']), ...(vipArgs ? [] : ['--no-vip']), '--socket', socket, '--cni-socket', '', '--data-dir', dir, '--log-level', 'debug', '--http-listen', '', ...(o.extraArgs ?? [])], { stdio: ['ignore', log, log], env: daemonEnv() });
    fs.closeSync(log);
    child = c;
    exit = new Promise((r) => c.once('exit', () => r()));
    await pollUntil(async () => {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`vxnetd exited (${c.signalCode ?? c.exitCode}): ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
      try {
        return (await pluginCall(socket, 'Plugin.Activate', '', 1000)).status === 200;
      } catch {
        return false;
      }
    }, { timeoutMs: 20_000, intervalMs: 50, what: `vxnetd ${plugin} to answer on ${socket}` });
  };
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(sig);
    await Promise.race([exit, new Promise((_, rej) => setTimeout(() => rej(new Error(`vxnetd did not exit on ${sig} within 15 s`)), 15_000).unref())]);
  };

  t.teardown(async () => {
    try { await signal('SIGTERM'); } catch (e) { t.comment(`teardown: ${(e as Error).message}`); await signal('SIGKILL').catch(() => undefined); }
    fs.rmSync(socket, { force: true });
  });
  await start();
  return {
    plugin, socket, dataDir: dir, logFile,
    pid: () => child?.pid,
    stop: () => signal('SIGTERM'),
    kill9: () => signal('SIGKILL'),
    start,
    logs: () => { try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; } },
  };
}

// ---- networks and containers ----

export interface DockerNet {
  readonly name: string;
  readonly subnet: string;
  /** The bridge (-o bridge=), vxt-prefixed. */
  readonly bridge: string;
  readonly natTable: string;
  /** Third octet of 10.232.N.0/24. */
  readonly n: number;
  ip(host: number): string;
}

/** A random 10.232.N.0/24 not used by another network of this process. */
const usedOctets = new Set<number>();
export function freeSubnetOctet(): number {
  for (;;) {
    const n = 100 + Math.floor(Math.random() * 150);
    if (!usedOctets.has(n)) { usedOctets.add(n); return n; }
  }
}

export interface NetOptions {
  name?: string;
  n?: number;
  /** Extra -o options (key=value). */
  opts?: readonly string[];
  /** Extra `docker network create` arguments. */
  args?: readonly string[];
  /** Do not pass -o bridge= (the driver then picks the bridge). */
  noBridgeOption?: boolean;
}

/**
 * `docker network create -d PLUGIN --ipam-driver PLUGIN --subnet 10.232.N.0/24 -o bridge=vxtb..
 * -o natTable=vxt..` with a teardown that removes the network, then the bridge and nft table if
 * they outlived it. Rejects when creation fails.
 */
export async function createDockerNet(t: TestLike, vx: Pick<Vxnetd, 'plugin'>, o: NetOptions = {}): Promise<DockerNet> {
  const n = o.n ?? freeSubnetOctet();
  const hex = randomBytes(4).toString('hex');
  const name = o.name ?? `vxt-${hex}`;
  const bridge = `vxtb${hex}`;
  const natTable = `vxtn${hex}`;
  assertTestName(name);
  const subnet = `10.232.${n}.0/24`;
  registerNetCleanup(t, name, bridge, natTable);
  await mustDocker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--subnet', subnet,
    ...(o.noBridgeOption ? [] : ['-o', `bridge=${bridge}`]), '-o', `natTable=${natTable}`,
    ...(o.opts ?? []).flatMap((kv) => ['-o', kv]), ...(o.args ?? []), name]);
  return { name, subnet, bridge, natTable, n, ip: (h) => `10.232.${n}.${h}` };
}

/** Creates a network with exactly these names (for sharing them with a CNI config); same teardown as createDockerNet. */
export async function createDockerNetNamed(t: TestLike, vx: Pick<Vxnetd, 'plugin'>, o: { name: string; subnet: string; bridge: string; natTable: string; opts?: readonly string[] }): Promise<string> {
  registerNetCleanup(t, o.name, o.bridge, o.natTable);
  await mustDocker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--subnet', o.subnet,
    '-o', `bridge=${o.bridge}`, '-o', `natTable=${o.natTable}`, ...(o.opts ?? []).flatMap((kv) => ['-o', kv]), o.name]);
  return o.name;
}

/** Teardown for a network made some other way: docker network rm, then its bridge and nft table. */
export function registerNetCleanup(t: TestLike, name: string, bridge?: string, natTable?: string): void {
  assertTestName(name);
  t.teardown(async () => {
    const r = await docker(['network', 'rm', name], { timeoutMs: 90_000 });
    if (r.code !== 0 && !/not found|No such network/i.test(r.stderr)) t.comment(`teardown: docker network rm ${name}: ${r.stderr.trim()}`);
    if (bridge) {
      assertTestName(bridge);
      if ((await exec('ip', ['link', 'show', 'dev', bridge])).code === 0) await exec('ip', ['link', 'delete', 'dev', bridge]);
      await exec('iptables', ['-w', '-D', 'FORWARD', '-i', bridge, '-m', 'comment', '--comment', `vxnet:${bridge}`, '-j', 'ACCEPT']);
      await exec('iptables', ['-w', '-D', 'FORWARD', '-o', bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-m', 'comment', '--comment', `vxnet:${bridge}`, '-j', 'ACCEPT']);
    }
    if (natTable) {
      assertTestName(natTable);
      await exec('nft', ['delete', 'table', 'ip', natTable]);
    }
  });
}

export interface RunOptions {
  network: string;
  name?: string;
  ip?: string;
  cmd?: readonly string[];
  args?: readonly string[];
}

/** `docker run -d` a busybox container (sleeping) with a teardown `docker rm -f`; resolves with its name. */
export async function runContainer(t: TestLike, o: RunOptions): Promise<string> {
  const image = await ensureDockerImage();
  const name = o.name ?? `vxt-${randomBytes(4).toString('hex')}`;
  assertTestName(name);
  t.teardown(async () => {
    const r = await docker(['rm', '-f', name], { timeoutMs: 90_000 });
    if (r.code !== 0 && !/No such container/i.test(r.stderr)) t.comment(`teardown: docker rm -f ${name}: ${r.stderr.trim()}`);
  });
  await mustDocker(['run', '-d', '--name', name, '--network', o.network, ...(o.ip ? ['--ip', o.ip] : []), ...(o.args ?? []),
    image, ...(o.cmd ?? ['/bin/busybox', 'sleep', '3600'])]);
  return name;
}

export interface EndpointInfo {
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  EndpointID: string;
  MacAddress: string;
  NetworkID: string;
}

/** The container's endpoint on a network (docker inspect), or undefined. */
export async function endpointOf(container: string, network: string): Promise<EndpointInfo | undefined> {
  const out = await mustDocker(['inspect', '-f', '{{json .NetworkSettings.Networks}}', container]);
  return (JSON.parse(out) as Record<string, EndpointInfo>)[network];
}

export async function containerIp(container: string, network: string): Promise<string> {
  const ep = await endpointOf(container, network);
  if (!ep?.IPAddress) throw new Error(`${container} has no address on ${network}`);
  return ep.IPAddress;
}

/** `docker exec NAME busybox ping -c 1 -W 2 IP`, true when it got an answer. */
export async function pingFrom(container: string, ip: string): Promise<boolean> {
  return (await docker(['exec', container, '/bin/busybox', 'ping', '-c', '1', '-W', '2', ip], { timeoutMs: 20_000 })).code === 0;
}

/** `vxnetctl --data-dir DIR --json ipam ls` allocations. */
export async function allocations(dataDir: string, network?: string): Promise<Array<Record<string, any>>> {
  const r = await exec(VXNETCTL, ['--data-dir', dataDir, '--json', 'ipam', 'ls', ...(network ? ['--network', network] : [])]);
  if (r.code !== 0) throw new Error(`vxnetctl ipam ls: ${r.stderr.trim()}`);
  const parsed = JSON.parse(r.stdout) as unknown;
  return (Array.isArray(parsed) ? parsed : (parsed as { allocations?: unknown[] }).allocations ?? []) as Array<Record<string, any>>;
}
