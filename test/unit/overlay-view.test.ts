// overlay/view.ts: the incremental desired view must always equal what a full computation
// (desiredEntries) gives for the same peers, and its diffs, applied to a device that held the
// previous state, must leave exactly that. Random histories of joins, leaves, block and
// underlay changes, clashes (two peers on one block or one MAC) and resets.
import t from 'tap';
import { Cidr, Ip, formatCidr, formatIp, parseCidr, parseIp } from '../../ipam/addr';
import { Entries, EntryDiff, Peer, desiredEntries, vtepMacFor } from '../../overlay/plan';
import { DesiredView } from '../../overlay/view';

const ip = (s: string): Ip => parseIp(s) as Ip;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const SELF = 'self';

const peer = (id: string, block: number, underlay: number, mac?: string): Peer => ({
  id, underlay: ip(`10.9.${underlay >> 8}.${underlay & 255}`), mac: mac ?? vtepMacFor(id, 7),
  blocks: [cidr(`10.${200 + (block >> 8)}.${block & 255}.0/24`), cidr(`fd00:${block.toString(16)}::/64`)],
});

/** A device's entries as keyed sets of strings (order does not matter). */
function canon(e: Entries): string[] {
  return [
    ...e.neigh.map((n) => `neigh ${formatIp(n.ip)} ${n.mac.toLowerCase()}`),
    ...e.fdb.map((f) => `fdb ${f.mac.toLowerCase()} ${formatIp(f.dst)}`),
    ...e.routes.map((r) => `route ${formatCidr(r.dst)} ${formatIp(r.via)}`),
  ].sort();
}

/** A device as apply.ts leaves it: deletions first, then sets (replace by key). */
class Device {
  neigh = new Map<string, string>();
  fdb = new Map<string, string>();
  routes = new Map<string, string>();
  apply(d: EntryDiff): void {
    for (const r of d.del.routes) this.routes.delete(formatCidr(r.dst));
    for (const n of d.del.neigh) this.neigh.delete(formatIp(n.ip));
    for (const f of d.del.fdb) this.fdb.delete(f.mac.toLowerCase());
    for (const n of d.set.neigh) this.neigh.set(formatIp(n.ip), n.mac.toLowerCase());
    for (const f of d.set.fdb) this.fdb.set(f.mac.toLowerCase(), formatIp(f.dst));
    for (const r of d.set.routes) this.routes.set(formatCidr(r.dst), formatIp(r.via));
  }
  canon(): string[] {
    return [
      ...[...this.neigh].map(([k, v]) => `neigh ${k} ${v}`),
      ...[...this.fdb].map(([k, v]) => `fdb ${k} ${v}`),
      ...[...this.routes].map(([k, v]) => `route ${k} ${v}`),
    ].sort();
  }
}

