// `vxnetctl doctor`'s judgement: what vxnet believes (IPAM store, the overlay agent's state
// files, vxnetd's VIPs) against what the kernel has, both ways, as findings. Pure: the I/O shell
// (doctor.ts) gathers both sides and applies the fixes; everything decided is decided here, so
// each rule is tested without root.
//
// A finding is "safe" only when fixing it cannot cut a live container off: releasing the
// addresses of a container whose network namespace is gone, deleting a vxnet-named link or host
// route that no allocation accounts for, re-inserting vxnet's own missing FORWARD accept rules,
// and the masquerade fixes doctor-nat.ts explains. Everything else (a missing bridge, gateway,
// VXLAN device, forwarding turned off) is repaired by the component that made it, so the
// finding names that component and the command, and --fix leaves it alone.
import { defaultBridgeName, hostVethName, isVxnetVethName, RETIRED_PREFIX, setupAliasPrefix } from '../datapath/names';
import { forwardRules } from '../net/nat';
import { type KernelNatTable, type NatFindingKind, type NatFixAction, type ForwardingNeed, type RecordedSetup, bridgeSetupOf, forwardingFindings, natFindings, routedRulesOf, routedSetupOf } from './doctor-nat';
import { type Entries, describeEntries, diffEntries, isEmptyDiff } from '../overlay/plan';
import type { VipView } from '../vip/model';
import { type DnsExpectation, type DnsObserved, dnsFindings } from './doctor-dns';
import { type KernelVipTable, vipFindings } from './doctor-vips';

export type NetnsState = 'alive' | 'gone' | 'unknown';

export interface BelievedAllocation {
  readonly network: string;
  readonly address: string;
  readonly family: 4 | 6;
  readonly containerId: string;
  readonly ifname: string;
  readonly runtime: string;
  readonly netns?: string;
}

/** A network of the IPAM store: every range's subnet, and each range set's first gateway ("10.1.0.1/24"). */
export interface BelievedNetwork {
  readonly network: string;
  readonly subnets: readonly string[];
  readonly gateways: readonly string[];
}

/** An overlay network as this host's agent last wrote it (overlay/local.ts). */
export interface BelievedOverlay {
  readonly network: string;
  readonly device: string;
  readonly vni: number;
  /** What the agent keeps on the device: each block's VTEP and gateway, as /32 or /128. */
  readonly deviceAddresses: readonly string[];
  readonly subnets: readonly string[];
  /** What the device should hold for the other hosts (from etcd with --store; undefined: not asked). */
  readonly peerEntries?: Entries;
  /** How many peers peerEntries is for. */
  readonly peers?: number;
}

export interface Believed {
  /** False when the data directory has no IPAM store: then no link is deleted as unaccounted for. */
  readonly storeFound?: boolean;
  readonly allocations: readonly BelievedAllocation[];
  readonly networks: readonly BelievedNetwork[];
  readonly overlays: readonly BelievedOverlay[];
  /** vxnetd's VIPs when its API answered (undefined: not asked or no answer) and the table they live in. */
  readonly vips?: { readonly views: readonly VipView[]; readonly table: string };
  /**
   * What vxnetd's DNS must answer: the names the catalog gives (empty when its API did not
   * answer: then only whether the server answers at all) and the state file that named the server.
   */
  readonly dns?: { readonly expected: readonly DnsExpectation[]; readonly stateFile: string };
  /**
   * NAT table names vxnet may use besides "vxnet": the natTable of every vxnet plugin in the
   * CNI config directory, of every Docker network record, and --nat-table. A network's setup
   * record is matched against these (and the tables nft lists); their masq sets are checked
   * for stale elements.
   */
  readonly natTableNames?: readonly string[];
  /** Subnets of networks outside the IPAM store (Docker network records), so none is taken for stale. */
  readonly otherSubnets?: ReadonlyArray<{ readonly network: string; readonly subnet: string }>;
}

export interface ObservedLink {
  readonly index: number;
  readonly name: string;
  readonly kind: string | undefined;
  readonly up: boolean;
  readonly master: number | undefined;
  readonly alias: string | undefined;
}

