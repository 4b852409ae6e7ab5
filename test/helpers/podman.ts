// podman for integration tests: the CNI backend with conflists from a test directory, through
// deploy/containers.conf (never the global /etc/containers config), and a local busybox image
// built from busybox-static (no registry needed). Containers are named `vxt-<hex>` and removed
// by a t.teardown; tap runs teardowns last-registered-first, so register the CNI config dir
// before the containers that use it (podman needs the conflist to run CNI DEL on removal).
//
// podman itself names the namespaces it creates `cni-<uuid>` and the host veths `veth<hex>`
// (bridge plugin); both go away with `podman rm`.
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assertTestName, cleanupLink, testName, type TestLike } from './netns';
import { exec, execSync, type ExecOptions, type ExecResult } from './sh';

/** Local image ensureBusyboxImage() creates. */
export const BUSYBOX_IMAGE = 'localhost/vxt-busybox:latest';

const repoRoot = resolve(typeof __dirname === 'string' ? join(__dirname, '..', '..') : process.cwd());
/** deploy/containers.conf: CNI backend, /opt/cni/bin + /usr/lib/cni, host ulimits. */
export const CONTAINERS_CONF = join(repoRoot, 'deploy', 'containers.conf');

/** The built plugins (vxnet, vxnet-ipam) and Debian's reference plugins, in that order. */
export const BUILT_PLUGIN_DIRS: readonly string[] = [join(repoRoot, 'dist', 'bin'), '/usr/lib/cni'];

/**
 * deploy/containers.conf with network_config_dir set to `cniConfigDir` and, when given,
 * cni_plugin_dirs replaced by `pluginDirs` (deploy's looks in /opt/cni/bin, where no test
 * installs anything).
 */
export function containersConfText(cniConfigDir: string, pluginDirs?: readonly string[]): string {
  const dir = JSON.stringify(resolve(cniConfigDir));
  let text = readFileSync(CONTAINERS_CONF, 'utf8').replace(/^network_config_dir\s*=.*$/m, `network_config_dir = ${dir}`);
  if (!text.includes(`network_config_dir = ${dir}`)) throw new Error(`${CONTAINERS_CONF} has no network_config_dir line`);
  if (pluginDirs) {
    const dirs = `cni_plugin_dirs = [${pluginDirs.map((d) => JSON.stringify(d)).join(', ')}]`;
    text = text.replace(/^cni_plugin_dirs\s*=\s*\[[^\]]*\]/m, dirs);
    if (!text.includes(dirs)) throw new Error(`${CONTAINERS_CONF} has no cni_plugin_dirs list`);
  }
  return text;
}

/**
 * Environment for running podman with vxnet's containers.conf and conflists read from
 * `cniConfigDir`. CONTAINERS_CONF points at a generated copy of deploy/containers.conf whose
 * network_config_dir is `cniConfigDir` (written outside that directory, which CNI scans).
 */
export function podmanEnv(cniConfigDir: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const dir = resolve(cniConfigDir);
  const text = containersConfText(dir);
  const file = generatedConfPath(dir);
  let current = '';
  try { current = readFileSync(file, 'utf8'); } catch { /* first use */ }
  if (current !== text) {
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, file); // atomic: parallel test files may write the same path
  }
  return { ...base, CONTAINERS_CONF: file };
}

/** Where podmanEnv(dir) writes its containers.conf copy. */
function generatedConfPath(cniConfigDir: string): string {
  return join(tmpdir(), `vxt-containers-${createHash('sha256').update(resolve(cniConfigDir)).digest('hex').slice(0, 12)}.conf`);
}

export type PodmanRun = (args: readonly string[]) => Promise<ExecResult>;

/**
 * podman with the conflists of `cniConfigDir` and the built plugins first in its CNI path:
 * writes that containers.conf to `confFile` (outside `cniConfigDir`, which CNI scans; removed
 * with whatever directory the caller tears down) and returns a runner for `podman args...`.
 */
