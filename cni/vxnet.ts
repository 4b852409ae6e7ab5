// The vxnet CNI plugin. Bridge mode: ADD attaches a container to its network's bridge with
// an address from the IPAM core (./add.ts: named steps, undone in reverse when one fails),
// DEL detaches it, CHECK verifies, GC collects leftovers, STATUS says whether ADDs can succeed.
// Overlay mode ("mode":"overlay") takes the addresses from this host's blocks of the overlay
// network and the MTU of the overlay, both from the state file the overlay agent keeps on the
// host (overlay/local.ts), so an ADD needs no etcd, and attaches the container routed, with no
// bridge (datapath/routed.ts): the agent routes other hosts' blocks through the VXLAN device,
// and each container's veth carries the routes to its addresses.
import { AttachmentDrifted, InvalidNetworkConfig, PluginNotAvailable } from '../lib/errors';
import { contains, formatCidr, formatIp, networkOf, parseCidr, parseIp } from '../ipam/addr';
import { openNetns } from '../net/netns';
import { forwardAcceptPresent, masqueradePresent } from '../net/nat';
import { Rtnl } from '../net/rtnl';
import { ipamSourceFor, validAttachments } from './ipam-source';
import { RETIRED_PREFIX, hostVethName, isVxnetVethName, retiredName } from '../datapath/names';
import { linksRoutingInto, missingHostRoutes, routedSetupDrift } from '../datapath/routed';
import { missingOverlayState } from './netconf';
import { bridgeSpecFor, parseIps, requireOverlayState, routedSpecFor } from './attach-plan';
import { cmdAdd, loadConf } from './add';
import type { CmdArgs, Handlers } from './skel';

async function cmdDel(args: CmdArgs): Promise<void> {
  const conf = loadConf(args);
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam, args.ipamEvents);
  const host = Rtnl.open();
  try {
    // Removing the host end removes the pair, wherever the container end is (or was).
    const veth = await host.link(hostVethName(args.containerId, args.ifname));
    if (veth) await host.retireLink(veth, retiredName());
    await ipam.del(args);
  } finally {
    host.close();
    await ipam.close();
  }
}

async function cmdCheck(args: CmdArgs): Promise<void> {
  const conf = loadConf(args);
  const prev = conf.prevResult;
  if (!prev) throw new InvalidNetworkConfig('prevResult: required for CHECK');
  requireOverlayState(conf);
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam, args.ipamEvents);
  const ns = openNetns(args.netns);
  const host = Rtnl.open();
  let inner: Rtnl | undefined;
  try {
    await ipam.check(args, prev);
    inner = Rtnl.open(ns);
    const container = await inner.link(args.ifname);
    if (!container) throw new AttachmentDrifted(`interface ${args.ifname} is missing in ${args.netns}`);
    const sandbox = prev.interfaces?.find((i) => i.name === args.ifname && i.sandbox);
    if (sandbox?.mac && sandbox.mac.toLowerCase() !== container.mac) {
      throw new AttachmentDrifted(`interface ${args.ifname} has MAC ${container.mac}, expected ${sandbox.mac}`);
    }
    const have = await inner.addresses(container.index);
    const ips = parseIps(prev);
    for (const ip of ips) {
      if (!have.some((a) => a.cidr.ip.value === ip.cidr.ip.value && a.cidr.ip.family === ip.cidr.ip.family && a.cidr.prefix === ip.cidr.prefix)) {
        throw new AttachmentDrifted(`address ${formatCidr(ip.cidr)} is missing on ${args.ifname} in ${args.netns}`);
      }
    }
    for (const r of prev.routes ?? []) {
      const dst = parseCidr(r.dst);
      if (!dst) continue;
      const gw = r.gw ? parseIp(r.gw) : undefined;
      const present = (await inner.routes(dst.ip.family)).some((x) =>
        x.dst.prefix === dst.prefix && x.dst.ip.value === networkOf(dst).ip.value && (!gw || x.gw?.value === gw.value));
      if (!present) throw new AttachmentDrifted(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in ${args.netns}`);
    }
    const vethName = hostVethName(args.containerId, args.ifname);
    const veth = await host.link(vethName);
    const routed = routedSpecFor(conf);
    if (routed) {
      if (!veth) throw new AttachmentDrifted(`host veth ${vethName} of ${args.ifname} is missing`);
      if (veth.master !== undefined) throw new AttachmentDrifted(`host veth ${vethName} is attached to a bridge; overlay containers are routed`);
      const missing = await missingHostRoutes(host, veth.index, ips.map((ip) => ip.cidr.ip));
      if (missing.length) throw new AttachmentDrifted(`the host route to ${missing.map(formatIp).join(', ')} via ${vethName} is missing`);
      const drift = routedSetupDrift(routed, await host.link(routed.device));
      if (drift) throw new AttachmentDrifted(drift);
      for (const ip of ips) {
        if (!routed.subnets.some((s) => contains(s, ip.cidr.ip))) throw new AttachmentDrifted(`address ${formatCidr(ip.cidr)} is outside the network's subnets`);
      }
      return;
    }
    const bridge = await host.link(conf.bridge);
    if (!bridge) throw new AttachmentDrifted(`bridge ${conf.bridge} is missing`);
    if (!veth) throw new AttachmentDrifted(`host veth ${vethName} of ${args.ifname} is missing`);
    if (veth.master !== bridge.index) throw new AttachmentDrifted(`host veth ${vethName} is not attached to bridge ${conf.bridge}`);
    const spec = bridgeSpecFor(conf, ips);
    const bridgeAddrs = await host.addresses(bridge.index);
    for (const gw of spec.gateways) {
      if (!bridgeAddrs.some((a) => a.cidr.ip.value === gw.ip.value && a.cidr.ip.family === gw.ip.family)) {
        throw new AttachmentDrifted(`gateway ${formatCidr(gw)} is missing on bridge ${conf.bridge}`);
      }
    }
    if (conf.ipMasq && !masqueradePresent(conf.natTable, spec.subnets)) {
      throw new AttachmentDrifted(`masquerading for ${spec.subnets.map(formatCidr).join(', ')} is missing from nftables table ${conf.natTable}`);
    }
    for (const family of new Set(spec.subnets.map((s) => s.ip.family))) {
      if (!forwardAcceptPresent(conf.bridge, family)) throw new AttachmentDrifted(`the FORWARD accept rules for bridge ${conf.bridge} are missing (IPv${family})`);
    }
    for (const ip of ips) {
      if (!spec.subnets.some((s) => contains(s, ip.cidr.ip))) throw new AttachmentDrifted(`address ${formatCidr(ip.cidr)} is outside the network's subnets`);
    }
  } finally {
    inner?.close();
    host.close();
    ns.close();
    await ipam.close();
  }
}