export interface Observed {
  readonly links: readonly ObservedLink[];
  /** Every address of every link, formatted "10.1.0.1/24". */
  readonly addresses: ReadonlyArray<{ readonly index: number; readonly cidr: string }>;
  /** Routes of the main table to one address (/32, /128) through a link, with no gateway. */
  readonly hostRoutes: ReadonlyArray<{ readonly address: string; readonly family: 4 | 6; readonly oif: number }>;
  /** Each recorded netns path's state. */
  readonly netns: Readonly<Record<string, NetnsState>>;
  /**
   * FORWARD rules per family, as `iptables -S FORWARD` lists them without "-A FORWARD" and
   * without quotes; a family absent: no iptables for it (then vxnet adds no rules either).
   */
  readonly forward: Partial<Record<4 | 6, ReadonlyArray<readonly string[]>>>;
  /** nftables tables as "family name" ("inet vxnet-vip"); undefined when nft could not list them. */
  readonly nftTables: readonly string[] | undefined;
  /** Each VXLAN device's permanent neighbour, FDB (with a remote) and gateway route entries, by device name. */
  readonly overlayEntries?: Readonly<Record<string, Entries>>;
  /** The VIP table as listed (null: no such table; undefined: not read, nft missing or not asked). */
  readonly vipTable?: KernelVipTable | null;
  /** vxnetd's DNS server's answers (undefined: not asked). */
  readonly dns?: DnsObserved;
  /** The ip and ip6 tables nft lists, read (`nft -j list table`), by "ip NAME" (undefined: nft missing). */
  readonly natTables?: Readonly<Record<string, KernelNatTable>>;
  /** net.ipv4.ip_forward and net.ipv6.conf.all.forwarding (a family absent: not readable). */
  readonly forwarding?: Partial<Record<4 | 6, boolean>>;
}

export type FindingKind =
  | 'leaked-allocation' | 'missing-veth' | 'veth-off-bridge' | 'orphan-veth' | 'retired-veth'
  | 'missing-host-route' | 'orphan-host-route'
  | 'bridge-missing' | 'bridge-down' | 'bridge-gateway-missing' | 'forward-rules-missing' | 'orphan-forward-rules'
  | 'overlay-device-missing' | 'overlay-device-address-missing' | 'overlay-peer-entries'
  | 'vip-table-missing' | 'vip-table-foreign' | 'vip-table-incomplete' | 'vip-missing' | 'vip-stale' | 'vip-backends-differ' | 'vip-hairpin'
  | 'dns-not-answering' | 'dns-name-missing' | 'dns-name-wrong' | 'dns-name-unanswered'
  | NatFindingKind;

/** What --fix does for a safe finding. */
export type FixAction =
  | { readonly op: 'release'; readonly network: string; readonly containerId: string; readonly ifname: string; readonly netns: string; readonly veth: string }
  | { readonly op: 'delete-link'; readonly name: string }
  | { readonly op: 'delete-route'; readonly address: string; readonly family: 4 | 6; readonly link: string }
  | { readonly op: 'delete-forward-rule'; readonly family: 4 | 6; readonly rule: readonly string[] }
  | { readonly op: 'add-forward-rules'; readonly family: 4 | 6; readonly rules: ReadonlyArray<readonly string[]> }
  | NatFixAction;

export interface Finding {
  readonly kind: FindingKind;
  /** What it concerns: "network blue 10.1.0.5", "link vx0123456789ab". */
  readonly subject: string;
  /** What is wrong. */
  readonly what: string;
  /** How it likely happened. */
  readonly why: string;
  /** The command (or step) that fixes it. */
  readonly fix: string;
  /** Whether --fix applies it. */
  readonly safe: boolean;
  readonly actions: readonly FixAction[];
}

const short = (id: string): string => id.slice(0, 12);
const familiesOf = (cidrs: readonly string[]): Array<4 | 6> => [...new Set(cidrs.map((c): 4 | 6 => (c.includes(':') ? 6 : 4)))].sort();
const hostPrefix = (family: 4 | 6): number => (family === 4 ? 32 : 128);
const ipOf = (cidr: string): string => cidr.split('/')[0];
/** A shell word: quoted only when it must be (iptables comments are plain here). */
const word = (w: string): string => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);
const iptablesOf = (family: 4 | 6): string => (family === 4 ? 'iptables' : 'ip6tables');

