// The VIP table's pure core: slots from weights, the elements a set of VIPs needs, diffs and
// the nft text. The kernel side is test/integration/vip-table.test.ts.
import t from 'tap';
import { parseIp, type Ip } from '../../ipam/addr';
import { InvalidNetworkConfig } from '../../lib/errors';
import { MAX_SLOTS, VipIndex, desiredState, diffStates, renderDiff, renderFull, renderSkeleton, slotsFor, type VipEntry } from '../../datapath/vip-plan';

const ip = (s: string): Ip => { const r = parseIp(s); if (!r) throw new Error(s); return r; };
const be = (a: string, port = 8080, weight = 1) => ({ ip: ip(a), port, weight });
const vip = (a: string, backends: VipEntry['backends'], protocol: 'tcp' | 'udp' = 'tcp', port = 80): VipEntry => ({ ip: ip(a), protocol, port, backends });

t.test('slots follow weights', async (t) => {
  t.same(slotsFor([1, 1, 1]), [0, 1, 2]);
  t.same(slotsFor([1, 2]), [0, 1, 1]);
  t.same(slotsFor([2, 4]), [0, 1, 1], 'divided by the common divisor');
  t.same(slotsFor([]), []);
  const big = slotsFor([1000, 1, 3000]);
  t.ok(big.length <= MAX_SLOTS, 'scaled to at most MAX_SLOTS');
  t.ok(big.includes(1), 'a tiny weight keeps one slot');
  const count = (i: number) => big.filter((s) => s === i).length;
  t.ok(count(2) > 2.5 * count(0), 'proportions kept roughly');
  const many = slotsFor(Array.from({ length: MAX_SLOTS }, (_, i) => i + 1));
  t.equal(many.length, MAX_SLOTS);
  t.same(new Set(many).size, MAX_SLOTS, 'every backend keeps a slot');
});

t.test('elements of a VIP', async (t) => {
  const s = desiredState([
    vip('10.96.0.1', [be('10.0.0.2'), be('10.0.0.3', 8080, 2)]),
    vip('fd00::1', [be('fd01::2', 5353)], 'udp', 53),
    vip('10.96.0.2', []),
  ]);
  t.same([...(s.get('services4') ?? [])], [['10.96.0.1 . tcp . 80', 'goto pick3']]);
  t.same([...(s.get('slot0_4') ?? [])], [['10.96.0.1 . tcp . 80', '10.0.0.2 . 8080']]);
  t.same([...(s.get('slot2_4') ?? [])], [['10.96.0.1 . tcp . 80', '10.0.0.3 . 8080']]);
  t.same([...(s.get('services6') ?? [])], [['fd00::1 . udp . 53', 'goto pick1']]);
  t.same([...(s.get('slot0_6') ?? [])], [['fd00::1 . udp . 53', 'fd01::2 . 5353']]);
  t.same([...(s.get('hairpin4') ?? []).keys()], ['10.0.0.2 . 10.0.0.2', '10.0.0.3 . 10.0.0.3']);
  t.same([...(s.get('noep4') ?? []).keys()], ['10.96.0.2 . tcp . 80'], 'no backends: reject');
});

