// overlay/records.ts: key layout and codecs round-trip; malformed records decode to undefined.
import t from 'tap';
import { Cidr, Ip, parseCidr, parseIp } from '../../ipam/addr';
import { decodeBlock, decodeHost, decodeMember, encodeBlock, encodeHost, encodeMember, keys, lastSegment } from '../../overlay/records';

const ip = (s: string): Ip => parseIp(s) as Ip;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;

t.test('round trips', async (t) => {
  const host = { id: 'h/1 x', underlay: ip('fd38::1'), since: 1234, networks: ['a', 'b'] };
  t.same(decodeHost(host.id, encodeHost(host)), host, 'host');
  const member = { network: 'ov', id: 'h1', underlay: ip('10.238.0.1'), mac: '02:aa:bb:cc:dd:ee', blocks: [cidr('10.237.1.0/24'), cidr('fd37:0:0:1::/64')] };
  t.same(decodeMember('ov', 'h1', encodeMember(member)), member, 'member');
  t.same(decodeMember('ov', 'h1', encodeMember({ ...member, mac: '02:AA:BB:CC:DD:EE' }))?.mac, '02:aa:bb:cc:dd:ee', 'MAC lower-cased');
  const block = { network: 'ov', block: cidr('10.237.1.0/24'), hostId: 'h1', since: 5 };
  t.same(decodeBlock('ov', encodeBlock(block)), block, 'block');
  t.same(decodeBlock('ov', encodeBlock({ ...block, orphanedAt: 9 })), { ...block, orphanedAt: 9 }, 'orphaned block');
});

t.test('malformed records decode to undefined', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['host: not JSON', decodeHost('h', '{')],
    ['host: bad underlay', decodeHost('h', '{"underlay":"x","since":1}')],
    ['host: networks not strings', decodeHost('h', '{"underlay":"10.0.0.1","since":1,"networks":[1]}')],
    ['member: bad MAC', decodeMember('n', 'h', '{"underlay":"10.0.0.1","mac":"zz","blocks":[]}')],
    ['member: bad block', decodeMember('n', 'h', '{"underlay":"10.0.0.1","mac":"02:00:00:00:00:01","blocks":["x"]}')],
    ['member: array', decodeMember('n', 'h', '[]')],
    ['block: no hostId', decodeBlock('n', '{"block":"10.0.0.0/24","since":1}')],
    ['block: orphanedAt not a number', decodeBlock('n', '{"block":"10.0.0.0/24","hostId":"h","since":1,"orphanedAt":"x"}')],
  ];
  for (const [name, v] of cases) t.equal(v, undefined, name);
});

t.test('keys: ids and names are encoded; blocks sort like their addresses', async (t) => {
  const k = keys('/p/');
  t.equal(k.member('my net', 'host/1'), '/p/members/my%20net/host%2F1');
  t.equal(lastSegment(k.member('my net', 'host/1')), 'host/1');
  t.equal(k.block('ov', cidr('10.237.1.0/24')), '/p/blocks/ov/0aed0100-24');
  t.ok(k.block('ov', cidr('10.237.2.0/24')) > k.block('ov', cidr('10.237.1.0/24')));
  t.ok(k.member('ov', 'h').startsWith(k.members('ov')));
});