export function podmanWithBuiltPlugins(cniConfigDir: string, confFile: string, env: NodeJS.ProcessEnv = process.env): PodmanRun {
  writeFileSync(confFile, containersConfText(cniConfigDir, BUILT_PLUGIN_DIRS));
  const runEnv = { ...env, CONTAINERS_CONF: confFile };
  const dir = resolve(cniConfigDir);
  return (args) => exec('podman', ['--network-config-dir', dir, ...args], { env: runEnv, timeoutMs: 120_000 });
}

/** Runs `podman args...` against the conflists in `cniConfigDir`. */
export function podman(cniConfigDir: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return exec('podman', ['--network-config-dir', resolve(cniConfigDir), ...args], {
    timeoutMs: 120_000, ...opts, env: podmanEnv(cniConfigDir, opts.env ?? process.env),
  });
}

/**
 * Creates an empty CNI config directory (vxt-cni-*) removed, with podmanEnv's containers.conf
 * copy for it, by a teardown on `t`.
 */
export function newCniConfigDir(t: TestLike): string {
  const dir = mkdtempSync(join(tmpdir(), 'vxt-cni-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(generatedConfPath(dir), { force: true });
  });
  return dir;
}

export interface ReferenceBridgeOptions {
  /** CNI network name (vxt*). */
  name: string;
  /** Linux bridge (vxt*, <= 15 chars). */
  bridge: string;
  /** e.g. 10.239.0.0/24 */
  subnet: string;
  cniVersion?: string;
}

/**
 * Writes `<name>.conflist` with Debian's reference bridge + host-local plugins (the baseline
 * vxnet is compared against) into `dir`, and registers teardowns that delete the bridge and
 * host-local's state directory. Returns the conflist path.
 */
export function writeReferenceBridgeConflist(t: TestLike, dir: string, o: ReferenceBridgeOptions): string {
  assertTestName(o.name);
  assertTestName(o.bridge);
  const conf = {
    cniVersion: o.cniVersion ?? '1.0.0',
    name: o.name,
    plugins: [{
      type: 'bridge', bridge: o.bridge, isGateway: true, ipMasq: false, hairpinMode: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: o.subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
    }],
  };
  // Registered before the containers: runs after they are removed.
  cleanupLink(t, o.bridge);
  t.teardown(() => { rmSync(join('/var/lib/cni/networks', o.name), { recursive: true, force: true }); });
  const file = join(dir, `${o.name}.conflist`);
  writeFileSync(file, JSON.stringify(conf, null, 2));
  return file;
}

let busyboxPending: Promise<string> | undefined;

/**
 * Makes sure local image localhost/vxt-busybox exists: `podman import` of a rootfs holding
 * busybox-static's /bin/busybox and a symlink per applet (sh, ping, ip, nc, wget, sleep, ...).
 * Fast when the image exists. Resolves with the image name.
 */
export function ensureBusyboxImage(): Promise<string> {
  busyboxPending ??= buildBusyboxImage().catch((e: unknown) => { busyboxPending = undefined; throw e; });
  return busyboxPending;
}

