// overlay/plan.ts: entries per peer, desired-vs-actual convergence, peer events, block choice,
// network definitions. Pure: no root, no kernel.
import t from 'tap';
import { Cidr, Ip, formatCidr, formatIp, parseCidr, parseIp } from '../../ipam/addr';
import {
  BlockLease, EMPTY, Entries, Peer, blockShortage, chooseBlock, describeEntries, describeShortage, desiredEntries, diffEntries, diffPeers, entriesFor,
  isEmptyDiff, leasesToOrphan, leasesToRevive, overlayMtu, overlayNetworkToJson, parseOverlayNetwork, shortageFromJson, shortageToJson, vtepMacFor,
  vxlanDeviceName,
} from '../../overlay/plan';
import { caught, invalidConf } from '../ipam/helpers/errors';

const ip = (s: string): Ip => parseIp(s) as Ip;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const peer = (id: string, underlay: string, mac: string, ...blocks: string[]): Peer => ({ id, underlay: ip(underlay), mac, blocks: blocks.map(cidr) });
const lines = (e: Entries): string[] => describeEntries(e).sort();

t.test('entriesFor: neighbour VTEP IP -> MAC, FDB MAC -> underlay, route block via VTEP IP (one path, v4 and v6)', async (t) => {
  const cases: Array<{ name: string; peer: Peer; want: string[] }> = [
    { name: 'IPv4 block, IPv4 underlay',
      peer: peer('h2', '10.238.0.2', '02:AA:00:00:00:02', '10.237.2.0/24'),
      want: ['fdb 02:aa:00:00:00:02 dst 10.238.0.2', 'neigh 10.237.2.0 lladdr 02:aa:00:00:00:02', 'route 10.237.2.0/24 via 10.237.2.0 onlink'] },
    { name: 'dual stack',
      peer: peer('h3', '10.238.0.3', '02:aa:00:00:00:03', '10.237.3.0/24', 'fd37:0:0:3::/64'),
      want: ['fdb 02:aa:00:00:00:03 dst 10.238.0.3', 'neigh 10.237.3.0 lladdr 02:aa:00:00:00:03', 'neigh fd37:0:0:3:: lladdr 02:aa:00:00:00:03',
        'route 10.237.3.0/24 via 10.237.3.0 onlink', 'route fd37:0:0:3::/64 via fd37:0:0:3:: onlink'] },
    { name: 'IPv6 only, IPv6 underlay',
      peer: peer('h4', 'fd38::4', '02:aa:00:00:00:04', 'fd37:0:0:4::/64'),
      want: ['fdb 02:aa:00:00:00:04 dst fd38::4', 'neigh fd37:0:0:4:: lladdr 02:aa:00:00:00:04', 'route fd37:0:0:4::/64 via fd37:0:0:4:: onlink'] },
    { name: 'block with host bits is normalised',
      peer: peer('h5', '10.238.0.5', '02:aa:00:00:00:05', '10.237.5.7/24'),
      want: ['fdb 02:aa:00:00:00:05 dst 10.238.0.5', 'neigh 10.237.5.0 lladdr 02:aa:00:00:00:05', 'route 10.237.5.0/24 via 10.237.5.0 onlink'] },
  ];
  for (const c of cases) t.same(lines(entriesFor(c.peer)), c.want.sort(), c.name);
});

const P1 = peer('h1', '10.238.0.1', '02:aa:00:00:00:01', '10.237.1.0/24');
const P2 = peer('h2', '10.238.0.2', '02:aa:00:00:00:02', '10.237.2.0/24');
const P3 = peer('h3', '10.238.0.3', '02:aa:00:00:00:03', '10.237.3.0/24', 'fd37:0:0:3::/64');

