// vxnetd's command line and environment, parsed once into typed values (VxnetdConfig): paths
// checked, numbers as numbers (milliseconds where timers take them), overlay networks as
// OverlayNetwork definitions, the underlay as an Ip, the store as its etcd endpoints. The
// services vxnetd starts take these values and parse nothing again. Pure: the environment is
// an argument.
import { parseArgs } from 'node:util';
import { DEFAULT_PODMAN_SOCKET } from '../../catalog/runtime-metadata';
import { DEFAULT_CNI_SOCKET } from '../../handoff/protocol';
import { type Cidr, type Ip, networkOf, parseCidr, parseIp } from '../../ipam/addr';
import { checkName } from '../../dns/names';
import { DEFAULT_DNS_STATE } from '../../dns/state';
import { DNS_PORT, type HostPort, parseHostPort } from '../../dns/upstreams';
import { DEFAULT_DATA_DIR } from '../../ipam/store';
import { parseEtcdUrl } from '../../etcd/url';
import type { Level } from '../../lib/log';
import { UsageError } from '../../lib/usage';
import { VERSION } from '../../lib/version';
import { DEFAULT_LOCAL_DIR } from '../../overlay/local';
import { type OverlayNetwork, parseOverlayNetwork } from '../../overlay/plan';
import { DEFAULT_BLOCK_GRACE_SECONDS } from '../../overlay/records';
import { DEFAULT_VIP_RANGE, DEFAULT_VIP_RANGE6, parseVipRange } from '../../vip/address';

/** The nftables table of the VIPs (datapath/vip-table.ts's default). */
export const DEFAULT_VIP_TABLE = 'vxnet-vip';

export const DEFAULT_SOCKET = '/run/docker/plugins/vxnet.sock';
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** Where the agent writes the overlay state the CNI plugin reads (overlay/local.ts). */
export const DEFAULT_OVERLAY_DIR = DEFAULT_LOCAL_DIR;
/** DC/OS's three resolver addresses (TEST-NET-2): a container's resolver gets three servers to retry. */
export const DEFAULT_DNS_ADDRESSES = ['198.51.100.1', '198.51.100.2', '198.51.100.3'] as const;
/** The portless bridge that holds the default addresses (this kernel has no dummy links). */
export const DEFAULT_DNS_LINK = 'vxnet-dns';
/** The longest --dns-ttl: a day, already far longer than records that follow containers should live. */
const MAX_DNS_TTL = 86_400;
/** The longest delay a Node timer takes (2^31-1 ms); a longer one fires at once. */
const MAX_TIMER_SECONDS = Math.floor(0x7fffffff / 1000);

