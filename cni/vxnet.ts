// The vxnet CNI plugin. Bridge mode: ADD attaches a container to its network's bridge with
// an address from the IPAM core, DEL detaches it, CHECK verifies, GC collects leftovers,
// STATUS says whether ADDs can succeed. Each command is a short list of named steps; an ADD
// that fails undoes what it did, in reverse order.
// Overlay mode ("mode":"overlay") takes the addresses from this host's blocks of the overlay
// network and the MTU of the overlay, both from the state file the overlay agent keeps on the
// host (overlay/local.ts), so an ADD needs no etcd, and attaches the container routed, with no
// bridge (datapath/routed.ts): the agent routes other hosts' blocks through the VXLAN device,
// and each container's veth carries the routes to its addresses.
import * as fs from 'node:fs';
import { AttachmentDrifted, DatapathFailure, InvalidNetworkConfig, PluginNotAvailable } from '../lib/errors';
import { trace } from '../lib/trace';
import { Cidr, Ip, contains, formatCidr, formatIp, networkOf, parseCidr, parseIp } from '../ipam/addr';
import { openNetns } from '../net/netns';
import { forwardAcceptPresent, masqueradePresent } from '../net/nat';
import { CreatedVeth, Rtnl, macFromBytes, macToBytes } from '../net/rtnl';
import { BridgeSpec, ensureBridge, forgetBridge, knownBridge, readyBridge } from '../datapath/bridge';
import { ipamSourceFor, validAttachments } from './ipam-source';
import { RETIRED_PREFIX, hostVethName, isVxnetVethName, randomMac, retiredName } from '../datapath/names';
import { readLocalState, routedSpecOf } from '../overlay/local';
import {
  RoutedNetworkSpec, ensureRoutedNetwork, linksRoutingInto, missingHostRoutes, programHostEnd, routedSetupDrift,
} from '../datapath/routed';
import { VxnetNetConf, missingOverlayState, parseVxnetConf } from './netconf';
import { CniInterface, CniResult, CniRoute, formatResult } from './result';
import type { CmdArgs, Handlers } from './skel';

const DEFAULT_DST: Record<4 | 6, string> = { 4: '0.0.0.0/0', 6: '::/0' };

function loadConf(args: CmdArgs): VxnetNetConf {
  return parseVxnetConf(args.conf, args.args, readLocalState);
}

/** ADD and CHECK need the host's blocks in overlay mode; DEL and GC do not. */
function requireOverlayState(conf: VxnetNetConf): void {
  if (conf.overlay && !conf.overlay.state?.blocks.length) throw missingOverlayState(conf);
}

/** Overlay mode with the host's state: the routed setup; bridge mode: undefined. */
function routedSpecFor(conf: VxnetNetConf): RoutedNetworkSpec | undefined {
  return conf.overlay?.state ? routedSpecOf(conf.overlay.state, conf) : undefined;
}

interface ParsedIp { cidr: Cidr; gateway: Ip | undefined }

function parseIps(result: CniResult): ParsedIp[] {
  return (result.ips ?? []).map((ip) => {
    const cidr = parseCidr(ip.address);
    if (!cidr) throw new InvalidNetworkConfig(`IPAM returned an invalid address ${JSON.stringify(ip.address)}`);
    return { cidr, gateway: ip.gateway ? parseIp(ip.gateway) : undefined };
  });
}

/** Gateway per address: IPAM's, else network+1 as the bridge plugin does. Pure. */
function gatewayOf(ip: ParsedIp): Ip {
  return ip.gateway ?? { family: ip.cidr.ip.family, value: networkOf(ip.cidr).ip.value + 1n };
}

export function bridgeSpecFor(conf: VxnetNetConf, ips: readonly ParsedIp[]): BridgeSpec {
  const base = { network: conf.name, name: conf.bridge, mtu: conf.mtu, ipMasq: conf.ipMasq, natTable: conf.natTable };
  const subnets = conf.ipam ? conf.ipam.rangeSets.flat().map((r) => r.subnet) : ips.map((ip) => networkOf(ip.cidr));
  const gateways = conf.isGateway ? ips.map((ip) => ({ ip: gatewayOf(ip), prefix: ip.cidr.prefix })) : [];
  return { ...base, gateways, subnets };
}

