// What vxnetd tells the runtimes about its DNS service: /run/vxnet/dns.json, written (atomically)
// when the server starts and removed when it stops, so "no file" means "no vxnet DNS here".
// The CNI plugin reads it into its result's `dns`; the shape is this module's alone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseIp } from '../ipam/addr';
import { labelProblem } from './names';

export const DEFAULT_DNS_STATE = '/run/vxnet/dns.json';

export interface DnsState {
  /** Addresses served on port 53 (what a resolv.conf can name: it has no ports). */
  readonly nameservers: readonly string[];
  readonly domain: string;
  /** The search list every container gets; the CNI plugin puts NETWORK.DOMAIN first. */
  readonly search: readonly string[];
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** The state in `text`, or undefined when it is not one (a half-written or foreign file). Pure. */
export function parseDnsState(text: string): DnsState | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (!isStrings(o.nameservers) || typeof o.domain !== 'string' || !isStrings(o.search)) return undefined;
  if (!o.nameservers.every((a) => parseIp(a) !== undefined)) return undefined;
  return { nameservers: o.nameservers, domain: o.domain, search: o.search };
}

/** The file's state; undefined when it is missing or unreadable (vxnetd not serving DNS). */
export function readDnsState(file = DEFAULT_DNS_STATE): DnsState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return parseDnsState(text);
}

/** Writes the state through a temporary file and a rename: a reader sees the old file or the new one. */
export function writeDnsState(file: string, state: DnsState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export function removeDnsState(file: string): void {
  fs.rmSync(file, { force: true });
}

/**
 * The CNI result's `dns` for a container on `network`: the servers, and the search list with
 * NETWORK.DOMAIN first (so a bare NAME finds the endpoint on the container's own network
 * before one of that name elsewhere). A network name that is not a DNS label is left out. Pure.
 */
export function cniDnsOf(state: DnsState, network: string): { nameservers: string[]; search: string[] } {
  const own = network.toLowerCase();
  const first = labelProblem(own) === undefined ? [`${own}.${state.domain}`] : [];
  return { nameservers: [...state.nameservers], search: [...new Set([...first, ...state.search])] };
}
