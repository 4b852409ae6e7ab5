// vxnetd: the long-lived daemon. It serves Docker's remote NetworkDriver and IpamDriver
// (cnm/driver.ts) on a unix socket, and follows the Docker API to learn names and release
// what Docker forgot. With --store it also runs the overlay agent (overlay/service.ts) beside
// the driver, started in the background and retried while etcd is unreachable (OverlayRunner). All state is in the IPAM store, vxnetd's network records and the kernel,
// so a restart (or kill -9) loses nothing and running containers keep their connectivity.
import { parseArgs } from 'node:util';
import type { Server } from 'node:http';
import * as net from 'node:net';
import { DEFAULT_DATA_DIR, closeIdleEmbeddedStores, keepEmbeddedStoresOpen, openStore } from '../ipam/store';
import { parseEtcdUrl } from '../etcd/url';
import type { IpamStore } from '../ipam/store/types';
import { DEFAULT_CNI_SOCKET } from '../handoff/protocol';
import type { CniService } from '../handoff/service';
import { type Cidr, contains, parseIp } from '../ipam/addr';
import { asVxnetError } from '../lib/errors';
import { Level, Logger, createLogger } from '../lib/log';
import { VERSION } from '../lib/version';
import { kernelDatapath, type Datapath } from '../datapath/docker';
import { dockerApi, type DockerApi, type DockerEvent, type EventStream } from '../cnm/docker';
import { Driver } from '../cnm/driver';
import { createApp, listenUnix, pluginNameOf } from '../cnm/server';
import { NetworkRecords } from '../cnm/state';
import { DEFAULT_LOCAL_DIR } from '../overlay/local';
import { parseOverlayNetwork } from '../overlay/plan';
import type { OverlayService, OverlayServiceConfig } from '../overlay/service';

export const DEFAULT_SOCKET = '/run/docker/plugins/vxnet.sock';
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** Where the agent writes the overlay state the CNI plugin reads (overlay/local.ts). */
export const DEFAULT_OVERLAY_DIR = DEFAULT_LOCAL_DIR;
/** How long vxnetd keeps a CNI network's IPAM database open after a handed-off call. */
const STORE_IDLE_MS = 5 * 60_000;