export const HELP = `vxnetd ${VERSION}: the vxnet host daemon: Docker's remote network and IPAM driver, the
CNI plugin's hand-off, DNS for every container of this host (and with --store of the cluster) by
name, service and SRV, forwarding other names upstream (unless --no-dns), the HTTP API
(--api-listen, HTTPS with a token off loopback: the operator API /api/v1, Mesos-DNS's /v1
routes, Prometheus /metrics), and with --store the host's overlay agent (VXLAN
across hosts, etcd as the cluster store).

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
                            CNI configs' ipam.dataDir), vxnetd's records under DIR/docker, and
                            without --store the named VIPs' address claims (DIR/vip-claims.json).
  --docker-socket PATH      Docker API socket (default ${DEFAULT_DOCKER_SOCKET}, or $DOCKER_HOST when it
                            is unix://PATH). Used to learn network and container names and to
                            release addresses of containers Docker removed without telling.
  --no-docker               Do not use the Docker API: networks then need -o network=NAME, names of
                            containers are not recorded, and nothing is reconciled.
  --podman-socket PATH      podman's Docker-compatible API socket (default ${DEFAULT_PODMAN_SOCKET},
                            what "systemctl start podman.socket" or "podman system service" opens;
                            "" for none): where the names, labels and exposed ports of CNI
                            containers (podman passes no labels to CNI) are read for DNS, when the
                            socket exists (checked at each lookup).
  --reconcile-interval SEC  Also reconcile with Docker every SEC seconds (default 60, at most
                            ${MAX_TIMER_SECONDS}; 0: only at start, on Docker events and after
                            reconnecting to Docker).
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
  --lease-ttl SEC           TTL of the host's lease (default 10, at most ${MAX_TIMER_SECONDS}): a host
                            that stops renewing leaves its peers after SEC seconds.
  --block-grace SEC         How long an expired host's blocks stay reserved for it (default ${DEFAULT_BLOCK_GRACE_SECONDS}).
  --overlay-dir DIR         Where the overlay state the CNI plugin reads is written
                            (default ${DEFAULT_OVERLAY_DIR}). The Docker driver reads it too: a
                            Docker network whose --subnet is an overlay network's IPv4 subnet is
                            that overlay network (addresses from this host's block).
  --dns-domain NAME         The DNS zone vxnetd serves containers in (default vxnet): NAME.DOMAIN,
                            NAME.NETWORK.DOMAIN, SERVICE.DOMAIN, SRV _SERVICE._tcp.DOMAIN.
  --dns-listen ADDR[:PORT]  Where DNS is served, UDP and TCP (repeatable; port 53 unless given).
                            Default: ${DEFAULT_DNS_ADDRESSES.join(', ')} port 53, which vxnetd adds (as /32) to
                            the link --dns-link, so the host and every container reach them through
                            its default route. Addresses given here are the operator's: not added.
  --dns-link NAME           The link holding the default addresses (default ${DEFAULT_DNS_LINK}): a
                            bridge with no ports, created when missing and left in place when vxnetd
                            stops (as a dummy interface would be), so a restart reuses it.
  --dns-upstream ADDR[:PORT]
                            Where names outside the zone are forwarded (repeatable; port 53 unless
                            given). Default: the nameservers of /etc/resolv.conf read at start,
                            minus vxnetd's own listen addresses.
  --dns-ttl SEC             TTL of the zone's records (default 5, 0 to ${MAX_DNS_TTL}).
  --dns-allow CIDR          Also answer sources in CIDR (repeatable). Always answered: loopback,
                            this host's addresses and vxnet's networks (IPAM pools, overlay and
                            Docker networks, followed as they are created).
  --dns-state PATH          Where vxnetd tells runtimes about its DNS (default ${DEFAULT_DNS_STATE}):
                            written at start, removed at stop; the CNI plugin's result carries
                            its nameservers and search list when the network config has no "dns".
  --no-dns                  Do not serve DNS.
  --vip-range CIDR          Where named VIPs (label VIP_<n>=/NAME:PORT) get their IPv4 address
                            (default ${DEFAULT_VIP_RANGE}, RFC 2544's block: not routed on the
                            internet, rarely a site's own space). The address is derived from
                            the name, the same on every host; collisions are settled by the first
                            claim (in etcd with --store, else in memory). Use the same range on
                            every host. Label VIP_<n>=IP:PORT (or [IPV6]:PORT) takes IP as it is.
  --vip-range6 CIDR         The same for IPv6 (default ${DEFAULT_VIP_RANGE6}, a ULA /64); "" for
                            none (named VIPs are then IPv4 only).
  --vip-table NAME          The nftables table (family inet) holding the VIPs (default ${DEFAULT_VIP_TABLE}).
                            Left in the kernel when vxnetd stops: connections keep being balanced.
  --vip-link NAME           The link the VIP ranges are routed to, so this host's own processes
                            reach VIPs (default: --dns-link's, ${DEFAULT_DNS_LINK}; created when missing).
  --no-vip                  Do not serve VIPs (labels VIP_<n> are then ignored).
  --api-listen ADDR:PORT    vxnetd's HTTP listener (alias: --http-listen): the operator API
                            (/api/v1/..., its OpenAPI document at /api/openapi.json; what
                            \`vxnetctl --api URL\` reads), Mesos-DNS's /v1/... routes with DNS,
                            /v1/endpoints, /v1/vips with VIPs, and the web view at /ui/.
                            Default 127.0.0.1:8123 (Mesos-DNS's port), loopback only; "" for
                            none. Without a token, mutations are taken from loopback clients
                            only. A non-loopback address needs --api-cert, --api-key and a
                            token: vxnetd refuses to start without them.
  --api-cert FILE           The server certificate (PEM, the chain after it) for HTTPS; with
  --api-key FILE            its private key (PEM). Checked at start: unusable files stop vxnetd.
  --api-token-file FILE     The bearer token (the file's first line; or $VXNET_API_TOKEN): every
                            request on the listener then needs "Authorization: Bearer TOKEN"
                            (not the web view's files under /ui/: the page asks for the token).
                            Bodies over 64 KiB get 413; a client gets 10 s for its request head
                            and 30 s for the whole request.
  --log-level LEVEL         debug, info, warn or error (default info, or $VXNET_LOG_LEVEL). Logs are
                            JSON lines on stderr; debug logs every call and reply.
  -h, --help                Show this help.
  --version                 Print the version.

SIGTERM or SIGINT stops the services in the reverse order of their start (a second signal
kills at once). Exit status: 0 after a signal, 1 when vxnetd cannot start, 2 on a usage error.

Docker network options (docker network create -d vxnet --ipam-driver vxnet --subnet CIDR -o K=V NAME):
  network=NAME   the vxnet network this Docker network is (default: the Docker network's name). A
                 CNI network config with the same "name" is the same network: one bridge, one pool.
  bridge=NAME    Linux bridge (default: the network's existing vxnet bridge, else vx-<network>).
  mtu=N          MTU of the bridge and the containers' interfaces (576-65535).
  ipMasq=BOOL    masquerade traffic leaving the subnet (default true; false for --internal).
  natTable=NAME  nftables table holding the masquerade rule (default vxnet).
  Docker's bridge-driver spellings work too: com.docker.network.bridge.name,
  com.docker.network.driver.mtu, com.docker.network.bridge.enable_ip_masquerade.
  --subnet is required (or --ipam-opt network=NAME: the subnets of the existing vxnet network
  NAME); --gateway and --ip-range are honoured; --ip at run time too. Dual stack: --ipv6 with a
  second, IPv6 --subnet; containers get an address of each family (--ip6 for a static one).
`;

