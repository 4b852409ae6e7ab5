// The forwarder's upstreams: where they come from (`--dns-upstream HOST[:PORT]`, else the
// host's /etc/resolv.conf minus the server's own addresses) and which two race for a query.
// Pure: the caller reads the file and passes the random source.
import { Ip, formatIp, parseIp, sameIp } from '../ipam/addr';
import { InvalidNetworkConfig } from '../lib/errors';

export interface HostPort {
  readonly ip: Ip;
  readonly port: number;
}

export const DNS_PORT = 53;

/** "ADDR", "ADDR:PORT", "[V6ADDR]:PORT" or a bare IPv6 address; undefined when none of those. */
export function parseHostPort(text: string, defaultPort = DNS_PORT): HostPort | undefined {
  let host = text.trim();
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  if (bracket) {
    host = bracket[1];
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else if (/^[^:]+:\d+$/.test(host)) {
    const colon = host.lastIndexOf(':');
    port = Number(host.slice(colon + 1));
    host = host.slice(0, colon);
  }
  const ip = parseIp(host);
  if (!ip || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { ip, port };
}

/** Like parseHostPort, but throws InvalidNetworkConfig naming the flag. */
export function hostPort(text: string, what: string, defaultPort = DNS_PORT): HostPort {
  const hp = parseHostPort(text, defaultPort);
  if (!hp) throw new InvalidNetworkConfig(`${what} "${text}": expected ADDRESS[:PORT] or [IPV6]:PORT`);
  return hp;
}

export const formatHostPort = (hp: HostPort): string =>
  hp.ip.family === 6 ? `[${formatIp(hp.ip)}]:${hp.port}` : `${formatIp(hp.ip)}:${hp.port}`;

/** The `nameserver` lines of a resolv.conf, in order (port 53; lines it cannot read are skipped). */
export function parseResolvConf(text: string): HostPort[] {
  const out: HostPort[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    // A scoped address ("fe80::1%eth0") names a link vxnetd cannot assume; skipped.
    const ip = parseIp(m[1]);
    if (ip) out.push({ ip, port: DNS_PORT });
  }
  return out;
}

const isLoopback = (ip: Ip): boolean => (ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n);
const isUnspecified = (ip: Ip): boolean => ip.value === 0n;

/**
 * Upstreams without the server's own listening addresses: a resolv.conf that already points at
 * vxnet's forwarder (the per-host addresses, as DC/OS's gen_resolvconf.py wrote) must not make
 * it forward to itself. A wildcard listener (0.0.0.0, ::) catches loopback nameservers too.
 */
export function withoutSelf(upstreams: readonly HostPort[], listening: readonly HostPort[]): HostPort[] {
  return upstreams.filter((u) => !listening.some((l) => l.port === u.port
    && (sameIp(l.ip, u.ip) || (isUnspecified(l.ip) && l.ip.family === u.ip.family && isLoopback(u.ip)))));
}

/**
 * Which upstreams a query goes to, and how each has fared. With two or more, a query races
 * two (Spartan: picked at random from the buckets with the fewest failures; with fewer than
 * three, all of them race). A failure (timeout, SERVFAIL, REFUSED, socket error) demotes an
 * upstream by one; a success restores it to zero.
 */
export class UpstreamPool {
  readonly upstreams: readonly HostPort[];
  private readonly failures: number[];

  constructor(upstreams: readonly HostPort[], private readonly random: () => number = Math.random) {
    this.upstreams = upstreams;
    this.failures = upstreams.map(() => 0);
  }

  /** Indexes of the upstreams to query, at most two. */
  pick(): number[] {
    const n = this.upstreams.length;
    if (n < 3) return [...Array(n).keys()];
    // Sort by failures, ties in random order: the first two come from the lowest bucket(s).
    const keyed = this.failures.map((f, i) => ({ i, f, r: this.random() }));
    keyed.sort((a, b) => a.f - b.f || a.r - b.r);
    return [keyed[0].i, keyed[1].i];
  }

  fail(index: number): void {
    if (this.failures[index] < 1_000_000) this.failures[index]++;
  }

  succeed(index: number): void {
    this.failures[index] = 0;
  }

  /** Failures per upstream, for logs and metrics. */
  state(): Array<{ upstream: string; failures: number }> {
    return this.upstreams.map((u, i) => ({ upstream: formatHostPort(u), failures: this.failures[i] }));
  }
}