export const HELP = `vxnetd ${VERSION}: the vxnet host daemon: Docker's remote network and IPAM driver,
and with --store the host's overlay agent (VXLAN across hosts, etcd as the cluster store).

Usage: vxnetd [options]

Options:
  --socket PATH             Unix socket Docker talks to (default ${DEFAULT_SOCKET}).
                            Docker names the plugin after the file: vxnet.sock is used with
                            "docker network create -d vxnet --ipam-driver vxnet". The directory is
                            created with mode 0700 when missing; the socket is mode 0600.
  --cni-socket PATH         Where vxnetd takes whole CNI calls from the vxnet plugin (default
                            ${DEFAULT_CNI_SOCKET}; "" for none): a plugin of the same build in the
                            same network namespace hands its call here and skips loading its own
                            code, so an ADD costs Node's start-up plus vxnetd's work on warm code.
                            The plugin does the work itself when the socket is absent.
  --data-dir DIR            vxnet's data directory (default ${DEFAULT_DATA_DIR}, or $VXNET_DATA_DIR):
                            the IPAM store shared with the CNI plugin (use the same directory as the
                            CNI configs' ipam.dataDir), and vxnetd's records under DIR/docker.
  --docker-socket PATH      Docker API socket (default ${DEFAULT_DOCKER_SOCKET}, or $DOCKER_HOST when it
                            is unix://PATH). Used to learn network and container names and to
                            release addresses of containers Docker removed without telling.
  --no-docker               Do not use the Docker API: networks then need -o network=NAME, names of
                            containers are not recorded, and nothing is reconciled.
  --reconcile-interval SEC  Also reconcile with Docker every SEC seconds (default 60; 0: only at start,
                            on Docker events and after reconnecting to Docker).
  --reconcile-grace SEC     Release an address Docker no longer lists an endpoint for once it is SEC
                            seconds old (default 60; an address Docker reserved and never tied to an
                            endpoint: 2 x SEC). Keeps containers that are starting safe.
  --store etcd://HOST:PORT[,HOST:PORT...]
                            The cluster store (or $VXNET_STORE): runs the overlay agent next to the
                            Docker driver. It registers this host under a lease, leases a block of
                            each overlay network, programs VXLAN tunnels to every other host, and
                            revokes the lease on SIGTERM/SIGINT. etcd unreachable at start is
                            logged and retried, never fatal. Default: none (one host; the Docker
                            driver's IPAM store is the embedded one in either case).
  --overlay-network SPEC    An overlay network this host joins (repeat for several); needs --store.
                            SPEC is NAME alone: the network as defined in the cluster (vxnetctl
                            network create); or NAME,vni=N,subnet=CIDR[,subnet=CIDR6][,block=LEN]
                            [,block6=LEN][,mtu=N][,port=N] (block: the prefix length of each host's
                            block, default /24 for IPv4, /64 for IPv6; mtu default: underlay's
                            minus 50), or the same as a JSON object (name, vni, subnets,
                            blockPrefix, blockPrefix6, mtu, port), defining it if the cluster
                            does not (a definition already in the cluster wins). Without any
                            --overlay-network, the host joins every network defined at start.
  --host-id ID              This host's identity in the cluster (default /etc/machine-id, else the
                            hostname). A host back with the same id gets its own blocks back.
  --underlay ADDR           The address peers reach this host's VTEP at (default: the address of
                            the default route's interface).
  --lease-ttl SEC           TTL of the host's lease (default 10): a host that stops renewing
                            leaves its peers after SEC seconds.
  --block-grace SEC         How long an expired host's blocks stay reserved for it (default 600).
  --overlay-dir DIR         Where the overlay state the CNI plugin reads is written
                            (default ${DEFAULT_OVERLAY_DIR}). The Docker driver reads it too: a
                            Docker network whose --subnet is an overlay network's IPv4 subnet is
                            that overlay network (addresses from this host's block).
  --log-level LEVEL         debug, info, warn or error (default info, or $VXNET_LOG_LEVEL). Logs are
                            JSON lines on stderr; debug logs every call and reply.
  -h, --help                Show this help.
  --version                 Print the version.

Docker network options (docker network create -d vxnet --ipam-driver vxnet --subnet CIDR -o K=V NAME):
  network=NAME   the vxnet network this Docker network is (default: the Docker network's name). A
                 CNI network config with the same "name" is the same network: one bridge, one pool.
  bridge=NAME    Linux bridge (default: the network's existing vxnet bridge, else vx-<network>).
  mtu=N          MTU of the bridge and the containers' interfaces (576-65535).
  ipMasq=BOOL    masquerade traffic leaving the subnet (default true; false for --internal).
  natTable=NAME  nftables table holding the masquerade rule (default vxnet).
  Docker's bridge-driver spellings work too: com.docker.network.bridge.name,
  com.docker.network.driver.mtu, com.docker.network.bridge.enable_ip_masquerade.
  IPv4 only; --subnet is required; --gateway and --ip-range are honoured; --ip at run time too.
`;

/** The overlay agent's settings (overlay/service.ts's config, minus the test-only fields). */
export interface OverlayFlags {
  readonly store: string;
  /** parseOverlayNetwork's input, validated. */
  readonly networks: readonly Record<string, unknown>[];
  readonly hostId?: string;
  readonly underlay?: string;
  readonly ttlSeconds: number;
  readonly graceMs: number;
  readonly localDir: string;
}