/** The overlay agent's settings (overlay/service.ts's config, minus the test-only fields). */
export interface OverlayFlags {
  /** The cluster store's etcd endpoints, host:port. */
  readonly endpoints: readonly string[];
  /** Networks defined on the command line (the cluster's stored definition wins). */
  readonly networks: readonly OverlayNetwork[];
  /** Networks joined by name, as the cluster defines them. Both empty: every defined network. */
  readonly join: readonly string[];
  readonly hostId?: string;
  readonly underlay?: Ip;
  readonly ttlSeconds: number;
  readonly graceMs: number;
}

export interface VxnetdConfig {
  /** The Docker plugin socket: an absolute path ending in .sock. */
  readonly socket: string;
  /** Undefined: no CNI hand-off socket (--cni-socket ""). */
  readonly cniSocket: string | undefined;
  readonly dataDir: string;
  /** Undefined: --no-docker. */
  readonly dockerSocket: string | undefined;
  /** podman's API socket for CNI containers' metadata; undefined: --podman-socket "". */
  readonly podmanSocket: string | undefined;
  readonly reconcileIntervalMs: number;
  readonly reconcileGraceMs: number;
  /** The overlay agent's local state: it writes it, the Docker driver reads it. */
  readonly overlayDir: string;
  /** Undefined: no --store, no overlay agent. */
  readonly overlay: OverlayFlags | undefined;
  /** Undefined: --no-dns. */
  readonly dns: DnsFlags | undefined;
  /** vxnetd's HTTP listener (--api-listen, alias --http-listen): undefined for none. */
  readonly httpListen: HostPort | undefined;
  /** Its TLS and token (api/README.md "Auth"). */
  readonly api: ApiFlags;
  /** Undefined: --no-vip. */
  readonly vip: VipFlags | undefined;
  readonly logLevel: Level;
}

/** vxnetd's DNS service settings (bin/vxnetd/dns.ts). */
export interface DnsFlags {
  readonly domain: string;
  readonly listen: readonly HostPort[];
  /** The link to put the listen addresses on (as /32 or /128): set for the default addresses only. */
  readonly link: string | undefined;
  /** Undefined: the host's /etc/resolv.conf at start, minus the listen addresses. */
  readonly upstreams: readonly HostPort[] | undefined;
  readonly ttl: number;
  /** Sources answered besides loopback, the host's addresses and vxnet's networks. */
  readonly allow: readonly Cidr[];
  readonly stateFile: string;
}

