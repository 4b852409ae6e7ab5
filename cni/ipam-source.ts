// Where a vxnet attachment's addresses come from: the IPAM core in-process (ipam.type
// vxnet-ipam or absent: no second exec, exactly the vxnet-ipam binary's semantics) or another
// IPAM plugin executed from CNI_PATH.
import { InvalidNetworkConfig, PluginNotAvailable } from '../lib/errors';
import { IpamConf, requestedIps } from '../ipam/config';
import { Attachment, ipamAdd, ipamCheck, ipamDel, ipamGc } from '../ipam/core';
import { openStore } from '../ipam/store';
import { type IpamEvents, observeStore } from '../ipam/store/observed';
import type { Allocation, IpamStore, Owner, OwnerPort } from '../ipam/store/types';
import { Allocated, parseAllocated, parseRoutes } from './attach-plan';
import { execPlugin } from './delegate';
import { CniResult, parseResult } from './result';
import type { CmdArgs } from './skel';

export interface IpamSource {
  /** The attachment's addresses, typed: in-process they never become text on the way. */
  add(args: CmdArgs): Promise<Allocated>;
  /** Releases the attachment's addresses; reason goes to the history ("del", "add failed"). */
  del(args: CmdArgs, reason?: string): Promise<void>;
  check(args: CmdArgs, prev: CniResult): Promise<void>;
  /** Releases what is not in valid; returns what was released when known. */
  gc(args: CmdArgs, valid: readonly Attachment[]): Promise<Allocation[]>;
  status(args: CmdArgs): Promise<void>;
  close(): Promise<void>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `args.cni.labels` (CNI conventions: a list of {"key", "value"} strings) as a record; a later
 * entry wins. Entries of another shape are skipped: the conventions say a plugin ignores args it
 * does not understand, so a runtime's odd labels must not fail the attachment.
 */
export function cniLabelsFrom(conf: Record<string, unknown>): Record<string, string> {
  const args = conf.args;
  const list = isRecord(args) && isRecord(args.cni) ? args.cni.labels : undefined;
  const out: Record<string, string> = {};
  if (!Array.isArray(list)) return out;
  for (const e of list) {
    if (isRecord(e) && typeof e.key === 'string' && e.key !== '' && typeof e.value === 'string') out[e.key] = e.value;
  }
  return out;
}

/**
 * The container ports of `runtimeConfig.portMappings` ({hostPort, containerPort, protocol}),
 * each once, in the order given. Protocol defaults to tcp as in the portmap plugin; entries with
 * another protocol (sctp) or a port outside 1-65535 are skipped, not fatal.
 */
export function containerPortsFrom(conf: Record<string, unknown>): OwnerPort[] {
  const rc = conf.runtimeConfig;
  const list = isRecord(rc) ? rc.portMappings : undefined;
  const out: OwnerPort[] = [];
  if (!Array.isArray(list)) return out;
  const seen = new Set<string>();
  for (const m of list) {
    if (!isRecord(m)) continue;
    const port = m.containerPort;
    const protocol = m.protocol === undefined ? 'tcp' : typeof m.protocol === 'string' ? m.protocol.toLowerCase() : undefined;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
    if (protocol !== 'tcp' && protocol !== 'udp') continue;
    const k = `${port}/${protocol}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ port, protocol });
  }
  return out;
}

export function ownerFrom(args: CmdArgs, network: string, runtime = 'cni'): Owner {
  const rc = args.conf.runtimeConfig as { aliases?: unknown } | undefined;
  const aliases = Array.isArray(rc?.aliases) ? rc.aliases.filter((a): a is string => typeof a === 'string') : [];
  const name = args.args.get('K8S_POD_NAME');
  const labels = cniLabelsFrom(args.conf);
  const ports = containerPortsFrom(args.conf);
  return {
    network, containerId: args.containerId, ifname: args.ifname, runtime,
    ...(name ? { name } : {}), ...(aliases.length ? { aliases } : {}), ...(args.netns ? { netns: args.netns } : {}),
    ...(Object.keys(labels).length ? { labels } : {}), ...(ports.length ? { ports } : {}),
  };
}

/** The valid attachments a GC request lists (cni.dev/valid-attachments, or cni.dev/attachments). */
export function validAttachments(conf: Record<string, unknown>): Attachment[] {
  const raw = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'] ?? [];
  if (!Array.isArray(raw)) throw new InvalidNetworkConfig('cni.dev/valid-attachments: must be a list of {"containerID", "ifname"}');
  return raw.map((a, i) => {
    const o = a as { containerID?: unknown; ifname?: unknown };
    if (typeof o?.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw new InvalidNetworkConfig(`cni.dev/valid-attachments[${i}]: must have string "containerID" and "ifname"`);
    }
    return { containerId: o.containerID, ifname: o.ifname };
  });
}

class InProcessIpam implements IpamSource {
  private store: IpamStore | undefined;
  constructor(private readonly conf: IpamConf, private readonly events?: IpamEvents) {}

  private open(mustExist = false): IpamStore {
    if (!this.store) {
      const store = openStore({ ...(this.conf.dataDir ? { dataDir: this.conf.dataDir } : {}), mustExist });
      this.store = this.events ? observeStore(store, this.events) : store;
    }
    return this.store;
  }

  async add(args: CmdArgs): Promise<Allocated> {
    const r = await ipamAdd(this.open(), this.conf, ownerFrom(args, this.conf.network), requestedIps(args.conf, args.args));
    return { ips: r.ips.map((ip) => ({ cidr: ip.cidr, gateway: ip.gateway })), routes: parseRoutes(r.routes), dns: undefined };
  }

  async del(args: CmdArgs, reason = 'del'): Promise<void> {
    await ipamDel(this.open(), this.conf.network, { containerId: args.containerId, ifname: args.ifname }, reason);
  }

  async check(args: CmdArgs, prev: CniResult): Promise<void> {
    await ipamCheck(this.open(), this.conf, { containerId: args.containerId, ifname: args.ifname }, (prev.ips ?? []).map((ip) => ip.address));
  }

  gc(_args: CmdArgs, valid: readonly Attachment[]): Promise<Allocation[]> {
    return ipamGc(this.open(), this.conf.network, valid);
  }

  async status(): Promise<void> {
    let store: IpamStore;
    try {
      store = this.open();
    } catch (err) {
      // STATUS reports an unusable store as "not available" (50), whatever kept it from opening.
      throw err instanceof PluginNotAvailable ? err : new PluginNotAvailable((err as Error).message);
    }
    await store.check();
  }

  async close(): Promise<void> {
    await this.store?.close();
  }
}

class DelegatedIpam implements IpamSource {
  constructor(private readonly type: string) {}

  async add(args: CmdArgs): Promise<Allocated> {
    // Another executable answers in text: parsed here, once. An answer that does not parse
    // has still allocated: released, as the ADD's undo list would.
    const answer = parseResult(await execPlugin(this.type, 'ADD', args), `result of IPAM plugin ${this.type}`);
    try {
      return parseAllocated(answer);
    } catch (err) {
      await this.del(args).catch(() => undefined);
      throw err;
    }
  }

  async del(args: CmdArgs): Promise<void> {
    await execPlugin(this.type, 'DEL', args);
  }

  async check(args: CmdArgs): Promise<void> {
    await execPlugin(this.type, 'CHECK', args);
  }

  async gc(args: CmdArgs): Promise<Allocation[]> {
    await execPlugin(this.type, 'GC', args);
    return [];
  }

  async status(args: CmdArgs): Promise<void> {
    await execPlugin(this.type, 'STATUS', args);
  }

  async close(): Promise<void> { /* nothing held */ }
}

/** events: told what the in-process IPAM committed (CmdArgs.ipamEvents). */
export function ipamSourceFor(type: string, conf: IpamConf | undefined, events?: IpamEvents): IpamSource {
  return conf ? new InProcessIpam(conf, events) : new DelegatedIpam(type);
}