/** The routes to program in the container: default via the gateway per family, then IPAM's. Pure. */
export function containerRoutes(conf: VxnetNetConf, ips: readonly ParsedIp[], ipamRoutes: readonly CniRoute[]): CniRoute[] {
  const routes: CniRoute[] = [];
  const seen = new Set<string>();
  const push = (r: CniRoute): void => {
    const key = `${r.dst}|${r.gw ?? ''}`;
    if (!seen.has(key)) { seen.add(key); routes.push(r); }
  };
  const gwFor = (family: 4 | 6): string | undefined => {
    const ip = ips.find((i) => i.cidr.ip.family === family);
    return ip ? formatIp(gatewayOf(ip)) : undefined;
  };
  const defaults = new Set<string>();
  for (const r of ipamRoutes) {
    const dst = parseCidr(r.dst);
    if (!dst) continue;
    const gw = r.gw ?? (conf.isGateway ? gwFor(dst.ip.family) : undefined);
    if (dst.prefix === 0) defaults.add(String(dst.ip.family));
    push({ ...r, ...(gw ? { gw } : {}) });
  }
  if (conf.isGateway) {
    for (const family of [4, 6] as const) {
      const gw = gwFor(family);
      if (gw && !defaults.has(String(family))) push({ dst: DEFAULT_DST[family], gw });
    }
  }
  return routes;
}