/** The operator API's TLS and bearer token. */
export interface ApiFlags {
  /** PEM files for HTTPS (both or neither); read and checked when the listener starts. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** --api-token-file: read when the listener starts (the first line, trimmed). */
  readonly tokenFile?: string;
  /** $VXNET_API_TOKEN, when no --api-token-file. */
  readonly token?: string;
}

/** vxnetd's VIP service settings (bin/vxnetd/vip.ts). */
export interface VipFlags {
  readonly range: Cidr;
  /** Undefined: --vip-range6 "" (named VIPs IPv4 only). */
  readonly range6: Cidr | undefined;
  readonly table: string;
  /** The link the ranges are routed to. */
  readonly link: string;
}

/** What the command line asks for. */
export type Invocation =
  | { readonly action: 'help' }
  | { readonly action: 'version' }
  | { readonly action: 'run'; readonly config: VxnetdConfig };

const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

const OPTIONS = {
  socket: { type: 'string' }, 'cni-socket': { type: 'string' }, 'data-dir': { type: 'string' }, 'docker-socket': { type: 'string' }, 'podman-socket': { type: 'string' },
  'no-docker': { type: 'boolean' }, 'reconcile-interval': { type: 'string' }, 'reconcile-grace': { type: 'string' }, 'log-level': { type: 'string' },
  store: { type: 'string' }, 'overlay-network': { type: 'string', multiple: true }, 'host-id': { type: 'string' }, underlay: { type: 'string' },
  'lease-ttl': { type: 'string' }, 'block-grace': { type: 'string' }, 'overlay-dir': { type: 'string' },
  'dns-domain': { type: 'string' }, 'dns-listen': { type: 'string', multiple: true }, 'dns-link': { type: 'string' },
  'dns-upstream': { type: 'string', multiple: true }, 'dns-ttl': { type: 'string' }, 'dns-allow': { type: 'string', multiple: true },
  'dns-state': { type: 'string' }, 'no-dns': { type: 'boolean' }, 'http-listen': { type: 'string' },
  'api-listen': { type: 'string' }, 'api-cert': { type: 'string' }, 'api-key': { type: 'string' }, 'api-token-file': { type: 'string' },
  'vip-range': { type: 'string' }, 'vip-range6': { type: 'string' }, 'vip-table': { type: 'string' }, 'vip-link': { type: 'string' }, 'no-vip': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: false }>>['values'];

const isLevel = (s: string): s is Level => (LEVELS as readonly string[]).includes(s);