async function cmdGc(args: CmdArgs): Promise<void> {
  const conf = loadConf(args);
  const valid = validAttachments(args.conf);
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam, args.ipamEvents);
  const host = Rtnl.open();
  try {
    const released = await ipam.gc(args, valid);
    // Every vxnet veth on this network's bridge (in overlay mode: routing into its subnets)
    // that no valid attachment owns is a leftover.
    const keep = new Set(valid.map((a) => hostVethName(a.containerId, a.ifname)));
    const bridge = conf.overlay ? undefined : await host.link(conf.bridge);
    const routedInto = conf.overlay ? await linksRoutingInto(host, conf.overlay.subnets) : new Set<number>();
    // Veths of this network's ADDs killed before attaching them (down, no bridge, or no
    // route yet): only the names of attachments this GC released, so another network's ADD in
    // flight is safe.
    const orphans = new Set(released.map((a) => hostVethName(a.containerId, a.ifname)));
    for (const link of await host.links()) {
      if (link.kind !== 'veth' || keep.has(link.name) || !isVxnetVethName(link.name)) continue;
      const ofNetwork = (bridge !== undefined && link.master === bridge.index) || (link.master === undefined && routedInto.has(link.index));
      const detached = !link.up && link.master === undefined;
      // Retired veths (see Rtnl.retireLink) are out of service whatever their network.
      const retired = detached && link.name.startsWith(RETIRED_PREFIX);
      const unattached = link.master === undefined && (detached || conf.overlay !== undefined);
      if (ofNetwork || retired || (unattached && orphans.has(link.name))) await host.deleteLink(link.name);
    }
  } finally {
    host.close();
    await ipam.close();
  }
}

async function cmdStatus(args: CmdArgs): Promise<void> {
  const conf = loadConf(args);
  if (conf.overlay && !conf.overlay.state?.blocks.length) throw new PluginNotAvailable(missingOverlayState(conf).message);
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam, args.ipamEvents);
  try {
    await ipam.status(args);
  } finally {
    await ipam.close();
  }
}

export const vxnetPlugin: Handlers = { add: cmdAdd, del: cmdDel, check: cmdCheck, gc: cmdGc, status: cmdStatus };
