// vxnetctl doctor's VIP rules (ctl/doctor-vips.ts): vxnetd's VIPs (the API's views) against the
// kernel's VIP table read from `nft -j list table`'s JSON: consistent, missing, stale, backends
// differing (a slot emptied, a weight changed, a backend swapped), noep, hairpins, a table
// missing, foreign or incomplete, and many findings folded. No root: the JSON is what nft prints
// for the table vip-plan.ts renders (its element text turned into nft's JSON shape).
import t from 'tap';
import { VipIndex, MAX_SLOTS } from '../../datapath/vip-plan';
import { entriesOf, type VipView } from '../../vip/model';
import { capPerKind, desiredVips, parseVipTable, vipFindings } from '../../ctl/doctor-vips';
import type { Finding } from '../../ctl/doctor-rules';

const view = (vip: string, addresses: string[], port: number, backends: Array<[string, number, number?, string?]>, name?: string): VipView => ({
  vip, ...(name ? { name } : {}), addresses, protocol: 'tcp', port,
  backends: backends.map(([ip, p, weight = 1, state = 'up']) => ({ endpoint: `h/n/${ip}`, name: ip, host: 'h', ip, port: p, weight, state: state as 'up' })),
});

const VIEWS: VipView[] = [
  view('/web:80/tcp', ['198.18.0.5', 'fd76:786e:6574::5'], 80, [['10.1.0.2', 8080], ['10.1.0.3', 8080, 2], ['fd00::2', 8080]], 'web'),
  view('10.40.0.1:443/tcp', ['10.40.0.1'], 443, [['10.1.0.4', 8443, 1, 'unhealthy']]),
];

/** nft's JSON for a concatenation written as vip-plan text ("198.18.0.5 . tcp . 80"). */
function concat(text: string): unknown {
  return { concat: text.split(' . ').map((p) => (/^\d+$/.test(p) ? Number(p) : p)) };
}

/** What `nft -j list table inet NAME` prints for the table vxnetd would hold for `views`. */
function kernelJson(views: readonly VipView[], edit: (state: Map<string, Map<string, string>>) => void = () => undefined): unknown {
  const index = new VipIndex();
  index.replaceAll(entriesOf(views));
  const state = new Map([...index.state()].map(([m, els]) => [m, new Map(els)]));
  edit(state);
  const items: unknown[] = [{ metainfo: { version: '1.0.9' } }, { table: { family: 'inet', name: 'vxt', handle: 1 } }];
  const maps = ['services4', 'services6', 'noep4', 'noep6', 'hairpin4', 'hairpin6', ...Array.from({ length: MAX_SLOTS }, (_, k) => [`slot${k}_4`, `slot${k}_6`]).flat()];
  for (const m of maps) {
    const els = [...(state.get(m) ?? new Map<string, string>())];
    const isMap = m.startsWith('services') || m.startsWith('slot');
    const elem = els.map(([k, v]) => (isMap ? [concat(k), v.startsWith('goto ') ? { goto: { target: v.slice(5) } } : concat(v)] : concat(k)));
    items.push({ [isMap ? 'map' : 'set']: { family: 'inet', name: m, table: 'vxt', ...(elem.length ? { elem } : {}) } });
  }
  const chains = ['nat-prerouting', 'nat-output', 'nat-postrouting', 'filter-prerouting', 'filter-output', 'services',
    ...Array.from({ length: MAX_SLOTS }, (_, k) => `slot${k}`), ...Array.from({ length: MAX_SLOTS }, (_, k) => `pick${k + 1}`)];
  for (const c of chains) {
    items.push({ chain: { family: 'inet', table: 'vxt', name: c } });
    items.push({ rule: { family: 'inet', table: 'vxt', chain: c, expr: [] } });
  }
  return { nftables: items };
}

const kinds = (fs: readonly Finding[]): string[] => fs.map((f) => f.kind);

t.test('the table vxnetd renders for its VIPs reads back as those VIPs', async (t) => {
  const kernel = parseVipTable(kernelJson(VIEWS));
  const want = desiredVips(VIEWS);
  t.same([...kernel.vips.keys()].sort(), [...want.keys()].sort());
  t.same(kernel.vips.get('198.18.0.5 . tcp . 80'), ['10.1.0.2:8080', '10.1.0.3:8080', '10.1.0.3:8080'], 'weight 2: two slots');
  t.same(kernel.vips.get('fd76:786e:6574::5 . tcp . 80'), ['[fd00::2]:8080']);
  t.same(kernel.vips.get('10.40.0.1 . tcp . 443'), [], 'only backend unhealthy: noep');
  t.equal(want.get('198.18.0.5 . tcp . 80')?.label, '/web:80/tcp at 198.18.0.5');
  t.same(vipFindings('vxt', VIEWS, kernel), []);
});