function wholeSeconds(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER / 1000): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: must be a whole number of seconds, ${max < Number.MAX_SAFE_INTEGER / 1000 ? `${min} to ${max}` : `at least ${min}`}`);
  }
  return Number(text);
}

function absolutePath(flag: string, text: string, why = 'must be an absolute path'): string {
  if (!text.startsWith('/')) throw new UsageError(`${flag} ${JSON.stringify(text)}: ${why}`);
  return text;
}

/** Parses vxnetd's command line and environment; throws UsageError naming the flag. */
export function parseVxnetdArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Invocation {
  let v: Values;
  try {
    v = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (v.help) return { action: 'help' };
  if (v.version) return { action: 'version' };
  const level = v['log-level'] ?? env.VXNET_LOG_LEVEL ?? 'info';
  if (!isLevel(level)) throw new UsageError(`--log-level ${JSON.stringify(level)}: must be one of ${LEVELS.join(', ')}`);
  const socket = v.socket ?? DEFAULT_SOCKET;
  if (!socket.startsWith('/') || !socket.endsWith('.sock')) throw new UsageError(`--socket ${JSON.stringify(socket)}: must be an absolute path ending in .sock (Docker names the plugin after it)`);
  const cniSocket = v['cni-socket'] ?? DEFAULT_CNI_SOCKET;
  if (cniSocket !== '') absolutePath('--cni-socket', cniSocket, 'must be an absolute path (or "" for none)');
  let dockerSocket: string | undefined;
  if (!v['no-docker']) {
    const fromEnv = env.DOCKER_HOST?.startsWith('unix://') ? env.DOCKER_HOST.slice('unix://'.length) : undefined;
    dockerSocket = v['docker-socket'] ?? fromEnv ?? DEFAULT_DOCKER_SOCKET;
  } else if (v['docker-socket'] !== undefined) {
    throw new UsageError('--docker-socket and --no-docker exclude each other');
  }
  const podmanSocket = v['podman-socket'] ?? DEFAULT_PODMAN_SOCKET;
  if (podmanSocket !== '') absolutePath('--podman-socket', podmanSocket, 'must be an absolute path (or "" for none)');
  return {
    action: 'run',
    config: {
      socket,
      cniSocket: cniSocket === '' ? undefined : cniSocket,
      dataDir: absolutePath('--data-dir', v['data-dir'] ?? (env.VXNET_DATA_DIR || DEFAULT_DATA_DIR)),
      dockerSocket,
      podmanSocket: podmanSocket === '' ? undefined : podmanSocket,
      reconcileIntervalMs: wholeSeconds('--reconcile-interval', v['reconcile-interval'] ?? '60', 0, MAX_TIMER_SECONDS) * 1000,
      reconcileGraceMs: wholeSeconds('--reconcile-grace', v['reconcile-grace'] ?? '60', 0) * 1000,
      overlayDir: absolutePath('--overlay-dir', v['overlay-dir'] ?? DEFAULT_OVERLAY_DIR),
      overlay: parseOverlayFlags(v, env),
      dns: parseDnsFlags(v),
      ...parseApiFlags(v, env),
      vip: parseVipFlags(v),
      logLevel: level,
    },
  };
}

export const DEFAULT_HTTP_LISTEN = '127.0.0.1:8123';

const isLoopback = (hp: HostPort): boolean => (hp.ip.family === 4 ? (hp.ip.value >> 24n) === 127n : hp.ip.value === 1n);

/**
 * --api-listen (or its alias --http-listen; both given must agree), --api-cert, --api-key,
 * --api-token-file, $VXNET_API_TOKEN. A non-loopback address needs TLS and a token.
 */
function parseApiFlags(v: Values, env: NodeJS.ProcessEnv): { httpListen: HostPort | undefined; api: ApiFlags } {
  const a = v['api-listen'];
  const h = v['http-listen'];
  if (a !== undefined && h !== undefined && a !== h) throw new UsageError(`--api-listen ${JSON.stringify(a)} and --http-listen ${JSON.stringify(h)}: one listener; give one of them (--http-listen is --api-listen's old name)`);
  const flag = a !== undefined ? '--api-listen' : '--http-listen';
  const t = a ?? h ?? DEFAULT_HTTP_LISTEN;
  let httpListen: HostPort | undefined;
  if (t !== '') {
    const hp = parseHostPort(t, 0);
    if (!hp || hp.port === 0 && !/:0$/.test(t)) throw new UsageError(`${flag} ${JSON.stringify(t)}: expected ADDRESS:PORT (or "" for none)`);
    httpListen = hp;
  }
  const certFile = v['api-cert'];
  const keyFile = v['api-key'];
  const tokenFile = v['api-token-file'];
  for (const [f, p] of [['--api-cert', certFile], ['--api-key', keyFile], ['--api-token-file', tokenFile]] as const) if (p !== undefined) absolutePath(f, p);
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--api-cert and --api-key go together (the server certificate and its private key, PEM)');
  const token = tokenFile === undefined && env.VXNET_API_TOKEN ? env.VXNET_API_TOKEN.trim() : undefined;
  if (!httpListen && (certFile !== undefined || tokenFile !== undefined)) throw new UsageError(`--api-cert, --api-key and --api-token-file need a listener (${flag} is "")`);
  if (httpListen && !isLoopback(httpListen)) {
    const missing = [...(certFile === undefined ? ['--api-cert FILE --api-key FILE (TLS)'] : []), ...(tokenFile === undefined && !token ? ['--api-token-file FILE or $VXNET_API_TOKEN (a bearer token)'] : [])];
    if (missing.length) throw new UsageError(`${flag} ${JSON.stringify(t)} is not a loopback address: the API then needs ${missing.join(' and ')}`);
  }
  return { httpListen, api: { ...(certFile !== undefined ? { certFile } : {}), ...(keyFile !== undefined ? { keyFile } : {}), ...(tokenFile !== undefined ? { tokenFile } : {}), ...(token ? { token } : {}) } };
}

