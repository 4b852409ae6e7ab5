// overlay/local.ts: the host-local overlay state the CNI plugin reads (no etcd on an ADD).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cidr, parseCidr } from '../../ipam/addr';
import { canonicalRangeSets, setToJson } from '../../ipam/range';
import { blockRanges, decodeLocalState, encodeLocalState, readLocalState, writeLocalState } from '../../overlay/local';

const cidr = (s: string): Cidr => parseCidr(s) as Cidr;

t.test('write, read back, replace atomically', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vxt-overlay-local-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sub = path.join(dir, 'overlay');
  t.equal(readLocalState(sub, 'ov'), undefined, 'nothing before the agent wrote');
  const s = { network: 'my ov', hostId: 'h1', vni: 42, device: 'vxlan.42', mtu: 1450, blocks: [cidr('10.237.3.0/24'), cidr('fd37:0:0:3::/64')], updated: 7 };
  writeLocalState(sub, s);
  t.same(readLocalState(sub, 'my ov'), s);
  writeLocalState(sub, { ...s, mtu: 1400 });
  t.equal(readLocalState(sub, 'my ov')?.mtu, 1400);
  t.same(fs.readdirSync(sub), ['my%20ov.json'], 'no temp file left behind');
  t.equal(decodeLocalState('{'), undefined);
  t.equal(decodeLocalState(encodeLocalState(s).replace('"10.237.3.0/24"', '"x"')), undefined);
});

t.test('a host with no block: the reason round-trips (the plugin reads it)', async (t) => {
  const noBlock = {
    subnet: cidr('10.235.0.0/23'), blockPrefix: 24, blocks: 2, nextReclaimableAt: 9000,
    holders: [{ hostId: 'a', block: cidr('10.235.0.0/24'), state: 'held' as const, reclaimableAt: undefined },
      { hostId: 'b', block: cidr('10.235.1.0/24'), state: 'orphaned' as const, reclaimableAt: 9000 }],
  };
  const s = { network: 'ov', hostId: 'c', vni: 42, device: 'vxlan.42', mtu: 0, blocks: [], subnets: [cidr('10.235.0.0/23')], noBlock, updated: 7 };
  t.same(decodeLocalState(encodeLocalState(s)), s);
  t.equal(decodeLocalState(encodeLocalState(s).replace('"held"', '"gone"')), undefined, 'a malformed reason: not a state');
});

t.test('blockRanges: VTEP .0, gateway .1, containers from .2; valid IPAM ranges', async (t) => {
  const r = blockRanges([cidr('10.237.3.0/24'), cidr('fd37:0:0:3::/64')]);
  t.same(r, [[{ subnet: '10.237.3.0/24', rangeStart: '10.237.3.2', gateway: '10.237.3.1' }],
    [{ subnet: 'fd37:0:0:3::/64', rangeStart: 'fd37:0:0:3::2', gateway: 'fd37:0:0:3::1' }]]);
  t.same(canonicalRangeSets(r).map((set) => setToJson(set)), [
    [{ subnet: '10.237.3.0/24', rangeStart: '10.237.3.2', rangeEnd: '10.237.3.254', gateway: '10.237.3.1' }],
    [{ subnet: 'fd37:0:0:3::/64', rangeStart: 'fd37:0:0:3::2', rangeEnd: 'fd37::3:ffff:ffff:ffff:ffff', gateway: 'fd37:0:0:3::1' }],
  ], 'the IPAM core accepts them');
});