/** One attachment (container, interface) and its addresses, in every network. */
interface Attachment {
  readonly containerId: string;
  readonly ifname: string;
  readonly veth: string;
  readonly allocations: BelievedAllocation[];
}

function attachmentsOf(allocations: readonly BelievedAllocation[]): Map<string, Attachment> {
  const out = new Map<string, Attachment>();
  for (const a of allocations) {
    const veth = hostVethName(a.containerId, a.ifname);
    const at = out.get(veth) ?? { containerId: a.containerId, ifname: a.ifname, veth, allocations: [] };
    at.allocations.push(a);
    out.set(veth, at);
  }
  return out;
}

/** The bridge that carries a network: its setup alias, else its veths' master, else its default name. */
function bridgeOf(network: string, b: Believed, o: Observed, byName: ReadonlyMap<string, ObservedLink>, byIndex: ReadonlyMap<number, ObservedLink>): ObservedLink | undefined {
  const prefix = setupAliasPrefix(network);
  const aliased = o.links.find((l) => l.kind === 'bridge' && l.alias?.startsWith(prefix));
  if (aliased) return aliased;
  for (const a of b.allocations) {
    if (a.network !== network) continue;
    const master = byName.get(hostVethName(a.containerId, a.ifname))?.master;
    const bridge = master === undefined ? undefined : byIndex.get(master);
    if (bridge?.kind === 'bridge') return bridge;
  }
  const byDefault = byName.get(defaultBridgeName(network));
  return byDefault?.kind === 'bridge' ? byDefault : undefined;
}

/**
 * Whether the bridge was set up as the network's gateway (isGateway), read from its setup record:
 * the alias is a hash of the setup (datapath/bridge.ts setupFingerprint), so the candidates
 * (gateway or not, masquerading or not, in which nft table) are hashed until one matches.
 * undefined: none matches (a configuration with other gateways, an interrupted setup).
 */
export function gatewayExpected(net: BelievedNetwork, alias: string | undefined, nftTables: readonly string[], natTableNames: readonly string[] = []): boolean | undefined {
  return bridgeSetupOf(net.network, net.subnets, net.gateways, alias, natCandidates(nftTables, natTableNames))?.gateway;
}

/** The NAT tables a setup record may name: "vxnet", the configs' names, the ip/ip6 tables nft lists. */
function natCandidates(nftTables: readonly string[], natTableNames: readonly string[]): string[] {
  return [...new Set(['vxnet', ...natTableNames, ...nftTables.filter((t) => t.startsWith('ip ') || t.startsWith('ip6 ')).map((t) => t.slice(t.indexOf(' ') + 1))])];
}