t.test('a VIP missing, a stale one, a slot emptied, a backend swapped, noep instead of backends', async (t) => {
  const missing = vipFindings('vxt', VIEWS, parseVipTable(kernelJson(VIEWS, (s) => s.get('services6')?.clear())));
  t.same(kinds(missing), ['vip-missing']);
  t.match(missing[0], { subject: 'VIP /web:80/tcp at [fd76:786e:6574::5]', safe: false, actions: [] });
  t.match(missing[0].what, /no element for fd76:786e:6574::5 \. tcp \. 80/);
  t.match(missing[0].fix, /restart vxnetd/);

  const stale = vipFindings('vxt', VIEWS, parseVipTable(kernelJson([...VIEWS, view('/old:81/tcp', ['198.18.0.9'], 81, [['10.1.0.9', 81]])])));
  t.same(kinds(stale), ['vip-stale', 'vip-hairpin']);
  t.match(stale[0], { subject: 'VIP 198.18.0.9 . tcp . 81 in table inet vxt' });
  t.match(stale[0].what, /balances it \(10\.1\.0\.9:81\) but vxnetd has no such VIP/);
  t.match(stale[1].what, /not needed 10\.1\.0\.9 \. 10\.1\.0\.9/);

  // One backend's slot deleted by hand: a third of new connections go nowhere.
  const emptied = vipFindings('vxt', VIEWS, parseVipTable(kernelJson(VIEWS, (s) => s.get('slot0_4')?.clear())));
  t.same(kinds(emptied), ['vip-backends-differ']);
  t.match(emptied[0].what, /1 of its 3 slots is empty \(slot 0\): 33% of its new connections go nowhere; lacks 10\.1\.0\.2:8080/);

  // The kernel sends to another backend (the weights as vxnetd has them: 1 and 2).
  const swapped = vipFindings('vxt', VIEWS, parseVipTable(kernelJson(VIEWS, (s) => s.get('slot0_4')?.set('198.18.0.5 . tcp . 80', '10.1.0.7 . 8080'))));
  t.same(kinds(swapped), ['vip-backends-differ']);
  t.match(swapped[0].what, /lacks 10\.1\.0\.2:8080; also sends to 10\.1\.0\.7:8080/);

  // A weight changed in the model but not in the kernel: counted by slots.
  const reweighted = VIEWS.map((v) => (v.vip === '/web:80/tcp' ? { ...v, backends: v.backends.map((b) => ({ ...b, weight: 1 })) } : v));
  t.same(kinds(vipFindings('vxt', reweighted, parseVipTable(kernelJson(VIEWS)))), ['vip-backends-differ']);

  // The kernel rejects a VIP whose backends are up.
  const rejected = vipFindings('vxt', VIEWS, parseVipTable(kernelJson(VIEWS, (s) => {
    s.get('services4')?.delete('198.18.0.5 . tcp . 80');
    for (const [m, els] of s) if (m.startsWith('slot')) els.delete('198.18.0.5 . tcp . 80');
    s.set('noep4', new Map([...(s.get('noep4') ?? []), ['198.18.0.5 . tcp . 80', '']]));
  })));
  t.same(kinds(rejected), ['vip-backends-differ']);
  t.match(rejected[0].what, /rejects new connections/);
});

t.test('the table missing, foreign, incomplete', async (t) => {
  t.same(kinds(vipFindings('vxt', VIEWS, undefined)), ['vip-table-missing']);
  t.same(vipFindings('vxt', [], undefined), [], 'no VIPs: no table needed');
  const foreign = vipFindings('vxt', VIEWS, parseVipTable({ nftables: [{ table: { family: 'inet', name: 'vxt' } }, { chain: { name: 'input' } }] }));
  t.same(kinds(foreign), ['vip-table-foreign']);
  const json = kernelJson(VIEWS) as { nftables: Array<Record<string, { name?: string; chain?: string }>> };
  const flushed = { nftables: json.nftables.filter((i) => !(i.rule?.chain === 'nat-prerouting') && !(i.chain?.name === 'pick3')) };
  const incomplete = vipFindings('vxt', VIEWS, parseVipTable(flushed));
  t.same(kinds(incomplete), ['vip-table-incomplete']);
  t.match(incomplete[0].what, /chain pick3, chain nat-prerouting's rules/);
  t.same(parseVipTable('not json at all').vips.size, 0, 'anything unreadable reads as nothing');
});

t.test('many findings of a kind are folded', async (t) => {
  const many = Array.from({ length: 25 }, (_, i) => view(`/v${i}:80/tcp`, [`198.18.1.${i}`], 80, [['10.1.0.2', 80]]));
  const found = vipFindings('vxt', many, parseVipTable(kernelJson([])));
  t.equal(found.length, 12, '10 VIPs, one folded finding for 15 more, the hairpin');
  t.match(found[10], { kind: 'vip-missing', subject: '15 more VIPs (vip-missing)' });
  t.same(capPerKind([], 'x'), []);
});