t.test('desiredEntries skips self and drops (and reports) a peer that clashes with an earlier one', async (t) => {
  const { entries, conflicts } = desiredEntries([P3, P1, P2], 'h1');
  t.same(lines(entries), [...lines(entriesFor(P2)), ...lines(entriesFor(P3))].sort());
  t.same(conflicts, []);
  const dupBlock = peer('h9', '10.238.0.9', '02:aa:00:00:00:09', '10.237.2.0/24');
  const dupMac = peer('h8', '10.238.0.8', '02:AA:00:00:00:02', '10.237.8.0/24');
  const r = desiredEntries([P2, dupBlock, dupMac], 'self');
  t.same(lines(r.entries), lines(entriesFor(P2)));
  t.same(r.conflicts, [
    { what: 'mac 02:aa:00:00:00:02', kept: 'h2', dropped: 'h8' },
    { what: 'block 10.237.2.0/24', kept: 'h2', dropped: 'h9' },
  ]);
});

t.test('diffEntries converges from any actual state', async (t) => {
  const want = desiredEntries([P2, P3], 'h1').entries;
  const cases: Array<{ name: string; actual: Entries; set: string[]; del: string[] }> = [
    { name: 'empty device: everything is set', actual: EMPTY, set: lines(want), del: [] },
    { name: 'already right: nothing to do', actual: want, set: [], del: [] },
    { name: 'a neighbour deleted by hand comes back',
      actual: { ...want, neigh: want.neigh.filter((n) => formatIp(n.ip) !== '10.237.2.0') },
      set: ['neigh 10.237.2.0 lladdr 02:aa:00:00:00:02'], del: [] },
    { name: 'a route deleted by hand comes back',
      actual: { ...want, routes: want.routes.filter((r) => formatCidr(r.dst) !== 'fd37:0:0:3::/64') },
      set: ['route fd37:0:0:3::/64 via fd37:0:0:3:: onlink'], del: [] },
    { name: 'stale entries of a departed host are removed',
      actual: { neigh: [...want.neigh, ...entriesFor(P1).neigh], fdb: [...want.fdb, ...entriesFor(P1).fdb], routes: [...want.routes, ...entriesFor(P1).routes] },
      set: [], del: lines(entriesFor(P1)) },
    { name: 'wrong values are replaced (peer moved underlay, MAC changed, route via the wrong VTEP)',
      actual: {
        neigh: want.neigh.map((n) => (formatIp(n.ip) === '10.237.2.0' ? { ...n, mac: '02:bb:00:00:00:02' } : n)),
        fdb: want.fdb.map((f) => (f.mac === '02:aa:00:00:00:02' ? { ...f, dst: ip('10.238.9.9') } : f)),
        routes: want.routes.map((r) => (formatCidr(r.dst) === '10.237.3.0/24' ? { ...r, via: ip('10.237.2.0') } : r)),
      },
      set: ['neigh 10.237.2.0 lladdr 02:aa:00:00:00:02', 'fdb 02:aa:00:00:00:02 dst 10.238.0.2', 'route 10.237.3.0/24 via 10.237.3.0 onlink'],
      del: [] },
    { name: 'an FDB MAC with two wrong destinations: both deleted, the right one created',
      actual: { ...want, fdb: [...want.fdb.filter((f) => f.mac !== '02:aa:00:00:00:02'), { mac: '02:aa:00:00:00:02', dst: ip('10.238.7.7') }, { mac: '02:aa:00:00:00:02', dst: ip('10.238.8.8') }] },
      set: ['fdb 02:aa:00:00:00:02 dst 10.238.0.2'], del: ['fdb 02:aa:00:00:00:02 dst 10.238.7.7', 'fdb 02:aa:00:00:00:02 dst 10.238.8.8'] },
    { name: 'an FDB MAC with two destinations keeps only the right one',
      actual: { ...want, fdb: [...want.fdb, { mac: '02:aa:00:00:00:03', dst: ip('10.238.7.7') }] },
      set: [], del: ['fdb 02:aa:00:00:00:03 dst 10.238.7.7'] },
    { name: 'MAC case does not matter',
      actual: { ...want, neigh: want.neigh.map((n) => ({ ...n, mac: n.mac.toUpperCase() })), fdb: want.fdb.map((f) => ({ ...f, mac: f.mac.toUpperCase() })) },
      set: [], del: [] },
  ];
  for (const c of cases) {
    const d = diffEntries(want, c.actual);
    t.same(lines(d.set), [...c.set].sort(), `${c.name}: set`);
    t.same(lines(d.del), [...c.del].sort(), `${c.name}: del`);
    t.equal(isEmptyDiff(d), c.set.length === 0 && c.del.length === 0, `${c.name}: isEmptyDiff`);
  }
});

