// The vxnet plugin's ADD as a short list of named steps: load the config, allocate, attach
// (the bridge or routed setup, then the veth pair), configure the container, print the result.
// Each step that makes something registers its undo; an ADD that fails runs them in reverse.
//
// A repeated ADD (a runtime retrying after its own timeout, the hand-off client re-running a
// call vxnetd did but could not answer) finds the pair in place: a live attachment that is what
// this ADD would make is left as it is and reported again (same MACs); one that differs fails
// with AttachmentDrifted and is left as it is too, address included. Only the leftover of an
// ADD killed half-way (a host veth whose peer is elsewhere, or a pair never configured) is
// replaced. None of this costs the first ADD anything: it runs where creating the pair failed
// because its names exist.
import * as fs from 'node:fs';
import { DatapathFailure } from '../lib/errors';
import { trace } from '../lib/trace';
import { openNetns } from '../net/netns';
import { CreatedVeth, LinkInfo, Rtnl } from '../net/rtnl';
import { BridgeSpec, ensureBridge, forgetBridge, knownBridge, readyBridge } from '../datapath/bridge';
import {
  PairEnds, VethPair, attachmentMismatch, configureContainer, configured, createPair, driftedAttachment, endsOf, findPair, normalizeMac,
} from '../datapath/attach';
import { hostVethName, randomMac } from '../datapath/names';
import { RoutedNetworkSpec, ensureRoutedNetwork } from '../datapath/routed';
import { readLocalState } from '../overlay/local';
import { IpamSource, ipamSourceFor } from './ipam-source';
import { VxnetNetConf, parseVxnetConf } from './netconf';
import {
  Allocated, addResult, attachedIps, bridgeSpecFor, containerRoutes, kernelRoute, requireOverlayState, routedSpecFor,
} from './attach-plan';
import { type CniDns, formatResult } from './result';
import { cniDnsOf, readDnsState } from '../dns/state';
import type { CmdArgs } from './skel';

/** The config of a call, with the host's overlay state in overlay mode. */
export function loadConf(args: CmdArgs): VxnetNetConf {
  return parseVxnetConf(args.conf, args.args, readLocalState);
}

/** Undo steps of an ADD, run in reverse when it fails; a step can be withdrawn once what it undoes is no longer this ADD's. */
class UndoList {
  private readonly steps: Array<{ run: () => Promise<unknown>; live: boolean }> = [];

  push(run: () => Promise<unknown>): { withdraw(): void } {
    const step = { run, live: true };
    this.steps.push(step);
    return { withdraw: () => { step.live = false; } };
  }

  async run(): Promise<void> {
    for (const step of this.steps.reverse()) if (step.live) await step.run().catch(() => undefined);
  }
}

export async function cmdAdd(args: CmdArgs): Promise<Record<string, unknown>> {
  trace('add:start');
  const conf = loadConf(args);
  requireOverlayState(conf);
  const routed = routedSpecFor(conf);
  trace('add:conf');
  const ipam = ipamSourceFor(conf.ipamType, conf.ipam, args.ipamEvents);
  const ns = openNetns(args.netns);
  trace('add:netns');
  const host = Rtnl.open();
  trace('add:host-socket');
  const undo = new UndoList();
  let inner: Rtnl | undefined;
  let done = false;
  try {
    inner = Rtnl.open(ns);
    trace('add:netns-socket');
    // vxnet picks the container end's MAC (random, as the kernel would) so that it is known without a lookup.
    const pair: VethPair = {
      host: hostVethName(args.containerId, args.ifname), container: args.ifname, ns, mac: normalizeMac(conf.mac ?? randomMac()), mtu: conf.mtu,
    };
    const attach = new AttachStep(host, inner, pair, conf, routed, undo);
    trace('add:ipam-begin');
    const { allocated, release } = await allocate(ipam, args, undo);
    trace('add:ipam');
    const hub = await attach.hub(allocated);
    trace('add:bridge');
    const veth = await attach.veth(hub, allocated, release, `container ${args.containerId} ${args.ifname}`);
    trace('add:veth');
    const routes = containerRoutes(conf, allocated.ips, allocated.routes);
    await configureContainer(host, inner, veth.ends, { ips: attachedIps(allocated.ips), routes: routes.map(kernelRoute), routed: routed !== undefined });
    trace('add:container-config');
    const result = addResult({
      bridge: veth.bridge && { name: veth.bridge.name, mac: veth.bridge.mac },
      hostVeth: { name: pair.host, mac: veth.ends.host.mac },
      container: { name: args.ifname, mac: veth.ends.containerMac, sandbox: args.netns, mtu: conf.mtu && veth.mtu },
    }, allocated, routes, conf.dns ?? nonEmpty(allocated.dns) ?? vxnetdDns(conf));
    done = true;
    return formatResult(result, args.version);
  } finally {
    trace('add:result');
    if (!done) await undo.run();
    inner?.close();
    host.close();
    ns.close();
    trace('add:sockets-closed');
    await ipam.close();
    trace('add:store-closed');
  }
}

/** An IPAM plugin's `dns: {}` says nothing: it must not hide vxnetd's servers. */
const nonEmpty = (dns: CniDns | undefined): CniDns | undefined =>
  dns && (dns.nameservers?.length || dns.domain || dns.search?.length || dns.options?.length) ? dns : undefined;

/** vxnetd's DNS servers and search list (dns/state.ts), when it serves DNS on this host; else none, as before. */
function vxnetdDns(conf: VxnetNetConf): CniDns | undefined {
  const state = readDnsState(conf.dnsState);
  return state && cniDnsOf(state, conf.name);
}

