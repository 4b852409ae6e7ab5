// vxnetctl install: puts the built dist/ where runtimes and operators find it.
//
// The copy goes to PREFIX.new and is renamed into place, never written over PREFIX: a vxnetd
// or a CNI ADD running from PREFIX keeps the files (and mapped .node addons) it opened, and a
// plugin exec'd during the install finds the old tree or the new one, not half of each (the
// window between moving the old tree aside and renaming the new one in is two renames).
// The links in the CNI and bin directories are replaced the same way: a new link, renamed
// over the old one. Node resolves a symlinked main script to its real path, so a plugin
// exec'd as /opt/cni/bin/vxnet loads its addons from PREFIX/native.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatCidr, networkOf, parseCidr } from '../ipam/addr';
import { canonicalRangeSets } from '../ipam/range';
import { InvalidNetworkConfig, IoFailure } from '../lib/errors';
import { DEFAULTS, UsageError, type Values } from './args';
import { type Ctx, writeJson } from './context';

/** What dist/bin must hold; each is linked from the CNI or the bin directory. */
const CNI_PLUGINS = ['vxnet', 'vxnet-ipam'] as const;
const COMMANDS = ['vxnetctl', 'vxnetd', 'vxnet-lb'] as const;

export interface ConflistRequest {
  readonly confDir: string;
  readonly network: string;
  readonly subnets: readonly string[];
}

export interface InstallRequest {
  /** The built dist/ directory to copy. */
  readonly source: string;
  readonly prefix: string;
  readonly cniBinDir: string;
  readonly binDir: string;
  readonly conflist?: ConflistRequest;
  /** Directory to write vxnetd.service to, when asked. */
  readonly systemdDir?: string;
}

export interface LinkReport {
  path: string;
  target: string;
  /** What the link replaced: null, "file", "link to TARGET". */
  replaced: string | null;
}

export interface InstallReport {
  source: string;
  prefix: string;
  /** Whether an earlier installation at prefix was replaced. */
  replaced: boolean;
  /** Launchers (bin/NAME shell scripts) rewritten to run from prefix. */
  relocated: string[];
  links: LinkReport[];
  conflist: { path: string; written: boolean; network: string; subnets: string[]; bridge: string | null } | null;
  systemdUnit: string | null;
}

// CNI's rule for network names (libcni ValidateNetworkName), which is also what a file name tolerates.
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The bridge the conflist names: "vx-NAME" when that fits IFNAMSIZ, else none (the plugin derives one). */
export const conflistBridge = (network: string): string | undefined => (`vx-${network}`.length <= 15 ? `vx-${network}` : undefined);

/** Validates --network and --subnet; returns the subnets grouped into range sets by family. */
export function checkNetwork(network: string, subnets: readonly string[]): Array<Array<{ subnet: string }>> {
  if (!NETWORK_NAME.test(network)) throw new UsageError(`--network "${network}" is not a valid network name (letters, digits, "_", ".", "-"; starting with a letter or digit)`);
  const byFamily = new Map<4 | 6, Array<{ subnet: string }>>();
  for (const s of subnets) {
    const cidr = parseCidr(s);
    if (!cidr) throw new UsageError(`--subnet "${s}" is not a CIDR such as ${DEFAULTS.subnet}`);
    const net = networkOf(cidr);
    if (net.ip.value !== cidr.ip.value) throw new UsageError(`--subnet ${s} has host bits set; network is ${formatCidr(net)}`);
    const list = byFamily.get(cidr.ip.family) ?? [];
    list.push({ subnet: s });
    byFamily.set(cidr.ip.family, list);
  }
  const sets = [...byFamily.entries()].sort(([a], [b]) => a - b).map(([, list]) => list);
  try {
    canonicalRangeSets(sets, '--subnet');
  } catch (err) {
    if (err instanceof InvalidNetworkConfig) throw new UsageError(err.message);
    throw err;
  }
  return sets;
}

/** The conflist `install --conflist` writes: one vxnet plugin with vxnet-ipam. */
export function conflistFor(network: string, subnets: readonly string[]): Record<string, unknown> {
  const sets = checkNetwork(network, subnets);
  const bridge = conflistBridge(network);
  const routes = sets.map((set) => ({ dst: set[0].subnet.includes(':') ? '::/0' : '0.0.0.0/0' }));
  return {
    cniVersion: '1.0.0',
    name: network,
    plugins: [{
      type: 'vxnet',
      ...(bridge ? { bridge } : {}),
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'vxnet-ipam', ranges: sets, routes },
    }],
  };
}