t.test('applying a diff reaches the desired state (property over random actual states)', async (t) => {
  const want = desiredEntries([P1, P2, P3], 'self').entries;
  const junk = entriesFor(peer('gone', '10.238.0.99', '02:aa:00:00:00:99', '10.237.99.0/24', 'fd37:0:0:99::/64'));
  let seed = 7;
  const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
  const pick = <T>(xs: readonly T[]): T[] => xs.filter(() => rand() < 0.5);
  for (let i = 0; i < 200; i++) {
    const actual: Entries = {
      neigh: [...pick(want.neigh), ...pick(junk.neigh)], fdb: [...pick(want.fdb), ...pick(junk.fdb)], routes: [...pick(want.routes), ...pick(junk.routes)],
    };
    const d = diffEntries(want, actual);
    const applied = (k: keyof Entries): string[] => {
      const gone = new Set(lines({ ...EMPTY, [k]: d.del[k] }));
      const kept = lines({ ...EMPTY, [k]: actual[k] }).filter((l) => !gone.has(l));
      return [...new Set([...kept, ...lines({ ...EMPTY, [k]: d.set[k] })])].sort();
    };
    const after = [...applied('neigh'), ...applied('fdb'), ...applied('routes')].sort();
    if (JSON.stringify(after) !== JSON.stringify(lines(want))) { t.fail(`case ${i} did not converge`); return; }
  }
  t.pass('200 random starting states converge in one diff');
});

t.test('diffPeers: join, leave, change; nothing for an unchanged snapshot', async (t) => {
  const moved = { ...P2, underlay: ip('10.238.1.2') };
  const cases: Array<{ name: string; known: Peer[]; snap: Peer[]; want: string[] }> = [
    { name: 'first snapshot', known: [], snap: [P1, P2], want: ['join h1', 'join h2'] },
    { name: 'unchanged', known: [P1, P2], snap: [P2, P1], want: [] },
    { name: 'one leaves, one joins', known: [P1, P2], snap: [P2, P3], want: ['join h3', 'leave h1'] },
    { name: 'underlay moved', known: [P1, P2], snap: [P1, moved], want: ['change h2'] },
    { name: 'gained an IPv6 block', known: [P3], snap: [{ ...P3, blocks: [...P3.blocks, cidr('fd37:0:0:33::/64')] }], want: ['change h3'] },
    { name: 'everyone gone', known: [P1, P2], snap: [], want: ['leave h1', 'leave h2'] },
  ];
  for (const c of cases) t.same(diffPeers(c.known, c.snap).map((e) => `${e.type} ${e.peer.id}`).sort(), c.want, c.name);
});