async function buildBusyboxImage(): Promise<string> {
  const env = { ...process.env, CONTAINERS_CONF };
  if ((await exec('podman', ['image', 'exists', BUSYBOX_IMAGE], { env })).code === 0) return BUSYBOX_IMAGE;
  const busybox = process.env.VXNET_TEST_BUSYBOX ?? '/bin/busybox';
  const pkg = execSync('dpkg-query', ['-W', '-f=${Status}', 'busybox-static']);
  if (!process.env.VXNET_TEST_BUSYBOX && !pkg.stdout.includes('ok installed')) {
    throw new Error('busybox-static is not installed (apt-get install busybox-static): the image needs a static busybox');
  }
  const work = mkdtempSync(join(tmpdir(), 'vxt-rootfs-'));
  try {
    const root = join(work, 'rootfs');
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'run', 'var']) mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, 'tmp'), 0o1777);
    copyFileSync(busybox, join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    const list = await exec(busybox, ['--list']);
    if (list.code !== 0) throw new Error(`${busybox} --list: ${list.stderr.trim()}`);
    for (const applet of list.stdout.split('\n').map((s) => s.trim())) {
      if (applet && applet !== 'busybox' && !applet.includes('/')) symlinkSync('busybox', join(root, 'bin', applet));
    }
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    const tar = join(work, 'rootfs.tar');
    const t = await exec('tar', ['-C', root, '--numeric-owner', '-cf', tar, '.']);
    if (t.code !== 0) throw new Error(`tar: ${t.stderr.trim()}`);
    const imp = await exec('podman', ['import', '--quiet',
      '--change', 'CMD ["/bin/sh"]', '--change', 'ENV PATH=/bin',
      '--message', 'vxnet test image: busybox-static', tar, BUSYBOX_IMAGE], { env, timeoutMs: 120_000 });
    if (imp.code !== 0) throw new Error(`podman import: ${imp.stderr.trim()}`);
    return BUSYBOX_IMAGE;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface RunOptions {
  /** CNI network name(s) to attach to (conflists in the config dir). */
  network: string | readonly string[];
  /** Container name (vxt*); default `vxt-<8 hex>`. */
  name?: string;
  image?: string;
  /** Command; default `sleep 3600` (removal kills it). */
  cmd?: readonly string[];
  /** Static address (`--ip`), for IPAM that supports it. */
  ip?: string;
  /** Extra `podman run` arguments before the image. */
  args?: readonly string[];
}

export interface Container {
  name: string;
  id: string;
}

/**
 * `podman run -d` a container (busybox image unless `image`) on `network`, with a teardown on
 * `t` that removes it (`podman rm -f -t 0`, which also runs CNI DEL). Rejects if run fails;
 * the teardown is registered before the run, so a half-created container is removed too.
 */
export async function podmanRun(t: TestLike, cniConfigDir: string, o: RunOptions): Promise<Container> {
  const name = o.name ?? testName();
  assertTestName(name);
  const image = o.image ?? (await ensureBusyboxImage());
  t.teardown(async () => {
    const r = await podmanRm(cniConfigDir, name);
    if (r.code !== 0) t.comment(`teardown: podman rm ${name}: ${r.stderr.trim()}`);
  });
  const networks = typeof o.network === 'string' ? [o.network] : o.network;
  const r = await podman(cniConfigDir, ['run', '-d', '--pull', 'never', '--name', name,
    '--network', networks.join(','), ...(o.ip ? ['--ip', o.ip] : []), ...(o.args ?? []),
    image, ...(o.cmd ?? ['sleep', '3600'])]);
  if (r.code !== 0) throw new Error(`podman run ${name}: ${r.stderr.trim()}`);
  return { name, id: r.stdout.trim() };
}

/** `podman rm -f -t 0 NAME` (vxt* names only); ignores a container that does not exist. */
export function podmanRm(cniConfigDir: string, name: string): Promise<ExecResult> {
  assertTestName(name);
  return podman(cniConfigDir, ['rm', '-f', '--ignore', '-t', '0', name]);
}

/** `podman exec NAME cmd...` */
export function podmanExec(cniConfigDir: string, name: string, cmd: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return podman(cniConfigDir, ['exec', name, ...cmd], opts);
}

/** IPv4 address of the container on `network` (or its first network), without prefix length. */
export async function containerIp(cniConfigDir: string, name: string, network?: string): Promise<string> {
  const r = await podman(cniConfigDir, ['inspect', '--format', '{{json .NetworkSettings.Networks}}', name]);
  if (r.code !== 0) throw new Error(`podman inspect ${name}: ${r.stderr.trim()}`);
  const nets = JSON.parse(r.stdout) as Record<string, { IPAddress?: string }>;
  const entry = network !== undefined ? nets[network] : Object.values(nets)[0];
  if (!entry?.IPAddress) throw new Error(`container ${name} has no IPv4 address on ${network ?? 'any network'}: ${r.stdout.trim()}`);
  return entry.IPAddress;
}