export interface DaemonConfig {
  readonly socket: string;
  /** The overlay agent's local state: the Docker driver attaches to overlay networks found there. */
  readonly overlayDir?: string;
  /** Undefined or empty: no CNI hand-off socket. */
  readonly cniSocket?: string;
  /** Undefined: no --store, no overlay agent. */
  readonly overlay?: OverlayFlags;
  readonly dataDir: string;
  readonly dockerSocket: string | undefined;
  readonly reconcileIntervalMs: number;
  readonly reconcileGraceMs: number;
  readonly logLevel: Level;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

/** Parses vxnetd's command line; undefined when it printed help or the version. Pure apart from env. */
export function parseDaemonArgs(argv: readonly string[], env: NodeJS.ProcessEnv): DaemonConfig | 'help' | 'version' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        socket: { type: 'string' }, 'cni-socket': { type: 'string' }, 'data-dir': { type: 'string' }, 'docker-socket': { type: 'string' },
        'no-docker': { type: 'boolean' }, 'reconcile-interval': { type: 'string' }, 'reconcile-grace': { type: 'string' }, 'log-level': { type: 'string' },
        store: { type: 'string' }, 'overlay-network': { type: 'string', multiple: true }, 'host-id': { type: 'string' }, underlay: { type: 'string' },
        'lease-ttl': { type: 'string' }, 'block-grace': { type: 'string' }, 'overlay-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.version) return 'version';
  const level = (v['log-level'] ?? env.VXNET_LOG_LEVEL ?? 'info') as Level;
  if (!LEVELS.includes(level)) throw new UsageError(`--log-level ${JSON.stringify(level)}: must be one of ${LEVELS.join(', ')}`);
  const intervalText = v['reconcile-interval'] ?? '60';
  if (!/^\d+$/.test(intervalText)) throw new UsageError(`--reconcile-interval ${JSON.stringify(intervalText)}: must be a whole number of seconds`);
  const graceText = v['reconcile-grace'] ?? '60';
  if (!/^\d+$/.test(graceText)) throw new UsageError(`--reconcile-grace ${JSON.stringify(graceText)}: must be a whole number of seconds`);
  const socket = v.socket ?? DEFAULT_SOCKET;
  if (!socket.startsWith('/') || !socket.endsWith('.sock')) throw new UsageError(`--socket ${JSON.stringify(socket)}: must be an absolute path ending in .sock (Docker names the plugin after it)`);
  const cniSocket = v['cni-socket'] ?? DEFAULT_CNI_SOCKET;
  if (cniSocket !== '' && !cniSocket.startsWith('/')) throw new UsageError(`--cni-socket ${JSON.stringify(cniSocket)}: must be an absolute path (or "" for none)`);
  const dataDir = v['data-dir'] ?? (env.VXNET_DATA_DIR || DEFAULT_DATA_DIR);
  if (!dataDir.startsWith('/')) throw new UsageError(`--data-dir ${JSON.stringify(dataDir)}: must be an absolute path`);
  let dockerSocket: string | undefined;
  if (!v['no-docker']) {
    const fromEnv = env.DOCKER_HOST?.startsWith('unix://') ? env.DOCKER_HOST.slice('unix://'.length) : undefined;
    dockerSocket = v['docker-socket'] ?? fromEnv ?? DEFAULT_DOCKER_SOCKET;
  } else if (v['docker-socket'] !== undefined) {
    throw new UsageError('--docker-socket and --no-docker exclude each other');
  }
  const overlay = parseOverlayFlags(v, env);
  const overlayDir = v['overlay-dir'] ?? DEFAULT_OVERLAY_DIR;
  if (!overlayDir.startsWith('/')) throw new UsageError(`--overlay-dir ${JSON.stringify(overlayDir)}: must be an absolute path`);
  return {
    overlayDir,
    socket, ...(cniSocket ? { cniSocket } : {}), dataDir, dockerSocket, reconcileIntervalMs: Number(intervalText) * 1000, reconcileGraceMs: Number(graceText) * 1000, logLevel: level,
    ...(overlay ? { overlay } : {}),
  };
}

const wholeSeconds = (flag: string, text: string, min: number): number => {
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`${flag} ${JSON.stringify(text)}: must be a whole number of seconds, at least ${min}`);
  return Number(text);
};

/**
 * One --overlay-network: `NAME` (join the cluster's definition: returns {name} alone), or
 * `NAME,vni=N,subnet=CIDR[,subnet=CIDR][,block=LEN][,block6=LEN][,mtu=N][,port=N]` or a JSON
 * object; returns parseOverlayNetwork's input (validated by it). Throws UsageError.
 */
export function parseOverlayNetworkFlag(text: string): Record<string, unknown> {
  const bad = (why: string): UsageError => new UsageError(`--overlay-network ${JSON.stringify(text)}: ${why}`);
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(text.trim())) return { name: text.trim() };
  let input: Record<string, unknown>;
  if (text.trim().startsWith('{')) {
    try {
      input = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw bad(`not valid JSON (${(err as Error).message})`);
    }
  } else {
    const [name, ...pairs] = text.split(',').map((p) => p.trim());
    const subnets: string[] = [];
    input = { name };
    const numbers: Record<string, string> = { vni: 'vni', block: 'blockPrefix', block6: 'blockPrefix6', mtu: 'mtu', port: 'port' };
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      const value = eq < 0 ? '' : pair.slice(eq + 1);
      if (key === 'subnet' && value !== '') subnets.push(value);
      else if (numbers[key] !== undefined && /^\d+$/.test(value)) input[numbers[key]] = Number(value);
      else if (numbers[key] !== undefined) throw bad(`${key}=${JSON.stringify(value)} is not a number`);
      else throw bad(`unknown field ${JSON.stringify(pair)} (expected NAME,vni=N,subnet=CIDR[,subnet=CIDR][,block=LEN][,block6=LEN][,mtu=N][,port=N])`);
    }
    if (subnets.length > 0) input.subnets = subnets;
  }
  try {
    parseOverlayNetwork(input);
  } catch (err) {
    throw bad((err as Error).message);
  }
  return input;
}

