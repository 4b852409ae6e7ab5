// `vxnetctl doctor`'s host-wide checks of a network's setup: masquerading (net/nat.ts: an nft
// table per family holding an interval set `masq` of subnets and one postrouting rule), IP
// forwarding, and the FORWARD accept rules of routed overlay networks. Pure: doctor.ts reads
// the tables (nft -j), the sysctls and the rules; doctor-rules.ts calls in with what each
// network's setup record says it needs.
//
// What a network needs is read from its setup record, the alias vxnet puts on the network's
// bridge or VXLAN device once its host-wide setup is done (datapath/names.ts setupAlias): a
// hash of (subnets, gateways, ipMasq, natTable), matched against the candidates. The record is
// what was applied; a network whose record cannot be matched (no bridge here, a table name
// nothing names) is not judged, and so never taken for stale.
//
// Safe: adding a missing element or rewriting a missing or changed rule (the same idempotent
// script the setup runs, in vxnet's own table; it only turns back on NAT the network's config
// asked for); deleting an element for a subnet no network of the store has and no address or
// host route here lies in (nothing vxnet runs sends from it; re-checked under the store's lock
// against the pools, so a network being created meanwhile is seen); inserting missing FORWARD
// accept rules (exactly what the setup inserts, scoped to vxnet's bridge or subnets). Not safe:
// turning on forwarding (it changes the whole host's routing, and IPv6 forwarding stops the
// host accepting router advertisements), an element of a network whose record says it is not
// masqueraded there (the record may be older than its config), a set of the wrong shape.
import { type Cidr, contains, parseCidr, parseIp } from '../ipam/addr';
import { masqueradeRule, masqueradeScript, routedForwardRules } from '../net/nat';
import { setupAlias, setupAliasPrefix } from '../datapath/names';