/** Allocate: IPAM's answer, typed; undone by releasing it (withdrawn when it turns out to be a live attachment's). */
async function allocate(ipam: IpamSource, args: CmdArgs, undo: UndoList): Promise<{ allocated: Allocated; release: { withdraw(): void } }> {
  const allocated = await ipam.add(args);
  const release = undo.push(() => ipam.del(args, 'add failed'));
  return { allocated, release };
}

/** Where the host end goes: the network's bridge, or routed (undefined: the VXLAN device, nothing to attach to). */
interface Hub {
  readonly bridge: LinkInfo | undefined;
  readonly bridgeSpec: BridgeSpec | undefined;
}

/**
 * Attach: the bridge (or the routed setup), then the veth pair. Netlink requests are answered
 * as they are sent, so what is sent before IPAM runs waits in the socket meanwhile: the hub's
 * lookup, or, on a bridge this process set up already (vxnetd), the pair itself, created on
 * libuv's threadpool while the address is allocated (see readyBridge, Rtnl.createVeth).
 */
class AttachStep {
  private readonly known: LinkInfo | undefined;
  private readonly hubLookup: Promise<LinkInfo | undefined> | undefined;
  private readonly early: Promise<false | CreatedVeth> | undefined;
  private readonly earlyUndo: { withdraw(): void } | undefined;

  constructor(private readonly host: Rtnl, private readonly inner: Rtnl, private readonly pair: VethPair, private readonly conf: VxnetNetConf,
    private readonly routed: RoutedNetworkSpec | undefined, private readonly undo: UndoList) {
    this.known = routed ? undefined : knownBridge(conf.bridge);
    this.hubLookup = this.known ? undefined : host.link(routed ? routed.device : conf.bridge);
    this.hubLookup?.catch(() => undefined);
    const early = this.known ? createPair(host, pair, this.known.index, true) : undefined;
    early?.catch(() => undefined);
    this.early = early;
    // A failed ADD removes the early pair, unless the pair step took it over.
    this.earlyUndo = early && undo.push(async () => { if (await early.catch(() => false)) await host.deleteLink(pair.host); });
  }

  /** The bridge with its setup (remembered by this process when it set it up already), or the routed setup. */
  async hub(allocated: Allocated): Promise<Hub> {
    if (this.routed) {
      await ensureRoutedNetwork(this.host, this.routed, this.hubLookup);
      return { bridge: undefined, bridgeSpec: undefined };
    }
    const spec = bridgeSpecFor(this.conf, allocated.ips);
    return { bridge: readyBridge(spec) ?? await ensureBridge(this.host, spec, this.hubLookup), bridgeSpec: spec };
  }

  /**
   * The pair, created (on the bridge, host end up), or found in place: a repeated ADD's. `release`
   * undoes the allocation; withdrawn when the allocation is a live attachment's.
   */
  async veth(hub: Hub, allocated: Allocated, release: { withdraw(): void }, who: string): Promise<{ ends: PairEnds; bridge: LinkInfo | undefined; mtu: number | undefined }> {
    const { host, inner, pair, known } = this;
    let bridge = hub.bridge;
    const earlyFits = this.early !== undefined && bridge?.index === known?.index;
    if (this.early && !earlyFits) await this.early.catch(() => undefined);
    const first = this.early && earlyFits ? this.early : createPair(host, pair, bridge?.index);
    let created = await first.catch(async (err: unknown) => {
      if (!known) throw err;
      // The bridge this process remembered was deleted or replaced since (its index names no
      // bridge now, and the kernel undid the pair): set up again, then attach to that one.
      forgetBridge(this.conf.bridge);
      bridge = await ensureBridge(host, hub.bridgeSpec as BridgeSpec);
      return createPair(host, pair, bridge.index);
    });
    if (!created) {
      const found = await findPair(host, inner, pair);
      if (found.kind === 'pair' && configured(found)) {
        // A live attachment: its address is the first ADD's, whatever happens next.
        release.withdraw();
        this.earlyUndo?.withdraw();
        const why = attachmentMismatch(pair, found, { ips: attachedIps(allocated.ips), bridge, mac: this.conf.mac });
        if (why) throw driftedAttachment(why, who);
        // What is there is what this ADD would make. The configure step sends its configuration
        // again: that changes nothing on a complete attachment and completes one whose ADD died
        // between the container's requests and the host end's (routed: two sockets).
        return { ends: found.ends, bridge, mtu: found.container.mtu };
      }
      if (found.kind === 'taken') {
        throw new DatapathFailure(`cannot create veth ${pair.host} with peer ${pair.container} in ${pair.ns.path}: ${pair.container} exists in the container already`);
      }
      // The leftover of an ADD killed half-way: replaced.
      if (!(await host.deleteLink(pair.host)) || !(created = await createPair(host, pair, bridge?.index))) {
        throw new DatapathFailure(`cannot create veth ${pair.host} with peer ${pair.container} in ${pair.ns.path}: an interface of that name exists already (${pair.host} on the host or ${pair.container} in the container)`);
      }
    }
    this.earlyUndo?.withdraw();
    this.undo.push(() => host.deleteLink(pair.host));
    if (this.conf.hairpinMode && bridge) fs.writeFileSync(`/sys/class/net/${pair.host}/brport/hairpin_mode`, '1');
    return { ends: await endsOf(host, inner, pair, created), bridge, mtu: this.conf.mtu };
  }
}
