// vxnet's own netlink socket (net/nl-channel.ts, native/rtnl.c) against the real kernel, through
// Rtnl: a request exchanged on the threadpool while others are queued behind it, more requests
// than one exchange carries, a failing one among them, and close() with requests queued and
// one in flight. Root only; everything happens inside two namespaces the test creates.
import t from 'tap';
import { newNetns, exec } from '../helpers/netns';
import { openNetns } from '../../net/netns';
import { Rtnl } from '../../net/rtnl';
import { parseCidr, parseIp, type Cidr, type Ip } from '../../ipam/addr';

if (process.getuid?.() !== 0) t.plan(0, 'needs root (network namespaces)');
else void main();

async function main(): Promise<void> {
  const [a, b] = [await newNetns(t), await newNetns(t)];
  const nsA = openNetns(a.path);
  const nsB = openNetns(b.path);
  t.teardown(() => { nsA.close(); nsB.close(); });

  await t.test('a veth created off the main thread, 40 addresses and a bad route queued behind it: each gets its own answer', async (t) => {
    const rtnl = Rtnl.open(nsA);
    t.teardown(() => rtnl.close());
    const lo = await rtnl.link('lo');
    if (!lo) throw new Error('no lo');
    const cidrs = Array.from({ length: 40 }, (_, i) => parseCidr(`10.250.0.${i + 1}/32`) as Cidr);
    const veth = rtnl.createVeth('vxtc0', { name: 'vxtc1', ns: nsB }, { up: true }, { offThread: true });
    const addrs = cidrs.map((c) => rtnl.addAddress(lo.index, c));
    const badRoute = rtnl.addRoute({ dst: parseCidr('10.251.0.0/16') as Cidr, gw: parseIp('10.252.0.1') as Ip, oif: lo.index });
    const [v, ...rest] = await Promise.allSettled([veth, ...addrs, badRoute]);
    t.equal(v.status, 'fulfilled', 'the veth request succeeded');
    const created = v.status === 'fulfilled' ? v.value : undefined;
    t.ok(created, 'created (not an existing link)');
    if (created && created.host) {
      t.equal(created.host.name, 'vxtc0', 'the echo names the host end');
      t.ok(created.host.peerIndex, 'with its peer\'s index');
    }
    t.same(rest.slice(0, 40).map((r) => r.status), Array(40).fill('fulfilled'), 'all 40 addresses added (two exchanges)');
    const route = rest[40];
    t.equal(route.status, 'rejected', 'the route via an unreachable gateway is refused');
    if (route.status === 'rejected') t.match(String(route.reason), /cannot add route 10\.251\.0\.0\/16 via 10\.252\.0\.1.*Request rejected: E/, 'with the kernel\'s error');
    const shown = (await exec('ip', ['-n', a.name, '-4', '-o', 'addr', 'show', 'dev', 'lo'])).stdout;
    t.equal(cidrs.filter((_, i) => shown.includes(` 10.250.0.${i + 1}/32 `)).length, 40, 'the kernel has the 40 addresses');
    t.equal((await exec('ip', ['-n', b.name, 'link', 'show', 'dev', 'vxtc1'])).code, 0, 'the peer is in the other namespace');
    t.equal(await rtnl.createVeth('vxtc0', { name: 'vxtc1', ns: nsB }, {}, { offThread: true }), false, 'the same pair again: exists (false)');
  });

  await t.test('close() with a request in flight on the threadpool and one queued behind it', async (t) => {
    const rtnl = Rtnl.open(nsA);
    const lo = await rtnl.link('lo');
    if (!lo) throw new Error('no lo');
    const inFlight = rtnl.createVeth('vxtd0', { name: 'vxtd1', ns: nsB }, {}, { offThread: true });
    const queued = rtnl.setLink(lo.index, { up: true });
    rtnl.close();
    const [f, q] = await Promise.allSettled([inFlight, queued]);
    t.equal(f.status, 'fulfilled', 'the exchange in flight completes');
    t.equal(q.status, 'rejected', 'the queued request is refused');
    if (q.status === 'rejected') t.match(String(q.reason), /closed/);
    t.equal((await exec('ip', ['-n', a.name, 'link', 'show', 'dev', 'vxtd0'])).code, 0, 'the pair exists');
  });
}