/** A masquerade table as nft lists it (`nft -j list table ip|ip6 NAME`). */
export interface KernelNatTable {
  readonly family: 4 | 6;
  readonly name: string;
  /** The set `masq`'s elements ("10.1.0.0/24", a lone address as /32, a range "A-B"); undefined: no such set. */
  readonly elements: readonly string[] | undefined;
  /** Whether the set is what vxnet makes (the family's address type, flags interval). */
  readonly setShapeOk: boolean;
  /** The postrouting chain: undefined when missing; hookOk: type nat, hook postrouting, priority srcnat, policy accept. */
  readonly chain: { readonly hookOk: boolean; readonly rules: readonly string[] } | undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nfOf = (family: 4 | 6): 'ip' | 'ip6' => (family === 4 ? 'ip' : 'ip6');
const familyOfCidr = (c: string): 4 | 6 => (c.includes(':') ? 6 : 4);

function valueText(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (isObj(v) && isObj(v.prefix)) return `${String(v.prefix.addr)}/${String(v.prefix.len)}`;
  if (isObj(v) && Array.isArray(v.range)) return v.range.map(valueText).join('-');
  if (isObj(v) && Array.isArray(v.set)) return `{ ${v.set.map(valueText).join(', ')} }`;
  return JSON.stringify(v);
}

/** A rule's expressions as nft writes them, for the shapes vxnet uses; anything else as its JSON. */
export function ruleText(expr: readonly unknown[]): string {
  return expr.map((e) => {
    if (isObj(e) && isObj(e.match)) {
      const { op, left, right } = e.match;
      const l = isObj(left) && isObj(left.payload) ? `${String(left.payload.protocol)} ${String(left.payload.field)}` : valueText(left);
      return `${l} ${op === '==' || op === 'in' ? '' : `${String(op)} `}${valueText(right)}`;
    }
    if (isObj(e) && 'masquerade' in e && (e.masquerade === null || isObj(e.masquerade) && Object.keys(e.masquerade).length === 0)) return 'masquerade';
    if (isObj(e) && 'accept' in e) return 'accept';
    return JSON.stringify(e);
  }).join(' ');
}

/** An element of the set as a CIDR (a lone address: /32, /128) or range "A-B". */
function elementText(e: unknown, family: 4 | 6): string {
  const v = isObj(e) && 'elem' in e && isObj(e.elem) ? e.elem.val : e;
  if (typeof v === 'string' && !v.includes('/')) return `${v}/${family === 4 ? 32 : 128}`;
  return valueText(v);
}

/** The table from `nft -j list table`'s output; undefined when it is not one table of family ip or ip6. */
export function parseNatTable(json: unknown): KernelNatTable | undefined {
  if (!isObj(json) || !Array.isArray(json.nftables)) return undefined;
  let table: { family: 4 | 6; name: string } | undefined;
  let elements: string[] | undefined;
  let setShapeOk = false;
  let chain: { hookOk: boolean; rules: string[] } | undefined;
  for (const item of json.nftables as unknown[]) {
    if (!isObj(item)) continue;
    if (isObj(item.table)) {
      const f = item.table.family;
      if ((f !== 'ip' && f !== 'ip6') || typeof item.table.name !== 'string') return undefined;
      table = { family: f === 'ip' ? 4 : 6, name: item.table.name };
    } else if (isObj(item.set) && item.set.name === 'masq' && table) {
      const s = item.set;
      elements = Array.isArray(s.elem) ? s.elem.map((e) => elementText(e, table!.family)) : [];
      setShapeOk = s.type === (table.family === 4 ? 'ipv4_addr' : 'ipv6_addr') && Array.isArray(s.flags) && s.flags.includes('interval');
    } else if (isObj(item.chain) && item.chain.name === 'postrouting') {
      const c = item.chain;
      chain = { hookOk: c.type === 'nat' && c.hook === 'postrouting' && c.prio === 100 && c.policy === 'accept', rules: chain?.rules ?? [] };
    } else if (isObj(item.rule) && item.rule.chain === 'postrouting') {
      const rule = ruleText(Array.isArray(item.rule.expr) ? item.rule.expr : []);
      chain = { hookOk: chain?.hookOk ?? false, rules: [...(chain?.rules ?? []), rule] };
    }
  }
  return table ? { ...table, elements, setShapeOk, chain } : undefined;
}

/** A network's recorded host-wide setup (what its setup alias was made from). */
export interface RecordedSetup {
  readonly gateway: boolean;
  readonly ipMasq: boolean;
  readonly natTable: string;
}

/**
 * The setup a bridge network's alias records (datapath/bridge.ts setupFingerprint): each
 * candidate (gateways or none, masquerading or not, each table) hashed until one matches.
 * undefined: none matches (other gateways, a table no candidate names, no record).
 */
export function bridgeSetupOf(network: string, subnets: readonly string[], gateways: readonly string[], alias: string | undefined, tables: readonly string[]): RecordedSetup | undefined {
  if (alias === undefined || !alias.startsWith(setupAliasPrefix(network))) return undefined;
  for (const gws of [gateways, []]) {
    for (const ipMasq of [false, true]) {
      for (const natTable of tables) {
        if (setupAlias(network, [network, subnets, gws, ipMasq, natTable]) === alias) return { gateway: gws.length > 0, ipMasq, natTable };
      }
    }
  }
  return undefined;
}

/** The setup a routed overlay network's VXLAN device alias records (datapath/routed.ts routedFingerprint). */
export function routedSetupOf(network: string, subnets: readonly string[], alias: string | undefined, tables: readonly string[]): RecordedSetup | undefined {
  if (alias === undefined || !alias.startsWith(setupAliasPrefix(network))) return undefined;
  for (const ipMasq of [false, true]) {
    for (const natTable of tables) {
      if (setupAlias(network, ['routed', network, subnets, ipMasq, natTable]) === alias) return { gateway: true, ipMasq, natTable };
    }
  }
  return undefined;
}

/** What the NAT checks are given. */
export interface NatInput {
  /** Each network whose setup record was read: the subnets it masquerades into which table. */
  readonly masqueraded: ReadonlyArray<{ readonly network: string; readonly subnets: readonly string[]; readonly setup: RecordedSetup }>;
  /** Every subnet a network of vxnet has (store pools, overlay states, Docker records), by network. */
  readonly known: ReadonlyArray<{ readonly network: string; readonly subnet: string }>;
  /** Table names vxnet may use (default "vxnet", the configs', --nat-table): their masq sets are checked for stale elements. */
  readonly ownTables: readonly string[];
  /** nft's tables ("ip vxnet"). */
  readonly nftTables: readonly string[];
  /** The ip/ip6 tables read, by "ip NAME". */
  readonly tables: Readonly<Record<string, KernelNatTable>>;
  /** Addresses of this host's links and its host routes' destinations (a stale element with one inside is not deleted). */
  readonly localAddresses: readonly string[];
}

export type NatFindingKind = 'masquerade-missing' | 'masquerade-rule-changed' | 'masquerade-stale' | 'forwarding-off';

export type NatFixAction =
  | { readonly op: 'masquerade'; readonly table: string; readonly network: string; readonly subnets: readonly string[] }
  | { readonly op: 'unmasquerade'; readonly table: string; readonly family: 4 | 6; readonly element: string };

export interface NatFinding {
  readonly kind: NatFindingKind;
  readonly subject: string;
  readonly what: string;
  readonly why: string;
  readonly fix: string;
  readonly safe: boolean;
  readonly actions: readonly NatFixAction[];
}

/** The one-line nft command that (re)installs masquerading for the subnets (net/nat.ts masqueradeScript). */
export function masqueradeCommand(table: string, subnets: readonly string[]): string {
  const cidrs = subnets.map((s) => parseCidr(s)).filter((c): c is Cidr => c !== undefined);
  return `nft '${masqueradeScript(table, cidrs).trim().split('\n').join('; ')}'`;
}

/** Whether two CIDRs (or an "A-B" range and a CIDR) share an address. */
export function overlaps(a: string, b: string): boolean {
  const span = (x: string): [Cidr, Cidr] | undefined => {
    if (x.includes('-')) {
      const [lo, hi] = x.split('-').map((p) => parseIp(p));
      if (!lo || !hi) return undefined;
      const bits = lo.family === 4 ? 32 : 128;
      return [{ ip: lo, prefix: bits }, { ip: hi, prefix: bits }];
    }
    const c = parseCidr(x);
    return c ? [c, c] : undefined;
  };
  const sa = span(a);
  const sb = span(b);
  if (!sa || !sb || sa[0].ip.family !== sb[0].ip.family) return false;
  if (a.includes('-') || b.includes('-')) {
    // A range against a CIDR: an end of one inside the other.
    const [r, c] = a.includes('-') ? [sa, sb[0]] : [sb, sa[0]];
    return contains(c, r[0].ip) || contains(c, r[1].ip) || (r[0].ip.value <= c.ip.value && c.ip.value <= r[1].ip.value);
  }
  return contains(sa[0], sb[0].ip) || contains(sb[0], sa[0].ip);
}

/** Whether the element covers the subnet (nft finds the subnet's addresses in it). */
function covers(element: string, subnet: string): boolean {
  const e = parseCidr(element);
  const s = parseCidr(subnet);
  if (!e || !s || e.ip.family !== s.ip.family) return false;
  return e.prefix <= s.prefix && contains(e, s.ip);
}

const WHY_GONE = 'deleted by hand, or by a tool that rewrites the ruleset (nft flush ruleset, a firewall reload); vxnet re-adds it only when the network\'s setup record changes';

/** Masquerade findings: each network's subnets missing from its table, the tables' rules, stale elements. */
export function natFindings(input: NatInput): NatFinding[] {
  const out: NatFinding[] = [];
  const present = new Set(input.nftTables);
  // Expected: table key -> subnet -> network.
  const expected = new Map<string, Map<string, string>>();
  for (const m of input.masqueraded) {
    if (!m.setup.ipMasq) continue;
    for (const family of [4, 6] as const) {
      const mine = m.subnets.filter((s) => familyOfCidr(s) === family);
      if (mine.length === 0) continue;
      const key = `${nfOf(family)} ${m.setup.natTable}`;
      const exp = expected.get(key) ?? new Map<string, string>();
      for (const s of mine) exp.set(s, m.network);
      expected.set(key, exp);
      const t = input.tables[key];
      const subject = `network ${m.network} (nftables ${key})`;
      if (!present.has(key) || !t) {
        out.push({
          kind: 'masquerade-missing', subject,
          what: `the network is set up to be masqueraded (ipMasq) but its NAT table ${key} is missing: its containers' traffic leaves the host with their private addresses`,
          why: WHY_GONE, fix: masqueradeCommand(m.setup.natTable, mine), safe: true,
          actions: [{ op: 'masquerade', table: m.setup.natTable, network: m.network, subnets: mine }],
        });
        continue;
      }
      if (t.elements === undefined) {
        out.push({
          kind: 'masquerade-missing', subject,
          what: `the network is set up to be masqueraded (ipMasq) but table ${key} has no set masq`,
          why: WHY_GONE, fix: masqueradeCommand(m.setup.natTable, mine), safe: true,
          actions: [{ op: 'masquerade', table: m.setup.natTable, network: m.network, subnets: mine }],
        });
        continue;
      }
      const missing = mine.filter((s) => !t.elements!.some((e) => covers(e, s)));
      if (missing.length === 0) continue;
      out.push({
        kind: 'masquerade-missing', subject,
        what: `the network is set up to be masqueraded (ipMasq) but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in the set masq of ${key}: its containers' traffic leaves the host with their private addresses`,
        why: WHY_GONE,
        fix: `nft add element ${key} masq '{ ${missing.join(', ')} }'`, safe: true,
        actions: [{ op: 'masquerade', table: m.setup.natTable, network: m.network, subnets: mine }],
      });
    }
  }

  // The rule of every table some network masquerades into.
  for (const [key, exp] of expected) {
    const t = input.tables[key];
    if (!present.has(key) || !t || t.elements === undefined) continue;
    const family = t.family;
    const want = masqueradeRule(family);
    const subnets = [...exp.keys()];
    const table = key.slice(key.indexOf(' ') + 1);
    const subject = `nftables ${key} chain postrouting`;
    if (!t.setShapeOk) {
      out.push({
        kind: 'masquerade-rule-changed', subject: `nftables ${key} set masq`,
        what: `the set masq is not vxnet's (type ${family === 4 ? 'ipv4_addr' : 'ipv6_addr'}, flags interval): masquerading may not match the networks' subnets`,
        why: 'the set was re-created by hand or by another tool',
        fix: `nft delete table ${key}; ${masqueradeCommand(table, subnets)}`, safe: false, actions: [],
      });
      continue;
    }
    let what: string | undefined;
    if (!t.chain) what = 'the chain postrouting is missing: nothing is masqueraded';
    else if (!t.chain.hookOk) what = 'the chain postrouting is not a nat chain on the postrouting hook at priority srcnat with policy accept';
    else if (t.chain.rules.length === 0) what = 'the chain postrouting has no rule: nothing is masqueraded';
    else if (t.chain.rules.length !== 1 || t.chain.rules[0] !== want) what = `the chain postrouting holds ${t.chain.rules.map((r) => `"${r}"`).join(', ')} instead of "${want}"`;
    if (what === undefined) continue;
    out.push({
      kind: 'masquerade-rule-changed', subject, what,
      why: 'the chain was flushed or edited by hand, or by a tool that rewrites the ruleset',
      fix: t.chain && !t.chain.hookOk ? `nft delete chain ${key} postrouting; ${masqueradeCommand(table, subnets)}` : masqueradeCommand(table, subnets),
      safe: !t.chain || t.chain.hookOk,
      actions: !t.chain || t.chain.hookOk ? [{ op: 'masquerade', table, network: [...new Set(exp.values())].join(', '), subnets }] : [],
    });
  }

  // Stale: an element of vxnet's own tables no network masquerades.
  const own = new Set([...input.ownTables, ...input.masqueraded.map((m) => m.setup.natTable)]);
  const recorded = new Map(input.masqueraded.map((m) => [m.network, m]));
  for (const [key, t] of Object.entries(input.tables)) {
    if (!own.has(t.name) || t.elements === undefined) continue;
    const exp = expected.get(key) ?? new Map<string, string>();
    for (const element of t.elements) {
      if (exp.has(element)) continue;
      const subject = `nftables ${key} element ${element}`;
      const fix = `nft delete element ${key} masq '{ ${element} }'`;
      const owners = [...new Set(input.known.filter((k) => overlaps(k.subnet, element)).map((k) => k.network))];
      if (owners.length > 0) {
        // A network has it: stale only if its record says it is masqueraded elsewhere or not at all.
        const recs = owners.map((n) => recorded.get(n));
        if (recs.some((r) => r === undefined)) continue;
        if (recs.some((r) => r!.setup.ipMasq && r!.setup.natTable === t.name)) continue;
        out.push({
          kind: 'masquerade-stale', subject,
          what: `masquerades ${element} of network ${owners.join(', ')}, whose setup record says ${recs.map((r) => (r!.setup.ipMasq ? `masquerade into table ${r!.setup.natTable}` : 'no masquerading (ipMasq false)')).join(', ')}`,
          why: 'the network\'s config changed (ipMasq or natTable) and the setup re-ran without removing the old element',
          fix, safe: false, actions: [],
        });
        continue;
      }
      const inside = input.localAddresses.filter((a) => overlaps(a, element));
      out.push({
        kind: 'masquerade-stale', subject,
        what: `masquerades ${element}, which no network of vxnet has${inside.length ? ` (but this host has ${inside.join(', ')} in it)` : ''}`,
        why: 'the network was removed (ipam/pool deleted, the store replaced) while its masquerade element stayed (a DEL or teardown that did not finish)',
        fix, safe: inside.length === 0,
        actions: inside.length === 0 ? [{ op: 'unmasquerade', table: t.name, family: t.family, element }] : [],
      });
    }
  }
  return out;
}

/** What forwarding each family needs: networks routed through this host (bridge gateways, routed overlays). */
export interface ForwardingNeed {
  readonly family: 4 | 6;
  readonly networks: readonly string[];
}

export function forwardingFindings(needs: readonly ForwardingNeed[], observed: Partial<Record<4 | 6, boolean>>): NatFinding[] {
  const out: NatFinding[] = [];
  for (const n of needs) {
    if (n.networks.length === 0 || observed[n.family] !== false) continue;
    const key = n.family === 4 ? 'net.ipv4.ip_forward' : 'net.ipv6.conf.all.forwarding';
    out.push({
      kind: 'forwarding-off', subject: `sysctl ${key}`,
      what: `IPv${n.family} forwarding is off while ${n.networks.map((x) => `network ${x}`).join(', ')} route${n.networks.length === 1 ? 's' : ''} containers' traffic through this host: it goes nowhere past the host`,
      why: 'turned off by hand, by a hardening tool or a sysctl.d file applied after vxnet set it up',
      fix: `sysctl -w ${key}=1`, safe: false, actions: [],
    });
  }
  return out;
}

/** A routed overlay network's FORWARD accept rules of one family (net/nat.ts routedForwardRules), as `iptables -S` lists them. */
export function routedRulesOf(device: string, family: 4 | 6, subnets: readonly string[]): string[][] {
  return routedForwardRules(device, family, subnets.map((s) => parseCidr(s)).filter((c): c is Cidr => c !== undefined));
}