interface OverlayValues {
  readonly store?: string;
  readonly 'overlay-network'?: string[];
  readonly 'host-id'?: string;
  readonly underlay?: string;
  readonly 'lease-ttl'?: string;
  readonly 'block-grace'?: string;
  readonly 'overlay-dir'?: string;
}

function parseOverlayFlags(v: OverlayValues, env: NodeJS.ProcessEnv): OverlayFlags | undefined {
  const store = v.store ?? (env.VXNET_STORE || undefined);
  if (store === undefined || store === '') {
    const given = (['overlay-network', 'host-id', 'underlay', 'lease-ttl', 'block-grace'] as const).find((k) => v[k] !== undefined);
    if (given) throw new UsageError(`--${given} needs --store (the overlay runs only with a cluster store)`);
    return undefined;
  }
  try {
    parseEtcdUrl(store);
  } catch (err) {
    throw new UsageError(`--store: ${(err as Error).message}`);
  }
  const networks = (v['overlay-network'] ?? []).map(parseOverlayNetworkFlag);
  const names = networks.map((n) => n.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`--overlay-network: network ${JSON.stringify(dup)} given twice`);
  if (v['host-id'] !== undefined && !/^[\x21-\x7e]{1,253}$/.test(v['host-id'])) {
    throw new UsageError(`--host-id ${JSON.stringify(v['host-id'])}: 1-253 printable characters, no spaces`);
  }
  if (v.underlay !== undefined && net.isIP(v.underlay) === 0) throw new UsageError(`--underlay ${JSON.stringify(v.underlay)}: not an IP address`);
  const localDir = v['overlay-dir'] ?? DEFAULT_OVERLAY_DIR;
  if (!localDir.startsWith('/')) throw new UsageError(`--overlay-dir ${JSON.stringify(localDir)}: must be an absolute path`);
  return {
    store, networks, localDir,
    ...(v['host-id'] !== undefined ? { hostId: v['host-id'] } : {}),
    ...(v.underlay !== undefined ? { underlay: v.underlay } : {}),
    ttlSeconds: wholeSeconds('--lease-ttl', v['lease-ttl'] ?? '10', 1),
    graceMs: wholeSeconds('--block-grace', v['block-grace'] ?? '600', 0) * 1000,
  };
}

/** Follows Docker's events (reconnecting with backoff) and reconciles on start, events and a timer. */
class DockerWatcher {
  private stream: EventStream | undefined;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private intervalTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private backoffMs = 500;
  private connectedOnce = false;

  constructor(private readonly docker: DockerApi, private readonly driver: Driver, private readonly plugin: string,
    private readonly log: Logger, private readonly intervalMs: number) {}

  start(): void {
    void this.connect();
    if (this.intervalMs > 0) this.intervalTimer = setInterval(() => this.reconcileNow(), this.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    this.stream?.close();
    for (const t of [this.reconnectTimer, this.intervalTimer, this.reconcileTimer]) if (t) clearTimeout(t);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      this.stream = await this.docker.events((e) => this.onEvent(e), (err) => this.onEnd(err));
      if (!this.connectedOnce || this.backoffMs > 500) this.log.info('following Docker events');
      this.connectedOnce = true;
      this.backoffMs = 500;
      this.reconcileNow();
    } catch (err) {
      this.log.warn('cannot reach the Docker API; retrying', { error: (err as Error).message, retryInMs: this.backoffMs });
      this.schedule();
    }
  }

