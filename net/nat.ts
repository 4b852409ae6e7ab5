// Host-wide rules a network needs: masquerade for traffic leaving its subnets (nftables,
// in a table vxnet owns), and, on hosts where Docker set the iptables FORWARD policy to DROP
// (br_netfilter sends bridged traffic through it), ACCEPT rules in FORWARD for a bridge, or
// for a routed overlay network's subnets: an accept in our own nftables table cannot override
// a drop in another table's chain.
//
// The masquerade table holds one interval set of the subnets to masquerade and one rule:
// traffic from a member subnet to anything but a member subnet (or multicast) is
// masqueraded, one set lookup whatever the number of networks. Adding an element that is
// there already changes nothing, and the rule is rewritten in the same atomic transaction,
// so the script can run any number of times.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { DatapathFailure } from '../lib/errors';
import { Cidr, formatCidr } from '../ipam/addr';

const SEARCH_PATH = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

export function findTool(name: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    const p = `${dir}/${name}`;
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

const FAMILIES = [
  { family: 4, nf: 'ip', type: 'ipv4_addr', multicast: '224.0.0.0/4' },
  { family: 6, nf: 'ip6', type: 'ipv6_addr', multicast: 'ff00::/8' },
] as const;

/** The masquerade rule of a family's postrouting chain, as nft writes and lists it. Pure. */
export function masqueradeRule(family: 4 | 6): string {
  const f = FAMILIES.find((x) => x.family === family) ?? FAMILIES[0];
  return `${f.nf} saddr @masq ${f.nf} daddr != @masq ${f.nf} daddr != ${f.multicast} masquerade`;
}

/** The nft script that installs (or refreshes) masquerading for some subnets. Pure. */
export function masqueradeScript(table: string, subnets: readonly Cidr[]): string {
  const lines: string[] = [];
  for (const f of FAMILIES) {
    const mine = subnets.filter((s) => s.ip.family === f.family);
    if (mine.length === 0) continue;
    lines.push(
      `add table ${f.nf} ${table}`,
      `add set ${f.nf} ${table} masq { type ${f.type}; flags interval; }`,
      `add chain ${f.nf} ${table} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
      `flush chain ${f.nf} ${table} postrouting`,
      `add rule ${f.nf} ${table} postrouting ${masqueradeRule(f.family)}`,
      `add element ${f.nf} ${table} masq { ${mine.map(formatCidr).join(', ')} }`,
    );
  }
  return lines.join('\n') + '\n';
}

/** nft statements that stop masquerading some subnets, one per subnet. Pure. */
export function unmasqueradeStatements(table: string, subnets: readonly Cidr[]): string[] {
  return subnets.map((s) => `delete element ${s.ip.family === 4 ? 'ip' : 'ip6'} ${table} masq { ${formatCidr(s)} }`);
}

function nft(script: string, what: string): void {
  const bin = findTool('nft');
  if (!bin) throw new DatapathFailure(`${what}: the nft command is not installed (apt-get install nftables)`);
  const r = spawnSync(bin, ['-f', '-'], { input: script, encoding: 'utf8' });
  if (r.status !== 0) throw new DatapathFailure(`${what}: nft failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

export function ensureMasquerade(table: string, network: string, subnets: readonly Cidr[]): void {
  nft(masqueradeScript(table, subnets), `cannot set up masquerading for network "${network}"`);
}

/** Best effort: each statement separately, so a part already gone does not stop the rest. */
export function removeMasquerade(table: string, subnets: readonly Cidr[]): void {
  const bin = findTool('nft');
  if (!bin) return;
  for (const line of unmasqueradeStatements(table, subnets)) spawnSync(bin, ['-f', '-'], { input: line + '\n' });
  // The table is shared by every network; drop it with its last subnet.
  for (const nf of new Set(subnets.map((s) => (s.ip.family === 4 ? 'ip' : 'ip6')))) {
    const set = spawnSync(bin, ['list', 'set', nf, table, 'masq'], { encoding: 'utf8' });
    if (set.status === 0 && !set.stdout.includes('elements')) spawnSync(bin, ['delete', 'table', nf, table]);
  }
}

/** Whether masquerading for the subnets is in place (CHECK). */
export function masqueradePresent(table: string, subnets: readonly Cidr[]): boolean {
  const bin = findTool('nft');
  if (!bin) return false;
  return subnets.every((s) => spawnSync(bin, ['get', 'element', s.ip.family === 4 ? 'ip' : 'ip6', table, 'masq', `{ ${formatCidr(s)} }`]).status === 0);
}

/**
 * The iptables FORWARD rules that let a bridge's traffic through a DROP policy, for one family:
 * out of the bridge, and replies into it. Every rule carries the comment vxnet:BRIDGE. Pure.
 */
export function forwardRules(bridge: string): string[][] {
  const comment = commentOf(bridge);
  return [
    ['-i', bridge, ...comment, '-j', 'ACCEPT'],
    ['-o', bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', ...comment, '-j', 'ACCEPT'],
  ];
}

/**
 * The FORWARD rules of a routed overlay network (no bridge to name), by address, for one
 * family: anything from the network's subnets (its containers here and on other hosts), and
 * replies to them. Every rule carries the comment vxnet:ANCHOR (the network's VXLAN device). Pure.
 */
export function routedForwardRules(anchor: string, family: 4 | 6, subnets: readonly Cidr[]): string[][] {
  const comment = commentOf(anchor);
  return subnets.filter((c) => c.ip.family === family).flatMap((c) => [
    ['-s', formatCidr(c), ...comment, '-j', 'ACCEPT'],
    ['-d', formatCidr(c), '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', ...comment, '-j', 'ACCEPT'],
  ]);
}

const commentOf = (anchor: string): string[] => ['-m', 'comment', '--comment', `vxnet:${anchor}`];

function iptables(family: 4 | 6): string | undefined {
  return findTool(family === 4 ? 'iptables' : 'ip6tables');
}

/** Inserts FORWARD rules (per family) unless present; a host without iptables needs none. `what` names them in errors. */
export function ensureForwardRules(what: string, families: ReadonlyArray<4 | 6>, rulesOf: (family: 4 | 6) => string[][]): void {
  for (const family of families) {
    const bin = iptables(family);
    if (!bin) continue;
    for (const rule of rulesOf(family)) {
      if (spawnSync(bin, ['-w', '-C', 'FORWARD', ...rule]).status === 0) continue;
      const r = spawnSync(bin, ['-w', '-I', 'FORWARD', '1', ...rule], { encoding: 'utf8' });
      if (r.status !== 0) throw new DatapathFailure(`cannot allow forwarding for ${what}: ${bin} failed: ${(r.stderr || '').trim()}`);
    }
  }
}

/** Inserts the bridge's FORWARD accept rules unless present. */
export function ensureForwardAccept(bridge: string, families: ReadonlyArray<4 | 6>): void {
  ensureForwardRules(`bridge ${bridge}`, families, () => forwardRules(bridge));
}

/** Removes every FORWARD rule carrying the anchor's comment vxnet:ANCHOR (a bridge, or a routed network's device). */
export function removeForwardAccept(anchor: string): void {
  for (const family of [4, 6] as const) {
    const bin = iptables(family);
    if (!bin) continue;
    const listed = spawnSync(bin, ['-w', '-S', 'FORWARD'], { encoding: 'utf8' });
    // iptables -S quotes the comment ("vxnet:ANCHOR"); vxnet's rules have no other quoting or spaces.
    const unquote = (w: string): string => w.replace(/^"(.*)"$/, '$1');
    for (const line of (listed.stdout ?? '').split('\n')) {
      const words = line.trim().split(/\s+/).map(unquote);
      if (words[0] !== '-A' || words[1] !== 'FORWARD' || !words.includes(`vxnet:${anchor}`)) continue;
      spawnSync(bin, ['-w', '-D', 'FORWARD', ...words.slice(2)]);
    }
  }
}

/** Whether all the given FORWARD rules of one family are in place (CHECK); true without iptables. */
export function forwardRulesPresent(family: 4 | 6, rules: readonly string[][]): boolean {
  const bin = iptables(family);
  if (!bin) return true;
  return rules.every((rule) => spawnSync(bin, ['-w', '-C', 'FORWARD', ...rule]).status === 0);
}

/** Whether the bridge's FORWARD accept rules are in place (CHECK). */
export function forwardAcceptPresent(bridge: string, family: 4 | 6): boolean {
  return forwardRulesPresent(family, forwardRules(bridge));
}

/**
 * Sends a bridge's own bridged IPv4/IPv6 traffic through netfilter (the bridge's
 * nf_call_iptables / nf_call_ip6tables; br_netfilter ORs them with the global
 * net.bridge.bridge-nf-call-* sysctls). A VIP client and its chosen backend on one bridge need
 * it: the backend answers straight over the bridge, and only conntrack there turns the source
 * back into the VIP. `netns`: a namespace name under /run/netns (tests).
 */
/**
 * Turns on hairpin mode on a bridge port: with netfilter on the bridge, a container's packet to a
 * VIP that is DNATed to the container itself is bridged back out the port it came in by, which a
 * bridge drops unless the port's hairpin mode is on (what kubelet's hairpin-veth and Docker do).
 * In this namespace through sysfs (a file write, cheap on the ADD path), in another through `ip`.
 * Best effort: false when it could not be set; only a container reaching itself through its own
 * VIP depends on it, so it never fails an attachment.
 */
export function enableHairpin(port: string, netns?: string): boolean {
  if (netns === undefined) {
    try {
      fs.writeFileSync(`/sys/class/net/${port}/brport/hairpin_mode`, '1');
      return true;
    } catch {
      return false;
    }
  }
  const ip = findTool('ip');
  if (!ip) return false;
  return spawnSync(ip, ['-n', netns, 'link', 'set', 'dev', port, 'type', 'bridge_slave', 'hairpin', 'on']).status === 0;
}

export function enableBridgeNetfilter(bridge: string, netns?: string): void {
  const ip = findTool('ip');
  if (!ip) throw new DatapathFailure(`cannot enable netfilter on bridge ${bridge}: the ip command is not installed (apt-get install iproute2)`);
  const r = spawnSync(ip, [...(netns ? ['-n', netns] : []), 'link', 'set', 'dev', bridge, 'type', 'bridge', 'nf_call_iptables', '1', 'nf_call_ip6tables', '1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new DatapathFailure(`cannot enable netfilter on bridge ${bridge}: ${(r.stderr || r.error?.message || '').trim()}`);
}
