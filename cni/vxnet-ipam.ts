// The vxnet-ipam CNI IPAM plugin: the IPAM core behind the CNI exec protocol, for other
// plugins (bridge, macvlan, ptp) to delegate to. The vxnet plugin runs the same code in-process.
import { InvalidNetworkConfig } from '../lib/errors';
import { IpamConf, parseIpamConf } from '../ipam/config';
import { formatIps } from './attach-plan';
import { ipamSourceFor, validAttachments } from './ipam-source';
import { formatResult, parseResult } from './result';
import type { CmdArgs, Handlers } from './skel';

function ipamConf(args: CmdArgs): IpamConf {
  const rc = args.conf.runtimeConfig;
  return parseIpamConf(args.conf.name as string, args.conf.ipam, rc && typeof rc === 'object' ? (rc as Record<string, unknown>) : undefined);
}

async function withSource<T>(args: CmdArgs, fn: (source: ReturnType<typeof ipamSourceFor>, conf: IpamConf) => Promise<T>): Promise<T> {
  const conf = ipamConf(args);
  const source = ipamSourceFor('vxnet-ipam', conf, args.ipamEvents);
  try {
    return await fn(source, conf);
  } finally {
    await source.close();
  }
}

export const vxnetIpamPlugin: Handlers = {
  add: (args) => withSource(args, async (s, conf) => {
    const r = await s.add(args);
    const dns = args.conf.dns && typeof args.conf.dns === 'object' ? (args.conf.dns as Record<string, never>) : {};
    // The routes as configured, verbatim (as the plugin always printed them).
    return formatResult({ ips: formatIps(r.ips), routes: [...conf.routes], dns }, args.version);
  }),
  del: (args) => withSource(args, (s) => s.del(args)),
  check: (args) => withSource(args, async (s) => {
    if (args.conf.prevResult === undefined) throw new InvalidNetworkConfig('prevResult: required for CHECK');
    await s.check(args, parseResult(args.conf.prevResult));
  }),
  gc: (args) => withSource(args, async (s) => { await s.gc(args, validAttachments(args.conf)); }),
  status: (args) => withSource(args, (s) => s.status(args)),
};