  private onEnd(err?: Error): void {
    if (this.stopped) return;
    this.log.warn('Docker event stream ended; reconnecting', { error: err?.message });
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.reconnectTimer = setTimeout(() => { void this.connect(); }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
  }

  private onEvent(e: DockerEvent): void {
    const ours = e.attributes.type === this.plugin;
    if (e.type === 'network' && ours && e.action === 'create') {
      void this.driver.learnName(e.id, e.attributes.name).catch((err: unknown) =>
        this.log.warn('cannot bind a new docker network', { networkId: e.id.slice(0, 12), error: (err as Error).message }));
    } else if (e.type === 'network' && ours && e.action === 'connect') {
      void this.driver.refreshNames(e.id).catch((err: unknown) =>
        this.log.debug('cannot refresh container names', { networkId: e.id.slice(0, 12), error: (err as Error).message }));
    } else if ((e.type === 'network' && (e.action === 'disconnect' || e.action === 'destroy')) || (e.type === 'container' && e.action === 'destroy')) {
      this.reconcileSoon();
    }
  }

  /** Coalesces bursts of events (a `docker rm` of many containers) into one reconcile. */
  private reconcileSoon(): void {
    if (this.reconcileTimer || this.stopped) return;
    this.reconcileTimer = setTimeout(() => { this.reconcileTimer = undefined; this.reconcileNow(); }, 1000);
  }

  reconcileNow(): void {
    if (this.stopped) return;
    if (this.running) { this.again = true; return; }
    this.running = (async () => {
      try {
        const r = await this.driver.reconcile();
        if (r.released.length || r.named || r.networksRemoved.length || r.orphansRemoved.length) {
          this.log.info('reconciled with Docker', { checked: r.checked, released: r.released.length, named: r.named, networksRemoved: r.networksRemoved.length, orphansRemoved: r.orphansRemoved.length });
        }
      } catch (err) {
        this.log.warn('reconcile with Docker failed', { error: (err as Error).message });
      }
    })().finally(() => {
      this.running = undefined;
      if (this.again) { this.again = false; this.reconcileNow(); }
    });
  }
}

/**
 * The overlay agent beside the Docker driver: started in the background, so vxnetd serves
 * Docker whatever etcd does; a failed start (etcd unreachable, no default route yet) is
 * logged and tried again with backoff (1 s doubling to 30 s). stop() waits (a few seconds at
 * most) for a start in progress, then stops the agent and revokes its lease.
 */
export class OverlayRunner {
  private service: OverlayService | undefined;
  private starting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private backoffMs: number;
  private readonly listeners: Array<(s: OverlayService) => void> = [];

  constructor(private readonly config: OverlayServiceConfig, private readonly log: Logger, initialBackoffMs = 1000,
    private readonly start: (c: OverlayServiceConfig, log: Logger) => Promise<OverlayService> = defaultStart) {
    this.backoffMs = initialBackoffMs;
  }

  run(): void {
    if (this.stopped || this.starting) return;
    this.starting = (async () => {
      try {
        const svc = await this.start(this.config, this.log);
        if (this.stopped) {
          // stop() gave up waiting for this start: undo it now.
          await svc.stop({ revoke: true }).catch(() => undefined);
          return;
        }
        this.service = svc;
        this.log.info('overlay agent running', { hostId: svc.hostId, networks: svc.agent.networks });
        for (const l of this.listeners.splice(0)) l(svc);
      } catch (err) {
        if (this.stopped) return;
        this.log.warn('overlay agent cannot start; retrying', { error: asVxnetError(err).message, retryInMs: this.backoffMs });
        this.timer = setTimeout(() => { this.timer = undefined; this.run(); }, this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
      }
    })().finally(() => { this.starting = undefined; });
  }

  /** The running service, once started (tests). */
  get current(): OverlayService | undefined {
    return this.service;
  }

  /** Resolves once the agent runs. */
  ready(): Promise<OverlayService> {
    if (this.service) return Promise.resolve(this.service);
    return new Promise((resolve) => this.listeners.push(resolve));
  }

  /** Stops the agent; a start still in progress (etcd slow to answer) is waited for up to waitMs. */
  async stop(waitMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.starting) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.starting, new Promise<void>((r) => { timer = setTimeout(r, waitMs); })]);
      clearTimeout(timer);
    }
    const svc = this.service;
    this.service = undefined;
    if (svc) {
      await svc.stop({ revoke: true });
      this.log.info('overlay agent stopped; lease revoked');
    }
  }
}

async function defaultStart(c: OverlayServiceConfig, log: Logger): Promise<OverlayService> {
  // Required here, not imported: etcd3 and gRPC load only when --store asks for them.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startOverlayService } = require('../overlay/service') as typeof import('../overlay/service');
  return startOverlayService(c, log);
}

export interface Daemon {
  readonly server: Server;
  readonly driver: Driver;
  /** The overlay agent's runner, with --store. */
  readonly overlay: OverlayRunner | undefined;
  stop(): Promise<void>;
}

/** Addresses held per block of an overlay network in this host's IPAM store. */
async function blockUsage(store: IpamStore, network: string, blocks: readonly Cidr[]): Promise<number[]> {
  const held = await store.view((tx) => tx.list({ network }));
  return blocks.map((b) => held.filter((a) => { const ip = parseIp(a.address); return ip !== undefined && contains(b, ip); }).length);
}