/** nftables table names: what nft accepts unquoted. */
const NFT_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

function parseVipFlags(v: Values): VipFlags | undefined {
  const names = ['vip-range', 'vip-range6', 'vip-table', 'vip-link'] as const;
  if (v['no-vip']) {
    const given = names.find((k) => v[k] !== undefined);
    if (given) throw new UsageError(`--${given} and --no-vip exclude each other`);
    return undefined;
  }
  const range = (flag: string, text: string, family: 4 | 6): Cidr => {
    try {
      return parseVipRange(text, family, flag);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  const table = v['vip-table'] ?? DEFAULT_VIP_TABLE;
  if (!NFT_NAME.test(table)) throw new UsageError(`--vip-table ${JSON.stringify(table)}: not an nftables table name (a letter, then letters, digits, "_", "-")`);
  const link = v['vip-link'] ?? v['dns-link'] ?? DEFAULT_DNS_LINK;
  if (!IFNAME.test(link)) throw new UsageError(`--vip-link ${JSON.stringify(link)}: not a link name (1-15 of letters, digits, "_", ".", "-")`);
  const text6 = v['vip-range6'] ?? DEFAULT_VIP_RANGE6;
  return {
    range: range('--vip-range', v['vip-range'] ?? DEFAULT_VIP_RANGE, 4),
    range6: text6 === '' ? undefined : range('--vip-range6', text6, 6),
    table, link,
  };
}

/** Linux's IFNAMSIZ minus the terminating NUL. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function dnsHostPort(flag: string, text: string): HostPort {
  const hp = parseHostPort(text, DNS_PORT);
  if (!hp) throw new UsageError(`${flag} ${JSON.stringify(text)}: expected ADDRESS[:PORT] or [IPV6]:PORT (port 0-65535)`);
  return hp;
}

function parseDnsFlags(v: Values): DnsFlags | undefined {
  const names = ['dns-domain', 'dns-listen', 'dns-link', 'dns-upstream', 'dns-ttl', 'dns-allow', 'dns-state'] as const;
  if (v['no-dns']) {
    const given = names.find((k) => v[k] !== undefined);
    if (given) throw new UsageError(`--${given} and --no-dns exclude each other`);
    return undefined;
  }
  let domain: string;
  const domainText = v['dns-domain'] ?? 'vxnet';
  try {
    domain = checkName(domainText, 'DNS domain');
  } catch (err) {
    throw new UsageError(`--dns-domain ${JSON.stringify(domainText)}: ${(err as Error).message}`);
  }
  const given = v['dns-listen'];
  const listen = given?.length
    ? given.map((a) => dnsHostPort('--dns-listen', a))
    : DEFAULT_DNS_ADDRESSES.map((a) => ({ ip: parseIp(a) as Ip, port: DNS_PORT }));
  const linkText = v['dns-link'];
  if (linkText !== undefined && !IFNAME.test(linkText)) throw new UsageError(`--dns-link ${JSON.stringify(linkText)}: not a link name (1-15 of letters, digits, "_", ".", "-")`);
  if (linkText !== undefined && given?.length) throw new UsageError('--dns-link holds the default addresses only: with --dns-listen, the addresses are the operator\'s to set up');
  const upstreams = v['dns-upstream']?.map((a) => dnsHostPort('--dns-upstream', a));
  const allow = (v['dns-allow'] ?? []).map((text) => {
    const cidr = parseCidr(text) ?? (parseIp(text) ? parseCidr(`${text}/${parseIp(text)?.family === 4 ? 32 : 128}`) : undefined);
    if (!cidr) throw new UsageError(`--dns-allow ${JSON.stringify(text)}: not a CIDR such as 10.0.0.0/8`);
    return networkOf(cidr);
  });
  return {
    domain,
    listen,
    link: given?.length ? undefined : linkText ?? DEFAULT_DNS_LINK,
    upstreams,
    ttl: wholeSeconds('--dns-ttl', v['dns-ttl'] ?? '5', 0, MAX_DNS_TTL),
    allow,
    stateFile: absolutePath('--dns-state', v['dns-state'] ?? DEFAULT_DNS_STATE),
  };
}

/** One --overlay-network: a network to join by name, or one to define. */
export type OverlayNetworkFlag = { readonly join: string } | { readonly define: OverlayNetwork };

/**
 * One --overlay-network: `NAME` (join the cluster's definition), or
 * `NAME,vni=N,subnet=CIDR[,subnet=CIDR][,block=LEN][,block6=LEN][,mtu=N][,port=N]` or a JSON
 * object (a definition, checked by parseOverlayNetwork). Throws UsageError.
 */
export function parseOverlayNetworkFlag(text: string): OverlayNetworkFlag {
  const bad = (why: string): UsageError => new UsageError(`--overlay-network ${JSON.stringify(text)}: ${why}`);
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(text.trim())) return { join: text.trim() };
  let input: unknown;
  if (text.trim().startsWith('{')) {
    try {
      input = JSON.parse(text);
    } catch (err) {
      throw bad(`not valid JSON (${(err as Error).message})`);
    }
  } else {
    const [name, ...pairs] = text.split(',').map((p) => p.trim());
    const subnets: string[] = [];
    const fields: Record<string, unknown> = { name };
    const numbers: Record<string, string> = { vni: 'vni', block: 'blockPrefix', block6: 'blockPrefix6', mtu: 'mtu', port: 'port' };
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      const value = eq < 0 ? '' : pair.slice(eq + 1);
      if (key === 'subnet' && value !== '') subnets.push(value);
      else if (numbers[key] !== undefined && /^\d+$/.test(value)) fields[numbers[key]] = Number(value);
      else if (numbers[key] !== undefined) throw bad(`${key}=${JSON.stringify(value)} is not a number`);
      else throw bad(`unknown field ${JSON.stringify(pair)} (expected NAME,vni=N,subnet=CIDR[,subnet=CIDR][,block=LEN][,block6=LEN][,mtu=N][,port=N])`);
    }
    if (subnets.length > 0) fields.subnets = subnets;
    input = fields;
  }
  try {
    return { define: parseOverlayNetwork(input) };
  } catch (err) {
    throw bad((err as Error).message);
  }
}