/** A small deterministic PRNG (mulberry32), so a failure replays. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('joins, leaves and changes: the view equals desiredEntries, the diffs touch only the changed peers', async (t) => {
  const v = new DesiredView(SELF);
  const dev = new Device();
  const peers = new Map<string, Peer>();
  const first = v.reset([peer(SELF, 0, 0), peer('a', 1, 1), peer('b', 2, 2)]);
  dev.apply(first.diff);
  peers.set('a', peer('a', 1, 1)).set('b', peer('b', 2, 2));
  t.same(first.events.map((e) => `${e.type} ${e.peer.id}`).sort(), ['join a', 'join b'], 'a reset reports the joins (not this host)');
  t.same(dev.canon(), canon(desiredEntries(peers.values(), SELF).entries));

  const join = v.update(new Map([['c', peer('c', 3, 3)]]));
  t.equal(join.recomputed, false, 'a join is incremental');
  t.same(canon(join.diff.set), canon({ neigh: [], fdb: [], routes: [] }).concat(canon(desiredEntries([peer('c', 3, 3)], SELF).entries)).sort(), 'a join sets its own entries only');
  t.same(canon(join.diff.del), [], 'and deletes nothing');
  dev.apply(join.diff);
  peers.set('c', peer('c', 3, 3));

  const moved = v.update(new Map([['a', peer('a', 9, 1)]]));
  t.same(moved.events.map((e) => e.type), ['change']);
  t.equal(moved.diff.del.routes.length, 2, 'a block change deletes the old routes (both families)');
  t.equal(moved.diff.set.routes.length, 2, 'and sets the new ones');
  t.equal(moved.diff.set.fdb.length, 0, 'the FDB entry (same MAC, same underlay) stays');
  dev.apply(moved.diff);
  peers.set('a', peer('a', 9, 1));

  const leave = v.update(new Map([['b', undefined]]));
  t.equal(canon(leave.diff.del).length, 5, "a leave deletes the peer's 5 entries (2 neigh, 1 fdb, 2 routes)");
  dev.apply(leave.diff);
  peers.delete('b');
  t.same(dev.canon(), canon(desiredEntries(peers.values(), SELF).entries));
  t.same(canon(v.entries()), canon(desiredEntries(peers.values(), SELF).entries));

  const noop = v.update(new Map([['a', peer('a', 9, 1)], [SELF, peer(SELF, 4, 4)]]));
  t.same([...canon(noop.diff.set), ...canon(noop.diff.del)], [], 'the same record again, or this host itself: nothing');
});

t.test('a block passing from one peer to another in one batch is one set, no gap', async (t) => {
  const v = new DesiredView(SELF);
  v.reset([peer('a', 1, 1)]);
  const u = v.update(new Map([['a', undefined], ['b', peer('b', 1, 2)]]));
  t.equal(u.recomputed, false);
  t.same(u.diff.del.routes, [], "the block's route is replaced, not deleted");
  t.equal(u.diff.set.routes.length, 2);
  t.same(canon(v.entries()), canon(desiredEntries([peer('b', 1, 2)], SELF).entries));
});

t.test('clashes are resolved as desiredEntries does (lower id wins), and resolved again when they end', async (t) => {
  const v = new DesiredView(SELF);
  const dev = new Device();
  dev.apply(v.reset([peer('b', 1, 2)]).diff);
  const clash = v.update(new Map([['a', peer('a', 1, 1)]]));
  t.equal(clash.recomputed, true, 'a clash recomputes');
  t.same(clash.conflicts.map((c) => [c.kept, c.dropped]), [['a', 'b']]);
  dev.apply(clash.diff);
  t.same(dev.canon(), canon(desiredEntries([peer('a', 1, 1), peer('b', 1, 2)], SELF).entries), "the device holds a's entries");
  const gone = v.update(new Map([['a', undefined]]));
  t.same(gone.conflicts, [], 'no clash left');
  dev.apply(gone.diff);
  t.same(dev.canon(), canon(desiredEntries([peer('b', 1, 2)], SELF).entries), "b's entries are back");
});

t.test('random histories: the view and a device fed its diffs always equal a full computation', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const r = rng(seed);
    const v = new DesiredView(SELF);
    const dev = new Device();
    const peers = new Map<string, Peer>();
    const ids = Array.from({ length: 30 }, (_, i) => `h${String(i).padStart(2, '0')}`).concat(SELF);
    const random = (id: string): Peer => {
      const x = r();
      // Mostly distinct blocks and MACs; now and then a clash on either.
      const block = x < 0.1 ? Math.floor(r() * 3) : 10 + Math.floor(r() * 200);
      const mac = r() < 0.05 ? '02:00:00:00:00:01' : undefined;
      return peer(id, block, Math.floor(r() * 50), mac);
    };
    let ok = true;
    for (let step = 0; step < 200 && ok; step++) {
      const batch = new Map<string, Peer | undefined>();
      const n = 1 + Math.floor(r() * 4);
      for (let j = 0; j < n; j++) {
        const id = ids[Math.floor(r() * ids.length)];
        const p = r() < 0.3 ? undefined : random(id);
        batch.set(id, p);
      }
      if (r() < 0.03) {
        for (const [id, p] of batch) { if (p) peers.set(id, p); else peers.delete(id); }
        dev.apply(v.reset(peers.values()).diff);
      } else {
        dev.apply(v.update(batch).diff);
        for (const [id, p] of batch) { if (p) peers.set(id, p); else peers.delete(id); }
      }
      const want = canon(desiredEntries(peers.values(), SELF).entries);
      // A clash on a VTEP IP between blocks of one size cannot happen; keys are unique.
      if (JSON.stringify(canon(v.entries())) !== JSON.stringify(want) || JSON.stringify(dev.canon()) !== JSON.stringify(want)) {
        ok = false;
        t.fail(`seed ${seed} step ${step}: view or device differs from desiredEntries`);
      }
    }
    if (ok) t.pass(`seed ${seed}: 200 batches, view and device equal desiredEntries throughout`);
  }
});

t.test('explains: the echo of our own changes agrees with the view, damage does not', async (t) => {
  const v = new DesiredView(SELF);
  const a = peer('a', 1, 1);
  v.reset([a]);
  const dst = cidr('10.200.1.0/24');
  const via = ip('10.200.1.0');
  t.ok(v.explains({ what: 'route', op: 'new', dst, gw: via }), 'our route set');
  t.notOk(v.explains({ what: 'route', op: 'del', dst, gw: via }), 'our route deleted by someone');
  t.notOk(v.explains({ what: 'route', op: 'new', dst, gw: ip('10.200.1.9') }), 'our route changed by someone');
  t.notOk(v.explains({ what: 'route', op: 'new', dst: cidr('10.250.0.0/24'), gw: via }), 'a route we do not want');
  t.ok(v.explains({ what: 'route', op: 'del', dst: cidr('10.250.0.0/24'), gw: via }), 'a route we deleted');
  t.ok(v.explains({ what: 'route', op: 'new', dst: cidr('10.250.0.0/24'), gw: undefined }), 'a route without a gateway is not ours');
  t.ok(v.explains({ what: 'neigh', op: 'new', ip: via, mac: a.mac, permanent: true }));
  t.ok(v.explains({ what: 'neigh', op: 'new', ip: via, mac: '', permanent: false }), "the kernel's own entry (also seen while ours is replaced): ours going away arrives as a deletion");
  t.notOk(v.explains({ what: 'neigh', op: 'del', ip: via, mac: a.mac, permanent: true }));
  t.ok(v.explains({ what: 'fdb', op: 'new', mac: a.mac, dst: a.underlay }));
  t.notOk(v.explains({ what: 'fdb', op: 'del', mac: a.mac, dst: a.underlay }));
  t.ok(v.explains({ what: 'fdb', op: 'new', mac: a.mac, dst: undefined }), "the device's own FDB entries are not ours");
});