t.test('chooseBlock: own block back, lowest free, reclaim after grace, full', async (t) => {
  const subnet = cidr('10.237.0.0/22'); // four /24s
  const lease = (b: string, hostId: string, orphanedAt?: number): BlockLease => ({ block: cidr(b), hostId, ...(orphanedAt !== undefined ? { orphanedAt } : {}) });
  const full = [lease('10.237.0.0/24', 'a'), lease('10.237.1.0/24', 'b'), lease('10.237.2.0/24', 'c', 1000), lease('10.237.3.0/24', 'd', 5000)];
  const cases: Array<{ name: string; leases: BlockLease[]; host: string; alive: string[]; now: number; want: string | undefined }> = [
    { name: 'empty pool: the first block', leases: [], host: 'x', alive: [], now: 0, want: 'free 10.237.0.0/24' },
    { name: 'lowest gap', leases: [lease('10.237.0.0/24', 'a'), lease('10.237.2.0/24', 'c')], host: 'x', alive: ['a', 'c'], now: 0, want: 'free 10.237.1.0/24' },
    { name: 'own block on re-registration', leases: full, host: 'b', alive: ['a', 'b'], now: 0, want: 'own 10.237.1.0/24' },
    { name: 'own block even while orphaned (came back in its grace period)', leases: full, host: 'c', alive: ['a', 'b'], now: 1001, want: 'own 10.237.2.0/24' },
    { name: 'full, grace not over', leases: full, host: 'x', alive: ['a', 'b'], now: 1000 + 59_999, want: undefined },
    { name: 'full, lowest reclaimable after grace', leases: full, host: 'x', alive: ['a', 'b'], now: 1000 + 60_000, want: 'reclaim 10.237.2.0/24' },
    { name: 'full, a holder back alive is not reclaimed', leases: full, host: 'x', alive: ['a', 'b', 'c'], now: 100_000, want: 'reclaim 10.237.3.0/24' },
    { name: 'full, not yet marked orphaned: not reclaimable', leases: full.map((l) => ({ block: l.block, hostId: l.hostId })), host: 'x', alive: [], now: 1e9, want: undefined },
    { name: 'leases of other subnets or sizes ignored', leases: [lease('10.99.0.0/24', 'z'), lease('10.237.0.0/23', 'y')], host: 'x', alive: [], now: 0, want: 'free 10.237.0.0/24' },
  ];
  for (const c of cases) {
    const r = chooseBlock({ subnet, blockPrefix: 24, leases: c.leases, hostId: c.host, alive: new Set(c.alive), now: c.now, graceMs: 60_000 });
    t.equal(r && `${r.kind} ${formatCidr(r.block)}`, c.want, c.name);
  }
  const v6 = chooseBlock({ subnet: cidr('fd37::/48'), blockPrefix: 64, leases: [{ block: cidr('fd37::/64'), hostId: 'a' }], hostId: 'b', alive: new Set(['a']), now: 0, graceMs: 0 });
  t.equal(v6 && formatCidr(v6.block), 'fd37:0:0:1::/64', 'IPv6: same code path');
  const big = Array.from({ length: 5000 }, (_, i) => ({ block: { ip: { family: 4 as const, value: (10n << 24n) + (BigInt(i) << 8n) }, prefix: 24 }, hostId: `h${i}` }));
  const start = process.hrtime.bigint();
  const r = chooseBlock({ subnet: cidr('10.0.0.0/8'), blockPrefix: 24, leases: big, hostId: 'new', alive: new Set(), now: 0, graceMs: 0 });
  t.equal(r && formatCidr(r.block), '10.19.136.0/24', '5000 leases: block 5000');
  t.ok(process.hrtime.bigint() - start < 200_000_000n, '5000 leases chosen within 200 ms');
});