async function cmdAdd(args: CmdArgs): Promise<Record<string, unknown>> {
  trace('add:start');
  const conf = loadConf(args);
  requireOverlayState(conf);
  const routed = routedSpecFor(conf);
  trace('add:conf');
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam);
  const ns = openNetns(args.netns);
  trace('add:netns');
  const host = Rtnl.open();
  trace('add:host-socket');
  const undo: Array<() => Promise<unknown>> = [];
  let done = false;
  try {
    const inner = Rtnl.open(ns);
    undo.push(async () => inner.close());
    trace('add:netns-socket');
    // Netlink requests are answered as they are sent; a lookup sent before other work waits in
    // the socket meanwhile, so each step below costs one wait, not one per request. A bridge
    // this process set up already is not looked up (see readyBridge).
    const known = routed ? undefined : knownBridge(conf.bridge);
    const hubLookup = known ? undefined : host.link(routed ? routed.device : conf.bridge);
    hubLookup?.catch(() => undefined);

    const vethName = hostVethName(args.containerId, args.ifname);
    // vxnet picks the container end's MAC (random, as the kernel would) so that it is known
    // without a lookup; the host end comes up with the pair, already on the bridge in bridge
    // mode (one request).
    const containerMac = normalizeMac(conf.mac ?? randomMac());
    const createVeth = (bridgeIndex: number | undefined, offThread = false): Promise<CreatedVeth | false> => host.createVeth(vethName,
      { name: args.ifname, ns, mac: containerMac, ...(conf.mtu ? { mtu: conf.mtu } : {}) },
      { ...(conf.mtu ? { mtu: conf.mtu } : {}), ...(bridgeIndex === undefined ? {} : { master: bridgeIndex }), up: true }, { offThread });
    // On a bridge this process knows, the pair is created while the address is allocated (the
    // kernel's work for it runs off the main thread); a failed ADD then removes it.
    const early = known ? createVeth(known.index, true) : undefined;
    early?.catch(() => undefined);
    let vethInUndo = false;
    if (early) undo.push(async () => { if (!vethInUndo && await early.catch(() => false)) await host.deleteLink(vethName); });
    trace('add:ipam-begin');
    const ipamResult = await ipam.add(args);
    trace('add:ipam');
    undo.push(() => ipam.del(args, 'add failed'));
    const ips = parseIps(ipamResult);
    // The bridge, or in overlay mode the VXLAN device (nothing to attach to: routed).
    const bridgeSpec = routed ? undefined : bridgeSpecFor(conf, ips);
    const remembered = bridgeSpec && readyBridge(bridgeSpec);
    let hub = routed ? await ensureRoutedNetwork(host, routed, hubLookup) : remembered ?? await ensureBridge(host, bridgeSpec as BridgeSpec, hubLookup);
    trace('add:bridge');

    const hubIndex = routed ? undefined : hub.index;
    const earlyFits = early !== undefined && hubIndex === known?.index;
    if (early && !earlyFits) await early.catch(() => undefined);
    let created = await (earlyFits ? early : createVeth(hubIndex)).catch(async (err: unknown) => {
      if (!known) throw err;
      // The bridge this process remembered was deleted or replaced since (its index names no
      // bridge now, and the kernel undid the pair): set up again, then attach to that one.
      forgetBridge(conf.bridge);
      hub = await ensureBridge(host, bridgeSpec as BridgeSpec);
      return createVeth(hub.index);
    });
    // A host veth of this name is a leftover of an ADD killed half-way: replaced.
    if (!created && (!(await host.deleteLink(vethName)) || !(created = await createVeth(routed ? undefined : hub.index)))) {
      throw new DatapathFailure(`cannot create veth ${vethName} with peer ${args.ifname} in ${args.netns}: an interface of that name exists already (${vethName} on the host or ${args.ifname} in the container)`);
    }
    vethInUndo = true;
    undo.push(() => host.deleteLink(vethName));
    trace('add:veth');
    if (conf.hairpinMode && !routed) fs.writeFileSync(`/sys/class/net/${vethName}/brport/hairpin_mode`, '1');

    // The kernel echoes the host end with its peer's index (Linux 6.3+); before, both are looked
    // up. Not looking them up also spares this call the kernel's synchronous processing of their
    // pending link-state events (a lookup runs it; otherwise a kernel worker does, later).
    let veth = created.host;
    let containerIndex = veth?.peerIndex;
    if (!veth || containerIndex === undefined) {
      const [v, c] = await Promise.all([host.link(vethName), inner.link(args.ifname)]);
      if (!v) throw new AttachmentDrifted(`veth ${vethName} vanished right after it was created`);
      if (!c) throw new AttachmentDrifted(`${args.ifname} did not appear in ${args.netns}`);
      veth = v;
      containerIndex = c.index;
    }
    // Sent together; the kernel runs each socket's requests in order (link up, addresses and
    // neighbours before the routes that need them).
    const routes = containerRoutes(conf, ips, ipamResult.routes ?? []);
    const hostEnd = veth;
    await Promise.all([
      inner.setLink(containerIndex, { up: true }),
      ...ips.map((ip) => inner.addAddress(containerIndex, ip.cidr, { noPrefixRoute: routed !== undefined })),
      ...(routed ? gatewaysOf(ips).map((gw) => inner.setNeighbour(containerIndex, gw, hostEnd.mac)) : []),
      ...routes.map((r) => inner.addRoute({
        dst: networkOf(parseCidr(r.dst) as Cidr), ...(r.gw ? { gw: parseIp(r.gw) as Ip } : {}), oif: containerIndex, onlink: routed !== undefined,
      })),
      ...(routed ? [programHostEnd(host, hostEnd.index, ips.map((ip) => ip.cidr.ip), containerMac)] : []),
    ]);

    trace('add:container-config');
    const interfaces: CniInterface[] = [
      ...(routed ? [] : [{ name: conf.bridge, mac: hub.mac }]),
      { name: vethName, mac: hostEnd.mac },
      { name: args.ifname, mac: containerMac, sandbox: args.netns, ...(conf.mtu ? { mtu: conf.mtu } : {}) },
    ];
    const result: CniResult = {
      interfaces,
      ips: (ipamResult.ips ?? []).map((ip) => ({ ...ip, interface: interfaces.length - 1 })),
      routes,
      dns: conf.dns ?? ipamResult.dns ?? {},
    };
    done = true;
    return formatResult(result, args.version);
  } finally {
    trace('add:result');
    if (!done) {
      for (const step of undo.reverse()) await step().catch(() => undefined);
    } else {
      for (const step of undo.slice(0, 1)) await step();
    }
    host.close();
    ns.close();
    trace('add:sockets-closed');
    await ipam.close();
    trace('add:store-closed');
  }
}

/** A MAC as the kernel prints it (lower case, colons), whatever notation the config used. Pure. */
const normalizeMac = (mac: string): string => macFromBytes(macToBytes(mac));

/** The distinct gateways of the addresses (a routed container's neighbours). Pure. */
function gatewaysOf(ips: readonly ParsedIp[]): Ip[] {
  const seen = new Map<string, Ip>();
  for (const ip of ips) {
    const gw = gatewayOf(ip);
    seen.set(`${gw.family}/${gw.value}`, gw);
  }
  return [...seen.values()];
}

async function cmdDel(args: CmdArgs): Promise<void> {
  const conf = loadConf(args);
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam);
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
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam);
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
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam);
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
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam);
  try {
    await ipam.status(args);
  } finally {
    await ipam.close();
  }
}

export const vxnetPlugin: Handlers = { add: cmdAdd, del: cmdDel, check: cmdCheck, gc: cmdGc, status: cmdStatus };