function io<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new IoFailure(`cannot ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const lstatOrUndefined = (p: string): fs.Stats | undefined => {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
};

/** Absent, an empty directory, a symlink (replacing it leaves its target alone) or a vxnet tree. */
function replaceable(dir: string): boolean {
  const st = lstatOrUndefined(dir);
  if (!st || st.isSymbolicLink()) return true;
  if (!st.isDirectory()) return false;
  return fs.readdirSync(dir).length === 0 || lstatOrUndefined(path.join(dir, 'bin', 'vxnetctl')) !== undefined;
}

const isInside = (child: string, parent: string): boolean => child === parent || child.startsWith(parent.endsWith('/') ? parent : parent + '/');

/**
 * scripts/build.mjs makes bin/vxnet and bin/vxnet-ipam /bin/sh launchers that name their dist/
 * by absolute path (VXNET_DIST='...' and the snapshot blob under it): rewrite that path to
 * prefix in the copy. Bundles (a node shebang) find their directory by themselves.
 */
export function relocateLaunchers(binDir: string, prefix: string): string[] {
  const out: string[] = [];
  for (const name of [...CNI_PLUGINS, ...COMMANDS]) {
    const file = path.join(binDir, name);
    const text = fs.readFileSync(file, 'utf8');
    if (!text.startsWith('#!/bin/sh')) continue;
    const built = /VXNET_DIST='([^']+)'/.exec(text)?.[1];
    if (built === undefined || built === prefix) continue;
    const rewritten = text.split(`'${built}'`).join(`'${prefix}'`).split(`'${built}/`).join(`'${prefix}/`);
    const mode = fs.statSync(file).mode & 0o7777;
    fs.writeFileSync(file, rewritten, { mode });
    fs.chmodSync(file, mode);
    out.push(name);
  }
  return out;
}

/** Points linkPath at target, replacing a file or link there (not a directory). */
function replaceLink(linkPath: string, target: string): LinkReport {
  const existing = lstatOrUndefined(linkPath);
  if (existing?.isDirectory()) throw new IoFailure(`cannot link ${linkPath}: it is a directory`);
  const replaced = !existing ? null : existing.isSymbolicLink() ? `link to ${fs.readlinkSync(linkPath)}` : 'file';
  io(`create ${path.dirname(linkPath)}`, () => fs.mkdirSync(path.dirname(linkPath), { recursive: true }));
  const tmp = `${linkPath}.vxnet-new-${process.pid}`;
  io(`link ${linkPath} -> ${target}`, () => {
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(target, tmp);
    try {
      fs.renameSync(tmp, linkPath);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  });
  return { path: linkPath, target, replaced };
}

/** Copies source to prefix (through prefix.new), links the binaries, writes the conflist. */
export function installFiles(req: InstallRequest): InstallReport {
  const source = path.resolve(req.source);
  const prefix = path.resolve(req.prefix);
  for (const name of [...CNI_PLUGINS, ...COMMANDS]) {
    const file = path.join(source, 'bin', name);
    if (!lstatOrUndefined(file)?.isFile()) {
      throw new IoFailure(`${file} is missing: install copies a built dist/ directory (run npm run build, then dist/bin/vxnetctl install)`);
    }
  }
  if (prefix === path.parse(prefix).root) throw new UsageError('--prefix must not be the root directory');
  // The launchers quote it in single quotes for /bin/sh.
  if (/['\n]/.test(prefix)) throw new UsageError(`--prefix ${JSON.stringify(prefix)} must not contain quotes or newlines`);
  if (prefix !== source && (isInside(prefix, source) || isInside(source, prefix))) {
    throw new UsageError(`--prefix ${prefix} overlaps the directory being installed (${source})`);
  }
  const conflist = req.conflist && { ...req.conflist, json: conflistFor(req.conflist.network, req.conflist.subnets) };
  const linkPlan: Array<[string, string]> = [
    ...CNI_PLUGINS.map((name): [string, string] => [path.join(path.resolve(req.cniBinDir), name), path.join(prefix, 'bin', name)]),
    ...COMMANDS.map((name): [string, string] => [path.join(path.resolve(req.binDir), name), path.join(prefix, 'bin', name)]),
  ];
  for (const [link] of linkPlan) {
    if (lstatOrUndefined(link)?.isDirectory()) throw new IoFailure(`cannot link ${link}: it is a directory`);
  }

  // 1. The tree: copy beside, point its launchers at prefix, then swap. Only directories that
  // are vxnet installations are ever moved or removed: --prefix /usr/local by mistake must fail.
  const staged = `${prefix}.new`;
  const old = `${prefix}.old`;
  for (const dir of [prefix, staged, old]) {
    if (!replaceable(dir)) throw new IoFailure(`${dir} exists and is not a vxnet installation (no bin/vxnetctl in it); refusing to replace it (remove it by hand if it is a leftover of an earlier install)`);
  }
  io(`create ${path.dirname(prefix)}`, () => fs.mkdirSync(path.dirname(prefix), { recursive: true }));
  let relocated: string[];
  try {
    io(`copy ${source} to ${staged}`, () => {
      fs.rmSync(staged, { recursive: true, force: true });
      fs.cpSync(source, staged, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    });
    relocated = io(`rewrite the launchers in ${staged}/bin`, () => relocateLaunchers(path.join(staged, 'bin'), prefix));
  } catch (err) {
    fs.rmSync(staged, { recursive: true, force: true });
    throw err;
  }
  const replaced = lstatOrUndefined(prefix) !== undefined;
  io(`move ${staged} to ${prefix}`, () => {
    if (replaced) {
      fs.rmSync(old, { recursive: true, force: true });
      fs.renameSync(prefix, old);
    }
    try {
      fs.renameSync(staged, prefix);
    } catch (err) {
      if (replaced) fs.renameSync(old, prefix);
      throw err;
    }
    if (replaced) fs.rmSync(old, { recursive: true, force: true });
  });

  // 2. The links.
  const links = linkPlan.map(([link, target]) => replaceLink(link, target));

  // 3. The network config, never over an existing one: it may carry an operator's edits.
  let conflistReport: InstallReport['conflist'] = null;
  if (conflist) {
    const file = path.join(path.resolve(conflist.confDir), `10-${conflist.network}.conflist`);
    const written = lstatOrUndefined(file) === undefined;
    if (written) {
      io(`write ${file}`, () => {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        const tmp = `${file}.vxnet-new-${process.pid}`;
        fs.writeFileSync(tmp, JSON.stringify(conflist.json, null, 2) + '\n', { mode: 0o644 });
        fs.renameSync(tmp, file);
      });
    }
    conflistReport = { path: file, written, network: conflist.network, subnets: [...conflist.subnets], bridge: conflistBridge(conflist.network) ?? null };
  }
  // 4. The systemd unit (shipped in dist/deploy by the build), pointing at the linked vxnetd.
  let systemdUnit: string | null = null;
  if (req.systemdDir) {
    const unitSource = path.join(prefix, 'deploy', 'vxnetd.service');
    const file = path.join(path.resolve(req.systemdDir), 'vxnetd.service');
    io(`write ${file}`, () => {
      const unit = fs.readFileSync(unitSource, 'utf8').replace(/\/usr\/local\/bin\/vxnetd/g, path.join(path.resolve(req.binDir), 'vxnetd'));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, unit, { mode: 0o644 });
    });
    systemdUnit = file;
    // The edge balancer's unit beside it, not enabled: only edge hosts run vxnet-lb.
    const lbFile = path.join(path.resolve(req.systemdDir), 'vxnet-lb.service');
    io(`write ${lbFile}`, () => {
      const unit = fs.readFileSync(path.join(prefix, 'deploy', 'vxnet-lb.service'), 'utf8').replace(/\/usr\/local\/bin\/vxnet-lb/g, path.join(path.resolve(req.binDir), 'vxnet-lb'));
      fs.writeFileSync(lbFile, unit, { mode: 0o644 });
    });
  }
  return { source, prefix, replaced, relocated, links, conflist: conflistReport, systemdUnit };
}

/** vxnetd's default DNS addresses (bin/vxnetd/flags.ts DEFAULT_DNS_ADDRESSES). */
export const DOCKER_DNS = ['198.51.100.1', '198.51.100.2', '198.51.100.3'] as const;
export const DEFAULT_DOCKER_CONFIG = '/etc/docker/daemon.json';

/** daemon.json's text with "dns" set, every other key kept; throws IoFailure on text that is not a JSON object. Pure. */
export function mergeDockerDns(text: string | undefined, file: string): string {
  let conf: unknown = {};
  if (text !== undefined && text.trim() !== '') {
    try {
      conf = JSON.parse(text);
    } catch (err) {
      throw new IoFailure(`${file} is not valid JSON (${(err as Error).message}); fix it by hand, it was left as it is`);
    }
  }
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) throw new IoFailure(`${file} is not a JSON object; fix it by hand, it was left as it is`);
  return JSON.stringify({ ...(conf as Record<string, unknown>), dns: [...DOCKER_DNS] }, null, 2) + '\n';
}

/** Sets "dns" in Docker's daemon.json (through a temporary file and a rename). */
export function writeDockerDns(file: string): void {
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new IoFailure(`cannot read ${file}: ${(err as Error).message}`);
  }
  const merged = mergeDockerDns(text, file);
  io(`write ${file}`, () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.vxnet-new-${process.pid}`;
    fs.writeFileSync(tmp, merged, { mode: 0o644 });
    fs.renameSync(tmp, file);
  });
}