function parseOverlayFlags(v: Values, env: NodeJS.ProcessEnv): OverlayFlags | undefined {
  const store = v.store ?? (env.VXNET_STORE || undefined);
  if (store === undefined || store === '') {
    const given = (['overlay-network', 'host-id', 'underlay', 'lease-ttl', 'block-grace'] as const).find((k) => v[k] !== undefined);
    if (given) throw new UsageError(`--${given} needs --store (the overlay runs only with a cluster store)`);
    return undefined;
  }
  let endpoints: readonly string[];
  try {
    endpoints = parseEtcdUrl(store).endpoints;
  } catch (err) {
    throw new UsageError(`--store: ${(err as Error).message}`);
  }
  const flags = (v['overlay-network'] ?? []).map(parseOverlayNetworkFlag);
  const names = flags.map((f) => ('join' in f ? f.join : f.define.name));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`--overlay-network: network ${JSON.stringify(dup)} given twice`);
  const hostId = v['host-id'];
  if (hostId !== undefined && !/^[\x21-\x7e]{1,253}$/.test(hostId)) {
    throw new UsageError(`--host-id ${JSON.stringify(hostId)}: 1-253 printable characters, no spaces`);
  }
  let underlay: Ip | undefined;
  if (v.underlay !== undefined) {
    underlay = parseIp(v.underlay);
    if (!underlay) throw new UsageError(`--underlay ${JSON.stringify(v.underlay)}: not an IP address`);
  }
  return {
    endpoints,
    networks: flags.flatMap((f) => ('define' in f ? [f.define] : [])),
    join: flags.flatMap((f) => ('join' in f ? [f.join] : [])),
    ...(hostId !== undefined ? { hostId } : {}),
    ...(underlay !== undefined ? { underlay } : {}),
    ttlSeconds: wholeSeconds('--lease-ttl', v['lease-ttl'] ?? '10', 1, MAX_TIMER_SECONDS),
    graceMs: wholeSeconds('--block-grace', v['block-grace'] ?? String(DEFAULT_BLOCK_GRACE_SECONDS), 0) * 1000,
  };
}