/** Starts vxnetd; resolves once it is listening. */
export async function startDaemon(config: DaemonConfig, o: { log?: Logger; datapath?: Datapath; docker?: DockerApi } = {}): Promise<Daemon> {
  const log = o.log ?? createLogger('vxnetd', config.logLevel);
  const plugin = pluginNameOf(config.socket);
  const store = openStore({ dataDir: config.dataDir });
  const records = new NetworkRecords(config.dataDir);
  records.load((file, err) => log.error('unreadable network record; ignored', { file, error: err.message }));
  const docker = o.docker ?? (config.dockerSocket ? dockerApi(config.dockerSocket) : undefined);
  const driver = new Driver({ store, records, datapath: o.datapath ?? kernelDatapath, docker, log, pluginName: plugin,
    ...(config.overlayDir ?? config.overlay?.localDir ? { overlayDir: config.overlayDir ?? config.overlay?.localDir } : {}),
    endpointGraceMs: config.reconcileGraceMs, pendingGraceMs: 2 * config.reconcileGraceMs });
  const app = createApp(driver.methods, log);
  const server = await listenUnix(app, config.socket);
  log.info('vxnetd listening', {
    version: VERSION, socket: config.socket, plugin, store: store.description, networks: records.all().length,
    docker: config.dockerSocket ?? null,
  });
  let cni: CniService | undefined;
  if (config.cniSocket) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startCniService } = require('../handoff/service') as typeof import('../handoff/service');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { vxnetPlugin } = require('../cni/vxnet') as typeof import('../cni/vxnet');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { dispatch } = require('../cni/skel') as typeof import('../cni/skel');
    // A handed-off call then finds its network's database open (the plugin opens and closes it).
    keepEmbeddedStoresOpen(STORE_IDLE_MS);
    try {
      cni = await startCniService({ socketPath: config.cniSocket, run: (env, stdin) => dispatch(env, stdin, vxnetPlugin), log: log.child({ component: 'cni' }) });
    } catch (err) {
      server.close();
      await store.close();
      throw err;
    }
  }
  const watcher = docker ? new DockerWatcher(docker, driver, plugin, log, config.reconcileIntervalMs) : undefined;
  watcher?.start();
  const ov = config.overlay;
  const overlay = ov ? new OverlayRunner({
    store: ov.store, networks: ov.networks, ttlSeconds: ov.ttlSeconds, graceMs: ov.graceMs, localDir: ov.localDir,
    usage: (network, blocks) => blockUsage(store, network, blocks),
    ...(ov.hostId !== undefined ? { hostId: ov.hostId } : {}),
    ...(ov.underlay !== undefined ? { underlay: ov.underlay } : {}),
  }, log.child({ component: 'overlay' })) : undefined;
  if (ov) log.info('starting the overlay agent', { store: ov.store, networks: ov.networks.map((n) => n.name) });
  overlay?.run();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      watcher?.stop();
      await cni?.close();
      await overlay?.stop().catch((err: unknown) => log.warn('stopping the overlay agent failed', { error: (err as Error).message }));
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), 5000);
        server.close(() => { clearTimeout(force); resolve(); });
        server.closeIdleConnections();
      });
      await store.close();
      await closeIdleEmbeddedStores();
      log.info('vxnetd stopped');
    })();
    return stopping;
  };
  return { server, driver, overlay, stop };
}

/** The command line entry: exit 2 on usage errors, 1 when it cannot start. */
export async function main(argv: readonly string[]): Promise<void> {
  let config;
  try {
    config = parseDaemonArgs(argv, process.env);
  } catch (err) {
    process.stderr.write(`vxnetd: ${(err as Error).message}\nTry "vxnetd --help".\n`);
    process.exit(2);
  }
  if (config === 'help') { process.stdout.write(HELP); return; }
  if (config === 'version') { process.stdout.write(`vxnetd ${VERSION}\n`); return; }
  const log = createLogger('vxnetd', config.logLevel);
  let daemon: Daemon;
  try {
    daemon = await startDaemon(config, { log });
  } catch (err) {
    log.error('cannot start', { error: asVxnetError(err).message });
    process.exit(1);
  }
  const onSignal = (signal: string): void => {
    log.info('stopping', { signal });
    void daemon.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  // Keep serving: a bug in one call must not take every network down with it.
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: (err as Error)?.message, stack: (err as Error)?.stack }));
}