export async function runInstall(values: Values, ctx: Ctx): Promise<void> {
  const wantsConflist = values.conflist === true;
  for (const name of ['conf-dir', 'network', 'subnet'] as const) {
    if (values[name] !== undefined && !wantsConflist) throw new UsageError(`--${name} goes with --conflist (see vxnetctl install --help)`);
  }
  if (values['systemd-dir'] !== undefined && values.systemd !== true) throw new UsageError('--systemd-dir goes with --systemd (see vxnetctl install --help)');
  if (values['docker-config'] !== undefined && values['docker-dns'] !== true) throw new UsageError('--docker-config goes with --docker-dns (see vxnetctl install --help)');
  const report = installFiles({
    source: ctx.distDir,
    prefix: values.prefix ?? DEFAULTS.prefix,
    cniBinDir: values['cni-bin-dir'] ?? DEFAULTS.cniBinDir,
    binDir: values['bin-dir'] ?? DEFAULTS.binDir,
    ...(values.systemd === true ? { systemdDir: values['systemd-dir'] ?? DEFAULTS.systemdDir } : {}),
    ...(wantsConflist ? {
      conflist: {
        confDir: values['conf-dir'] ?? DEFAULTS.confDir,
        network: values.network ?? DEFAULTS.network,
        subnets: values.subnet && values.subnet.length > 0 ? values.subnet : [DEFAULTS.subnet],
      },
    } : {}),
  });
  const dockerConfig = values['docker-dns'] === true ? values['docker-config'] ?? DEFAULT_DOCKER_CONFIG : undefined;
  if (dockerConfig !== undefined) writeDockerDns(dockerConfig);
  if (ctx.json) {
    writeJson(ctx, { ...report, dockerDns: dockerConfig ?? null });
    return;
  }
  const lines = [`installed ${report.source} to ${report.prefix}${report.replaced ? ' (replaced the previous installation)' : ''}`];
  if (report.relocated.length > 0) lines.push(`pointed the launchers ${report.relocated.join(', ')} at ${report.prefix}`);
  for (const l of report.links) {
    const was = l.replaced === null ? '' : l.replaced === `link to ${l.target}` ? ' (unchanged)' : ` (replaced ${l.replaced})`;
    lines.push(`linked ${l.path} -> ${l.target}${was}`);
  }
  const c = report.conflist;
  if (c) {
    lines.push(c.written
      ? `wrote ${c.path} (network ${c.network}, subnet ${c.subnets.join(', ')}${c.bridge ? `, bridge ${c.bridge}` : ''})`
      : `kept the existing ${c.path} (not overwritten; remove it to have install write a new one)`);
  }
  if (dockerConfig !== undefined) lines.push(`set "dns": [${DOCKER_DNS.join(', ')}] in ${dockerConfig} (restart dockerd for it to apply)`);
  if (report.systemdUnit) lines.push(`wrote ${report.systemdUnit} (then: systemctl daemon-reload && systemctl enable --now vxnetd)`, `wrote ${path.join(path.dirname(report.systemdUnit), 'vxnet-lb.service')} (edge hosts: systemctl enable --now vxnet-lb)`);
  ctx.stdout(lines.join('\n') + '\n');
}