t.test('blockShortage: why a full subnet has no block for a host, and when the first may be reclaimed', async (t) => {
  const subnet = cidr('10.235.0.0/23'); // two /24s
  const lease = (b: string, hostId: string, orphanedAt?: number): BlockLease => ({ block: cidr(b), hostId, ...(orphanedAt !== undefined ? { orphanedAt } : {}) });
  const req = (leases: BlockLease[], alive: string[], now: number) => ({ subnet, blockPrefix: 24, leases, hostId: 'c', alive: new Set(alive), now, graceMs: 6000 });
  t.equal(blockShortage(req([lease('10.235.0.0/24', 'a')], ['a'], 0)), undefined, 'a free block: no shortage');
  t.equal(blockShortage(req([lease('10.235.0.0/24', 'a'), lease('10.235.1.0/24', 'c')], ['a'], 0)), undefined, 'its own block: no shortage');
  t.equal(blockShortage(req([lease('10.235.0.0/24', 'a'), lease('10.235.1.0/24', 'b', 1000)], ['a'], 7000)), undefined, 'a reclaimable block: no shortage');

  const alive = blockShortage(req([lease('10.235.1.0/24', 'b'), lease('10.235.0.0/24', 'a')], ['a', 'b'], 0));
  t.same(alive && shortageToJson(alive), {
    subnet: '10.235.0.0/23', blockPrefix: 24, blocks: 2, nextReclaimableAt: null,
    holders: [{ hostId: 'a', block: '10.235.0.0/24', state: 'held', reclaimableAt: null }, { hostId: 'b', block: '10.235.1.0/24', state: 'held', reclaimableAt: null }],
  }, 'both held, lowest block first');
  t.equal(describeShortage(alive!, 0, 'c'), 'no free /24 block in 10.235.0.0/23 for host c: both blocks are held (a (10.235.0.0/24, alive), b (10.235.1.0/24, alive)); none becomes free before its host\'s lease expires and the grace period after it passes');

  const t0 = Date.parse('2026-12-04T16:00:00Z');
  const grace = blockShortage(req([lease('10.235.0.0/24', 'a'), lease('10.235.1.0/24', 'b', t0)], ['a'], t0 + 1500));
  t.equal(grace?.nextReclaimableAt, t0 + 6000, 'reclaimable at orphanedAt + grace');
  t.equal(describeShortage(grace!, t0 + 1500), 'no free /24 block in 10.235.0.0/23: both blocks are held (a (10.235.0.0/24, alive), b (10.235.1.0/24, expired, reclaimable in 5 s at 16:00:06Z)); vxnetd claims one as soon as its grace period is over');
  const unmarked = blockShortage(req([lease('10.235.0.0/24', 'a'), lease('10.235.1.0/24', 'b')], ['a'], 0));
  t.match(describeShortage(unmarked!, 0), /b \(10\.235\.1\.0\/24, expired, grace period not started\)/, 'a dead holder not marked yet');
  t.equal(unmarked?.nextReclaimableAt, undefined);

  const many = Array.from({ length: 16 }, (_, i) => lease(`10.236.${i}.0/24`, `h${i}`));
  const big = blockShortage({ subnet: cidr('10.236.0.0/20'), blockPrefix: 24, leases: many, hostId: 'x', alive: new Set(many.map((l) => l.hostId)), now: 0, graceMs: 0 });
  t.match(describeShortage(big!, 0), /^no free \/24 block in 10\.236\.0\.0\/20: all 16 blocks are held \(h0 .*h7 \(10\.236\.7\.0\/24, alive\), and 8 more\)/, 'many holders: the first eight, then a count');

  for (const s of [alive!, grace!, unmarked!]) t.same(shortageFromJson(JSON.parse(JSON.stringify(shortageToJson(s)))), s, 'JSON round trip');
  for (const bad of [null, {}, { ...shortageToJson(alive!), subnet: 'x' }, { ...shortageToJson(alive!), holders: [{ hostId: 'a', block: '10.235.0.0/24', state: 'gone' }] },
    { ...shortageToJson(alive!), nextReclaimableAt: 'soon' }]) {
    t.equal(shortageFromJson(bad), undefined, `rejected: ${JSON.stringify(bad)}`);
  }
});

t.test('orphan marks: set when the holder has no lease, cleared when it is back', async (t) => {
  const leases: BlockLease[] = [{ block: cidr('10.237.0.0/24'), hostId: 'a' }, { block: cidr('10.237.1.0/24'), hostId: 'b', orphanedAt: 5 }, { block: cidr('10.237.2.0/24'), hostId: 'c', orphanedAt: 5 }];
  t.same(leasesToOrphan(leases, new Set(['b'])).map((l) => l.hostId), ['a']);
  t.same(leasesToRevive(leases, new Set(['b'])).map((l) => l.hostId), ['b']);
});

