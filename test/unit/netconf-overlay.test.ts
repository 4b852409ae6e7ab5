// cni/netconf.ts in overlay mode with the agent's state read from memory: what ADD says when the
// host has no block (missingOverlayState). Pure: no root, no files.
import t from 'tap';
import { Cidr, parseCidr } from '../../ipam/addr';
import type { LocalOverlayState } from '../../overlay/local';
import { missingOverlayState, parseVxnetConf } from '../../cni/netconf';

const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const conf = { cniVersion: '1.1.0', name: 'ov', type: 'vxnet', mode: 'overlay' };
const parse = (state: LocalOverlayState | undefined) => parseVxnetConf(conf, new Map(), () => state);
const base = { network: 'ov', hostId: 'c', vni: 42, device: 'vxlan.42', mtu: 0, blocks: [], subnets: [cidr('10.235.0.0/23')], updated: 1 };
const holders = [
  { hostId: 'a', block: cidr('10.235.0.0/24'), state: 'held' as const, reclaimableAt: undefined },
  { hostId: 'b', block: cidr('10.235.1.0/24'), state: 'held' as const, reclaimableAt: undefined },
];
const noBlock = { subnet: cidr('10.235.0.0/23'), blockPrefix: 24, blocks: 2, holders, nextReclaimableAt: undefined };

t.test('no state at all: TryAgainLater asking whether vxnetd runs', async (t) => {
  const e = missingOverlayState(parse(undefined));
  t.equal(e.code, 11);
  t.equal(e.message, 'network ov: no overlay state at /run/vxnet/overlay/ov.json; is vxnetd running with --store etcd://... and this network defined?');
});

t.test('subnet full, every holder alive: PoolExhausted saying so, with the holders', async (t) => {
  const c = parse({ ...base, noBlock });
  t.equal(c.mtu, undefined, 'the state\'s mtu 0 (unknown while waiting) is not used');
  const e = missingOverlayState(c, 0);
  t.equal(e.code, 100);
  t.equal(e.message, 'network ov: no free /24 block in 10.235.0.0/23 for host c: both blocks are held (a (10.235.0.0/24, alive), b (10.235.1.0/24, alive)); none becomes free before its host\'s lease expires and the grace period after it passes (/run/vxnet/overlay/ov.json)');
});

t.test('a dead holder\'s block in its grace period: TryAgainLater, with when', async (t) => {
  const at = Date.parse('2026-12-04T16:00:06Z');
  const orphaned = { ...noBlock, nextReclaimableAt: at, holders: [holders[0], { ...holders[1], state: 'orphaned' as const, reclaimableAt: at }] };
  const e = missingOverlayState(parse({ ...base, noBlock: orphaned }), at - 4200);
  t.equal(e.code, 11);
  t.match(e.message, /^network ov: no free \/24 block in 10\.235\.0\.0\/23 for host c: both blocks are held \(a \(10\.235\.0\.0\/24, alive\), b \(10\.235\.1\.0\/24, expired, reclaimable in 5 s at 16:00:06Z\)\); vxnetd claims one as soon as its grace period is over/);
  t.notMatch(e.message, /is vxnetd running/);
});