/** Findings, in a stable order: attachments first, then networks, overlays, rules, VIPs. */
export function diagnose(b: Believed, o: Observed): Finding[] {
  const findings: Finding[] = [];
  const byName = new Map(o.links.map((l) => [l.name, l]));
  const byIndex = new Map(o.links.map((l) => [l.index, l]));
  const overlays = new Map(b.overlays.map((x) => [x.network, x]));
  const attachments = attachmentsOf(b.allocations);

  // ---- allocations -> kernel ----
  for (const at of attachments.values()) {
    const cni = at.allocations.filter((a) => a.runtime === 'cni');
    // Docker's endpoints are vxnetd's to reconcile against the Docker API (and an address
    // reserved before Docker names its endpoint has no link yet).
    if (cni.length === 0) continue;
    const addrs = cni.map((a) => `${a.address}`).join(', ');
    const networks = [...new Set(cni.map((a) => a.network))];
    const netns = cni.find((a) => a.netns !== undefined)?.netns;
    const state = netns === undefined ? 'unknown' : o.netns[netns] ?? 'unknown';
    const link = byName.get(at.veth);
    const subject = `container ${short(at.containerId)} ${at.ifname} (${networks.map((n) => `network ${n}`).join(', ')}: ${addrs})`;
    if (state === 'gone') {
      findings.push({
        kind: 'leaked-allocation', subject,
        what: `holds ${cni.length === 1 ? 'an address' : `${cni.length} addresses`} but its network namespace ${netns} is gone${link ? ` (its host veth ${at.veth} is still there)` : ''}`,
        why: 'the runtime removed the container without a CNI DEL (a crash, kill -9, a DEL that failed)',
        fix: networks.map((n) => `vxnetctl ipam release --container ${at.containerId} --ifname ${at.ifname} --network ${n}`).join('; '),
        safe: true,
        actions: networks.map((n) => ({ op: 'release', network: n, containerId: at.containerId, ifname: at.ifname, netns: netns as string, veth: at.veth })),
      });
      continue;
    }
    if (!link) {
      findings.push({
        kind: 'missing-veth', subject,
        what: `its host veth ${at.veth} is missing${state === 'alive' ? `, while its network namespace ${netns} exists` : ''}: the container is cut off`,
        why: 'the link was deleted by hand or by another tool, or an ADD failed half-way without its DEL',
        fix: `restart the container (its runtime's DEL and ADD); if it is gone: ${networks.map((n) => `vxnetctl ipam release --container ${at.containerId} --ifname ${at.ifname} --network ${n}`).join('; ')}`,
        safe: false, actions: [],
      });
      continue;
    }
    for (const network of networks) {
      const overlay = overlays.get(network);
      if (overlay) {
        // Routed: a host route to each address through the veth.
        for (const a of cni.filter((x) => x.network === network)) {
          if (o.hostRoutes.some((r) => r.oif === link.index && r.address === a.address)) continue;
          findings.push({
            kind: 'missing-host-route', subject: `network ${network} ${a.address}`,
            what: `container ${short(at.containerId)} ${at.ifname} holds ${a.address} but the host has no route to it through ${at.veth}`,
            why: 'the route was deleted by hand or by another tool (routing daemons flush routes they did not make)',
            fix: `ip route replace ${a.address}/${hostPrefix(a.family)} dev ${at.veth}`,
            safe: false, actions: [],
          });
        }
        continue;
      }
      const bridge = bridgeOf(network, b, o, byName, byIndex);
      if (bridge && link.master !== bridge.index) {
        findings.push({
          kind: 'veth-off-bridge', subject,
          what: `its host veth ${at.veth} is ${link.master === undefined ? 'on no bridge' : `on ${byIndex.get(link.master)?.name ?? `link #${link.master}`}`}, not on network ${network}'s bridge ${bridge.name}`,
          why: 'the bridge was deleted and re-created (its ports do not come back), or the link was moved by hand',
          fix: `ip link set dev ${at.veth} master ${bridge.name}`,
          safe: false, actions: [],
        });
      }
    }
  }

  // ---- kernel -> allocations: vxnet's links and host routes that nothing accounts for ----
  for (const link of o.links) {
    if (link.kind !== undefined && link.kind !== 'veth') continue;
    if (!isVxnetVethName(link.name)) continue;
    if (link.name.startsWith(RETIRED_PREFIX)) {
      findings.push({
        kind: 'retired-veth', subject: `link ${link.name}`,
        what: 'a host veth taken out of service by a DEL is still there',
        why: 'the DEL\'s background deletion did not run (the process was killed, or the host was busy)',
        fix: `ip link del dev ${link.name}`, safe: true, actions: [{ op: 'delete-link', name: link.name }],
      });
      continue;
    }
    if (attachments.has(link.name)) continue;
    const storeFound = b.storeFound !== false;
    findings.push({
      kind: 'orphan-veth', subject: `link ${link.name}`,
      what: `a vxnet host veth${link.master !== undefined ? ` on ${byIndex.get(link.master)?.name ?? `link #${link.master}`}` : ''} that no allocation in the IPAM store accounts for`,
      why: storeFound ? 'its addresses were released (ipam release, gc, a DEL) but the link was not deleted, or the IPAM store was replaced'
        : 'there is no IPAM store in the data directory: a wrong --data-dir, or the store was removed',
      fix: `ip link del dev ${link.name}${storeFound ? '' : ' (once sure no container uses it)'}`,
      safe: storeFound, actions: storeFound ? [{ op: 'delete-link', name: link.name }] : [],
    });
  }
  for (const r of o.hostRoutes) {
    const link = byIndex.get(r.oif);
    if (!link || !isVxnetVethName(link.name) || link.name.startsWith(RETIRED_PREFIX)) continue;
    const at = attachments.get(link.name);
    // An orphan veth's routes go with it.
    if (!at) continue;
    if (at.allocations.some((a) => a.address === r.address)) continue;
    findings.push({
      kind: 'orphan-host-route', subject: `route ${r.address}/${hostPrefix(r.family)} dev ${link.name}`,
      what: `a host route through container ${short(at.containerId)} ${at.ifname}'s veth to an address it does not hold (it holds ${at.allocations.map((a) => a.address).join(', ')})`,
      why: 'the address was released (vxnetctl ipam release) while the container kept running, or the route was added by hand',
      fix: `ip route del ${r.address}/${hostPrefix(r.family)} dev ${link.name}`,
      safe: true, actions: [{ op: 'delete-route', address: r.address, family: r.family, link: link.name }],
    });
  }

  // ---- bridge networks: bridge, gateway, FORWARD rules ----
  const anchors = new Set<string>();
  const candidates = natCandidates(o.nftTables ?? [], b.natTableNames ?? []);
  /** Networks whose setup record was read (for the masquerade checks), and who needs forwarding. */
  const masqueraded: Array<{ network: string; subnets: readonly string[]; setup: RecordedSetup }> = [];
  const forwardingBy: Record<4 | 6, string[]> = { 4: [], 6: [] };
  for (const net of b.networks) {
    if (overlays.has(net.network)) continue;
    const cniHere = b.allocations.filter((a) => a.network === net.network && a.runtime === 'cni');
    const bridge = bridgeOf(net.network, b, o, byName, byIndex);
    if (!bridge) {
      // A network without containers here may have no bridge yet (or any more): nothing is wrong.
      if (cniHere.length === 0) continue;
      findings.push({
        kind: 'bridge-missing', subject: `network ${net.network}`,
        what: `${cniHere.length === 1 ? 'an address is' : `${cniHere.length} addresses are`} allocated but the network's bridge (${defaultBridgeName(net.network)} unless its config names another) is missing`,
        why: 'the bridge was deleted by hand or by another tool; its containers are cut off',
        fix: 'the network\'s next CNI ADD (or Docker endpoint) re-creates the bridge; then restart its containers to re-attach them',
        safe: false, actions: [],
      });
      continue;
    }
    anchors.add(bridge.name);
    if (!bridge.up) {
      findings.push({
        kind: 'bridge-down', subject: `bridge ${bridge.name} (network ${net.network})`,
        what: 'the network\'s bridge is down', why: 'set down by hand or by another tool',
        fix: `ip link set dev ${bridge.name} up`, safe: false, actions: [],
      });
    }
    const have = new Set(o.addresses.filter((a) => a.index === bridge.index).map((a) => a.cidr));
    const missing = net.gateways.filter((g) => !have.has(g));
    const setup = bridgeSetupOf(net.network, net.subnets, net.gateways, bridge.alias, candidates);
    if (setup) {
      masqueraded.push({ network: net.network, subnets: net.subnets, setup });
      if (setup.gateway) for (const family of familiesOf(net.subnets)) forwardingBy[family].push(net.network);
    }
    const expected = setup?.gateway;
    // Without the setup record to tell (isGateway false, another configuration), a bridge that
    // still holds some gateway is taken to have held them all.
    if (missing.length > 0 && (expected === true || (expected === undefined && missing.length < net.gateways.length))) {
      findings.push({
        kind: 'bridge-gateway-missing', subject: `bridge ${bridge.name} (network ${net.network})`,
        what: `the bridge lacks its gateway address${missing.length > 1 ? 'es' : ''} ${missing.join(', ')}: containers lose their default route`,
        why: 'the address was deleted by hand, or by a tool managing the host\'s addresses',
        fix: missing.map((g) => `ip addr add ${g} dev ${bridge.name}`).join('; '),
        safe: false, actions: [],
      });
    }
    for (const family of familiesOf(net.subnets)) {
      const rules = o.forward[family];
      if (!rules) continue;
      const present = new Set(rules.map((r) => r.join(' ')));
      const absent = forwardRules(bridge.name).filter((r) => !present.has(r.join(' ')));
      if (absent.length === 0) continue;
      findings.push({
        kind: 'forward-rules-missing', subject: `bridge ${bridge.name} (network ${net.network}), IPv${family}`,
        what: `${absent.length} of the bridge's FORWARD accept rules (comment vxnet:${bridge.name}) are missing: with a DROP policy (Docker's) its traffic is dropped`,
        why: 'the rules were flushed (iptables -F, a firewall reload, Docker\'s restart rewrote FORWARD)',
        fix: absent.map((r) => `${iptablesOf(family)} -w -I FORWARD 1 ${r.map(word).join(' ')}`).join('; '),
        safe: true, actions: [{ op: 'add-forward-rules', family, rules: absent }],
      });
    }
  }

  // ---- overlay networks: the agent's VXLAN device and its addresses ----
  for (const ov of b.overlays) {
    anchors.add(ov.device);
    const dev = byName.get(ov.device);
    if (!dev || dev.kind !== 'vxlan') {
      findings.push({
        kind: 'overlay-device-missing', subject: `device ${ov.device} (overlay network ${ov.network}, VNI ${ov.vni})`,
        what: dev ? `${ov.device} is a ${dev.kind ?? 'plain'} device, not the network's VXLAN device` : 'the network\'s VXLAN device is missing: its containers cannot reach other hosts',
        why: 'deleted by hand, or vxnetd\'s overlay agent is not running (it re-creates the device at once when it runs)',
        fix: 'start (or restart) vxnetd with --store: its overlay agent re-creates the device and every peer\'s entries',
        safe: false, actions: [],
      });
      continue;
    }
    const have = new Set(o.addresses.filter((a) => a.index === dev.index).map((a) => a.cidr));
    const missing = ov.deviceAddresses.filter((c) => !have.has(c));
    if (missing.length > 0) {
      findings.push({
        kind: 'overlay-device-address-missing', subject: `device ${ov.device} (overlay network ${ov.network})`,
        what: `the VXLAN device lacks ${missing.join(', ')} (the block's VTEP and containers' gateway)`,
        why: 'deleted by hand while vxnetd\'s overlay agent was not running (it restores them at once when it runs)',
        fix: 'start (or restart) vxnetd with --store',
        safe: false, actions: [],
      });
    }
    // The routed setup (datapath/routed.ts): made by the network's first attachment here, recorded on the device.
    const setup = routedSetupOf(ov.network, ov.subnets, dev.alias, candidates);
    if (setup) masqueraded.push({ network: ov.network, subnets: ov.subnets, setup });
    const attachedHere = b.allocations.some((a) => a.network === ov.network);
    if (setup || attachedHere) {
      for (const family of familiesOf(ov.subnets)) {
        forwardingBy[family].push(ov.network);
        const rules = o.forward[family];
        if (!rules) continue;
        const present = new Set(rules.map((r) => r.join(' ')));
        const absent = routedRulesOf(ov.device, family, ov.subnets).filter((r) => !present.has(r.join(' ')));
        if (absent.length === 0) continue;
        findings.push({
          kind: 'forward-rules-missing', subject: `overlay network ${ov.network} (device ${ov.device}), IPv${family}`,
          what: `${absent.length} of the routed network's FORWARD accept rules (comment vxnet:${ov.device}) are missing: with a DROP policy (Docker's) its containers' traffic is dropped`,
          why: 'the rules were flushed (iptables -F, a firewall reload, Docker\'s restart rewrote FORWARD)',
          fix: absent.map((r) => `${iptablesOf(family)} -w -I FORWARD 1 ${r.map(word).join(' ')}`).join('; '),
          safe: true, actions: [{ op: 'add-forward-rules', family, rules: absent }],
        });
      }
    }
    const actual = o.overlayEntries?.[ov.device];
    if (ov.peerEntries && actual) {
      const d = diffEntries(ov.peerEntries, actual);
      if (!isEmptyDiff(d)) {
        const missing = describeEntries(d.set);
        const extra = describeEntries(d.del);
        findings.push({
          kind: 'overlay-peer-entries', subject: `device ${ov.device} (overlay network ${ov.network}, ${ov.peers ?? 0} peers in etcd)`,
          what: [missing.length ? `missing or wrong: ${missing.join(', ')}` : '', extra.length ? `not in etcd: ${extra.join(', ')}` : ''].filter(Boolean).join('; '),
          why: 'vxnetd\'s overlay agent is not running or has lost etcd (it converges the device on every change it sees), or the entries were changed by hand just now',
          fix: 'start (or restart) vxnetd with --store; vxnetctl hosts shows what etcd holds',
          safe: false, actions: [],
        });
      }
    }
  }

  // ---- masquerading (doctor-nat.ts) and forwarding ----
  if (o.nftTables && o.natTables) {
    findings.push(...natFindings({
      masqueraded,
      known: [
        ...b.networks.flatMap((n) => n.subnets.map((subnet) => ({ network: n.network, subnet }))),
        ...b.overlays.flatMap((ov) => ov.subnets.map((subnet) => ({ network: ov.network, subnet }))),
        ...(b.otherSubnets ?? []),
      ],
      ownTables: ['vxnet', ...(b.natTableNames ?? [])],
      nftTables: o.nftTables, tables: o.natTables,
      localAddresses: [...o.addresses.map((a) => a.cidr), ...o.hostRoutes.map((r) => `${r.address}/${hostPrefix(r.family)}`)],
    }));
  }
  if (o.forwarding) {
    const needs: ForwardingNeed[] = ([4, 6] as const).map((family) => ({ family, networks: [...new Set(forwardingBy[family])] }));
    findings.push(...forwardingFindings(needs, o.forwarding));
  }

  // ---- FORWARD rules vxnet made for links that are gone ----
  for (const family of [4, 6] as const) {
    for (const rule of o.forward[family] ?? []) {
      const at = rule.indexOf('--comment');
      const comment = at >= 0 ? rule[at + 1] : undefined;
      if (comment === undefined || !comment.startsWith('vxnet:')) continue;
      const anchor = comment.slice('vxnet:'.length);
      if (byName.has(anchor) || anchors.has(anchor)) continue;
      findings.push({
        kind: 'orphan-forward-rules', subject: `FORWARD rule (IPv${family}) ${rule.join(' ')}`,
        what: `a FORWARD accept rule of vxnet for ${anchor}, a link that does not exist`,
        why: 'the bridge was deleted by hand (the Docker driver and teardown remove the rules with it)',
        fix: `${iptablesOf(family)} -w -D FORWARD ${rule.map(word).join(' ')}`,
        safe: true, actions: [{ op: 'delete-forward-rule', family, rule }],
      });
    }
  }

  // ---- the VIP table against vxnetd's VIPs (doctor-vips.ts) ----
  if (b.vips && o.vipTable !== undefined) findings.push(...vipFindings(b.vips.table, b.vips.views, o.vipTable ?? undefined));
  // ---- the DNS zone against the catalog (doctor-dns.ts) ----
  if (b.dns && o.dns) findings.push(...dnsFindings(b.dns.expected, o.dns, b.dns.stateFile));
  return findings;
}

/** The exit status: 0 nothing found, 3 findings remain, 4 everything found was fixed. */
export const EXIT_FINDINGS = 3;
export const EXIT_ALL_FIXED = 4;

export function exitStatus(found: number, fixed: number): number {
  if (found === 0) return 0;
  return fixed === found ? EXIT_ALL_FIXED : EXIT_FINDINGS;
}

/** Host-route address of an allocation, for the fix shell (/32, /128). */
export const hostRouteCidr = (address: string, family: 4 | 6): string => `${ipOf(address)}/${hostPrefix(family)}`;