t.test('parseOverlayNetwork: defaults and rejections with exact text', async (t) => {
  const n = parseOverlayNetwork({ name: 'ov', vni: 4242, subnets: ['10.237.0.0/16', 'FD37::/48'] });
  t.same(overlayNetworkToJson(n), { name: 'ov', vni: 4242, subnets: ['10.237.0.0/16', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64, port: 4789 });
  t.same(overlayNetworkToJson(parseOverlayNetwork({ name: 'x', vni: 1, subnet: '10.0.0.0/25', mtu: 1400 })),
    { name: 'x', vni: 1, subnets: ['10.0.0.0/25'], blockPrefix: 26, mtu: 1400, port: 4789 }, 'small subnet: block one bit longer; "subnet" accepted');
  const bad: Array<[unknown, string]> = [
    [null, 'overlay network: must be an object'],
    [{ name: '', vni: 1, subnets: ['10.0.0.0/16'] }, 'name: "" is not a network name (1-63 of A-Z a-z 0-9 _ . -)'],
    [{ name: 'a', vni: 0, subnets: ['10.0.0.0/16'] }, 'vni: 0 must be an integer between 1 and 16777215'],
    [{ name: 'a', vni: 16777216, subnets: ['10.0.0.0/16'] }, 'vni: 16777216 must be an integer between 1 and 16777215'],
    [{ name: 'a', vni: 1 }, 'subnets: at least one subnet is required (e.g. ["10.237.0.0/16"])'],
    [{ name: 'a', vni: 1, subnets: ['10.0.0.1/16'] }, 'subnets[0]: 10.0.0.1/16 has host bits set; network is 10.0.0.0/16'],
    [{ name: 'a', vni: 1, subnets: ['nope'] }, 'subnets[0]: "nope" is not a valid CIDR'],
    [{ name: 'a', vni: 1, subnets: ['10.0.0.0/16', '10.1.0.0/16'] }, 'subnets[1]: a second IPv4 subnet; an overlay network has at most one per family'],
    [{ name: 'a', vni: 1, subnets: ['10.0.0.0/16'], blockPrefix: 16 }, "blockPrefix: 16 must be an integer longer than the subnet's /16 and at most /30"],
    [{ name: 'a', vni: 1, subnets: ['fd00::/48'], blockPrefix6: 127 }, "blockPrefix6: 127 must be an integer longer than the subnet's /48 and at most /126"],
    [{ name: 'a', vni: 1, subnets: ['10.0.0.0/16'], mtu: 100 }, 'mtu: 100 must be an integer between 576 and 65535'],
    [{ name: 'a', vni: 1, subnets: ['10.0.0.0/16'], port: 0 }, 'port: 0 must be a UDP port number'],
  ];
  for (const [input, msg] of bad) {
    t.strictSame(caught(() => parseOverlayNetwork(input)), invalidConf(msg), msg);
  }
});

t.test('names, MTU, MACs', async (t) => {
  t.equal(vxlanDeviceName(4242), 'vxlan.4242');
  t.ok(vxlanDeviceName(16777215).length <= 15, 'longest VNI fits IFNAMSIZ');
  t.equal(overlayMtu({ mtu: undefined }, 1500), 1450, 'IPv4 underlay: minus 50');
  t.equal(overlayMtu({ mtu: undefined }, 9000, 6), 8930, 'IPv6 underlay: minus 70');
  t.equal(overlayMtu({ mtu: 1400 }, 1500), 1400, 'set MTU wins');
  const m = vtepMacFor('host-a', 4242);
  t.match(m, /^02(:[0-9a-f]{2}){5}$/, 'locally administered unicast');
  t.equal(vtepMacFor('host-a', 4242), m, 'stable');
  t.not(vtepMacFor('host-b', 4242), m, 'differs per host');
  t.not(vtepMacFor('host-a', 4243), m, 'differs per VNI');
  const macs = new Set(Array.from({ length: 10000 }, (_, i) => vtepMacFor(`host-${i}`, 1)));
  t.equal(macs.size, 10000, 'no collisions among 10000 hosts');
});

t.test('1000 peers: desired entries and a full diff stay fast', async (t) => {
  const peers = Array.from({ length: 1000 }, (_, i) => peer(`h${i}`, `10.238.${i >> 8}.${i & 255}`, vtepMacFor(`h${i}`, 1),
    `10.${200 + (i >> 8)}.${i & 255}.0/24`));
  const start = process.hrtime.bigint();
  const { entries, conflicts } = desiredEntries(peers, 'h0');
  const d = diffEntries(entries, EMPTY);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.equal(conflicts.length, 0);
  t.equal(d.set.routes.length, 999);
  t.comment(`planned 1000 peers in ${ms.toFixed(1)} ms`);
});