t.test('bad input is a typed error naming the VIP', async (t) => {
  const bad = (entries: VipEntry[], re: RegExp) => t.throws(() => desiredState(entries), InvalidNetworkConfig) && t.throws(() => desiredState(entries), re);
  bad([vip('10.96.0.1', [be('fd00::2')])], /10\.96\.0\.1:80: backend fd00::2:8080 is not of the VIP's address family/);
  bad([vip('10.96.0.1', [be('10.0.0.2', 8080, 0)])], /weight 0/);
  bad([vip('10.96.0.1', [be('10.0.0.2', 70000)])], /backend port 70000/);
  bad([vip('10.96.0.1', [], 'tcp', 0)], /port 0 is not a port/);
  bad([vip('10.96.0.1', []), vip('10.96.0.1', [])], /tcp 10\.96\.0\.1:80 is given twice/);
  bad([{ ...vip('10.96.0.1', []), protocol: 'sctp' as 'tcp' }], /protocol must be tcp or udp/);
  bad([vip('10.96.0.1', Array.from({ length: MAX_SLOTS + 1 }, (_, i) => be(`10.0.1.${i + 1}`)))], /at most 64/);
});

t.test('a diff touches only what changed', async (t) => {
  const a = desiredState([vip('10.96.0.1', [be('10.0.0.2'), be('10.0.0.3')]), vip('10.96.0.5', [be('10.0.0.9')])]);
  const b = desiredState([vip('10.96.0.1', [be('10.0.0.2'), be('10.0.0.4'), be('10.0.0.5')]), vip('10.96.0.5', [be('10.0.0.9')])]);
  const d = diffStates(a, b);
  const text = renderDiff('vxnet-vip', d);
  t.equal(text, [
    'delete element inet vxnet-vip services4 { 10.96.0.1 . tcp . 80 }',
    'delete element inet vxnet-vip slot1_4 { 10.96.0.1 . tcp . 80 }',
    'delete element inet vxnet-vip hairpin4 { 10.0.0.3 . 10.0.0.3 }',
    'add element inet vxnet-vip services4 { 10.96.0.1 . tcp . 80 : goto pick3 }',
    'add element inet vxnet-vip slot1_4 { 10.96.0.1 . tcp . 80 : 10.0.0.4 . 8080 }',
    'add element inet vxnet-vip slot2_4 { 10.96.0.1 . tcp . 80 : 10.0.0.5 . 8080 }',
    'add element inet vxnet-vip hairpin4 { 10.0.0.4 . 10.0.0.4, 10.0.0.5 . 10.0.0.5 }',
    '',
  ].join('\n'));
  t.equal(d.removed, 3);
  t.equal(d.added, 5);
  t.equal(renderDiff('vxnet-vip', diffStates(b, b)), '', 'no change, no batch');
  const back = diffStates(b, a);
  t.equal(back.removed, 5);
  t.equal(back.added, 3);
});

t.test('a backend shared by two VIPs stays in the hairpin set while one uses it', async (t) => {
  const a = desiredState([vip('10.96.0.1', [be('10.0.0.2')]), vip('10.96.0.2', [be('10.0.0.2')])]);
  const b = desiredState([vip('10.96.0.2', [be('10.0.0.2')])]);
  t.notMatch(renderDiff('t', diffStates(a, b)), /hairpin/);
});

t.test('skeleton and full replace', async (t) => {
  const sk = renderSkeleton('vxnet-vip');
  t.match(sk, /^add table inet vxnet-vip\n/);
  t.match(sk, /add rule inet vxnet-vip pick3 numgen random mod 3 vmap \{ 0 : goto slot0, 1 : goto slot1, 2 : goto slot2 \}/);
  t.match(sk, /add rule inet vxnet-vip slot63 dnat ip6 to ip6 daddr \. meta l4proto \. th dport map @slot63_6/);
  t.notMatch(sk, /meta mark/, 'no mark clobbered');
  const chains = sk.split('\n').filter((l) => l.startsWith('add chain')).length;
  t.equal(chains, 2 * MAX_SLOTS + 7, 'a fixed number of chains');
  t.match(sk, /add rule inet vxnet-vip filter-prerouting ct state new jump noep\n/, 'every packet: one test of its connection state; new ones: the lookups');
  const unflushed = sk.split('\n').filter((l) => l.startsWith('add chain')).map((l) => l.split(' ')[4]).filter((name) => !sk.includes(`flush chain inet vxnet-vip ${name}\n`));
  t.same(unflushed, [], 'every chain is flushed before its rules: the skeleton can run again');
  const full = renderFull('vxnet-vip', desiredState([vip('10.96.0.1', [be('10.0.0.2')])]));
  t.match(full, /^add table inet vxnet-vip\ndelete table inet vxnet-vip\nadd table inet vxnet-vip\n/);
  t.match(full, /add element inet vxnet-vip services4 \{ 10\.96\.0\.1 \. tcp \. 80 : goto pick1 \}\n/);
});

t.test('VipIndex: random puts and removals give the state of a fresh build, and each diff turns the old state into the new', async (t) => {
  let seed = 13;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const addrs = Array.from({ length: 12 }, (_, i) => `10.96.0.${i + 1}`);
  const backs = Array.from({ length: 6 }, (_, i) => `10.0.0.${i + 2}`);
  const index = new VipIndex();
  const truth = new Map<string, VipEntry>();
  let state = desiredState([]);
  for (let step = 0; step < 1500; step++) {
    const put: VipEntry[] = [];
    const remove: VipEntry[] = [];
    const seen = new Set<string>();
    for (let k = rnd(3) + 1; k > 0; k--) {
      const a = addrs[rnd(addrs.length)] as string;
      if (seen.has(a)) continue;
      seen.add(a);
      if (rnd(4) === 0) { remove.push(vip(a, [])); truth.delete(a); continue; }
      const n = rnd(4);
      const bs = [...new Set(Array.from({ length: n }, () => backs[rnd(backs.length)] as string))].map((b) => be(b, 8080 + rnd(2), 1 + rnd(3)));
      const e = vip(a, bs);
      put.push(e);
      truth.set(a, e);
    }
    const diff = index.change(put, remove);
    const next = desiredState([...truth.values()]);
    const applied = new Map([...state].map(([m, els]) => [m, new Map(els)]));
    for (const [m, keys] of diff.deletes) for (const k of keys) { if (!applied.get(m)?.delete(k)) t.fail(`step ${step}: delete of a missing ${m} ${k}`); }
    for (const [m, els] of diff.adds) for (const [k, v] of els) {
      let mm = applied.get(m);
      if (!mm) applied.set(m, (mm = new Map()));
      if (mm.has(k)) t.fail(`step ${step}: add of a present ${m} ${k}`);
      mm.set(k, v);
    }
    const norm = (s: ReturnType<typeof desiredState>): string => JSON.stringify([...s].filter(([, m]) => m.size).map(([k, m]) => [k, [...m].sort()]).sort());
    if (norm(applied) !== norm(next) || norm(index.state()) !== norm(next)) { t.fail(`step ${step}: differs from a fresh build`); break; }
    if (step % 100 === 0) {
      const norm = (text: string): string => text.split('\n').map((l) => {
        const m = /^(add element \S+ \S+ \S+ \S+) \{ (.*) \}$/.exec(l);
        return m ? `${m[1]} { ${(m[2] as string).split(', ').sort().join(', ')} }` : l;
      }).sort().join('\n');
      if (norm(index.renderFull('vxt')) !== norm(renderFull('vxt', index.state()))) { t.fail(`step ${step}: renderFull from the index differs`); break; }
    }
    state = next;
  }
  t.pass('1500 steps');
});
