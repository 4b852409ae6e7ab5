// dns/names.ts: validation, normalisation, reverse names, the question name read off the wire.
import t from 'tap';
import { parseIp } from '../../ipam/addr';
import { InvalidName } from '../../lib/errors';
import { checkLabel, checkName, inZone, nameProblem, normalizeName, parentOf, reverseName, wireQuestionName } from '../../dns/names';

t.test('normalizeName lower-cases and drops the trailing dot', async (t) => {
  t.equal(normalizeName('Web.VXNET.'), 'web.vxnet');
  t.equal(normalizeName('web.vxnet'), 'web.vxnet');
  t.equal(normalizeName('.'), '');
});

t.test('nameProblem: labels of 1-63 bytes of [a-z0-9_-], names of at most 253', async (t) => {
  const ok = ['web', 'web-1.blue.vxnet', '_http._tcp.web.vxnet', 'a'.repeat(63) + '.vxnet', ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.')];
  for (const name of ok) t.equal(nameProblem(name), undefined, `${name.slice(0, 30)} (${name.length}) is valid`);
  const bad: Array<[string, RegExp]> = [
    ['', /empty name/],
    ['a..b', /empty label/],
    ['a'.repeat(64) + '.vxnet', /64 bytes \(at most 63\)/],
    [['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(62)].join('.'), /254 characters \(at most 253\)/],
    ['web server.vxnet', /outside \[a-z0-9_-\]/],
    ['wéb.vxnet', /outside/],
    ['Web.vxnet', /outside/],
  ];
  for (const [name, re] of bad) t.match(nameProblem(name), re, `${JSON.stringify(name.slice(0, 30))} rejected`);
});

t.test('checkName / checkLabel throw InvalidName naming the field and the reason', async (t) => {
  t.equal(checkName('Web.Blue.VXNET.'), 'web.blue.vxnet');
  t.equal(checkLabel('Web_1'), 'web_1');
  t.throws(() => checkLabel('my.web', 'endpoint name'), { name: 'InvalidName', code: 108, message: 'endpoint name "my.web" is not a valid DNS label: label "my.web" has characters outside [a-z0-9_-]' });
  t.throws(() => checkName('a b', 'DNS domain'), InvalidName);
  t.throws(() => checkLabel(''), /empty label/);
});

t.test('inZone and parentOf', async (t) => {
  t.ok(inZone('vxnet', 'vxnet'));
  t.ok(inZone('web.vxnet', 'vxnet'));
  t.notOk(inZone('webvxnet', 'vxnet'), 'a suffix that is not a label boundary');
  t.notOk(inZone('vxnet.com', 'vxnet'));
  t.ok(inZone('anything', ''), 'everything is under the root');
  t.equal(parentOf('a.b.vxnet'), 'b.vxnet');
  t.equal(parentOf('vxnet'), '');
});

t.test('reverseName for IPv4 and IPv6', async (t) => {
  t.equal(reverseName(parseIp('10.1.2.3')!), '3.2.1.10.in-addr.arpa');
  t.equal(reverseName(parseIp('2001:db8::567:89ab')!), 'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
});

t.test('wireQuestionName reads labels off the wire', async (t) => {
  const wire = (...labels: Array<string | Buffer>): Buffer => Buffer.concat([...labels.map((l) => {
    const b = typeof l === 'string' ? Buffer.from(l, 'latin1') : l;
    return Buffer.concat([Buffer.from([b.length]), b]);
  }), Buffer.from([0])]);
  t.same(wireQuestionName(wire('WeB', 'vxnet'), 0), { name: 'web.vxnet', plain: true, end: 11 });
  t.same(wireQuestionName(Buffer.from([0]), 0), { name: '', plain: true, end: 1 }, 'the root');
  t.equal((wireQuestionName(wire('a.b', 'vxnet'), 0) as { plain: boolean }).plain, false, 'a dot inside a label is not plain');
  t.equal((wireQuestionName(wire(Buffer.from([0x77, 0x00, 0x01]), 'vxnet'), 0) as { plain: boolean }).plain, false, 'control bytes are not plain');
  t.match(wireQuestionName(Buffer.from([0xc0, 0x00]), 0), { problem: /compression pointer/ });
  t.match(wireQuestionName(Buffer.from([0x41, 0x61]), 0), { problem: /a label of 65 bytes/ });
  t.match(wireQuestionName(Buffer.from([3, 0x61, 0x62]), 0), { problem: /runs past/ });
  t.match(wireQuestionName(Buffer.from([3, 0x61, 0x62, 0x63]), 0), { problem: /runs past/ }, 'no terminating zero');
  const long = wire(...Array.from({ length: 5 }, () => 'a'.repeat(60)));
  t.match(wireQuestionName(long, 0), { problem: /longer than 253/ });
});
