// Deleting conntrack entries with the `conntrack` tool (conntrack-tools), one filter per call,
// never a flush: vxnet deletes only flows it can name (a VIP's address, protocol and port, and
// the backend address it was sent to). Like nft.ts, a runner may target another network
// namespace (nsenter --net=PATH execs the tool in place).
//
// `conntrack -D` exits 1 when nothing matched ("0 flow entries have been deleted"): that is a
// success here, the count read from that line.
import { spawn } from 'node:child_process';
import { formatIp, type Ip } from '../ipam/addr';
import { DatapathFailure } from '../lib/errors';
import { findTool } from './nat';

/** A set of flows: original destination VIP:port over protocol, answered (after DNAT) by `replySrc`. */
export interface ConntrackFilter {
  readonly protocol: 'tcp' | 'udp';
  readonly origDst: Ip;
  readonly origDstPort: number;
  readonly replySrc: Ip;
}

/** conntrack's arguments for deleting the flows of `f`. Pure. */
export function conntrackDeleteArgs(f: ConntrackFilter): string[] {
  if (f.origDst.family !== f.replySrc.family) throw new DatapathFailure(`conntrack filter mixes families: ${formatIp(f.origDst)} and ${formatIp(f.replySrc)}`);
  return ['-D', '-f', f.origDst.family === 4 ? 'ipv4' : 'ipv6', '-p', f.protocol, '--orig-dst', formatIp(f.origDst), '--dport', String(f.origDstPort),
    '--reply-src', formatIp(f.replySrc)];
}

/** The count of `N flow entries have been deleted`, or undefined when the output says nothing of it. */
export function deletedCount(output: string): number | undefined {
  const m = /(\d+) flow entr(?:y|ies) ha(?:s|ve) been deleted/.exec(output);
  return m ? Number(m[1]) : undefined;
}

export class ConntrackRunner {
  constructor(private readonly options: { readonly netns?: string } = {}) {}

  /** Deletes the flows matching `f`; resolves to how many. DatapathFailure when the tool is missing or fails. */
  delete(f: ConntrackFilter): Promise<number> {
    const tool = findTool('conntrack');
    if (!tool) return Promise.reject(new DatapathFailure('the conntrack command is not installed (apt-get install conntrack)'));
    const args = conntrackDeleteArgs(f);
    const ns = this.options.netns;
    let cmd = tool;
    let argv = args;
    if (ns !== undefined) {
      const nsenter = findTool('nsenter');
      if (!nsenter) return Promise.reject(new DatapathFailure('the nsenter command is not installed (apt-get install util-linux)'));
      cmd = nsenter;
      argv = [`--net=${ns.includes('/') ? ns : `/run/netns/${ns}`}`, '--', tool, ...args];
    }
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
      const err: Buffer[] = [];
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => reject(new DatapathFailure(`cannot run conntrack: ${e.message}`)));
      child.on('close', (code) => {
        const text = Buffer.concat(err).toString('utf8');
        const n = deletedCount(text);
        if (n !== undefined && (code === 0 || code === 1)) resolve(n);
        else reject(new DatapathFailure(`conntrack ${args.join(' ')}: exit ${code}: ${text.trim().split('\n')[0] ?? ''}`));
      });
    });
  }
}
