// vxnetctl dns: the command line (ctl/args.ts), what a query asks and of whom, how answers and
// endpoints print (ctl/dns.ts), and the stub client's answer matching (dns/client.ts). No I/O.
import type { Answer } from 'dns-packet';
import * as dnsPacket from 'dns-packet';
import t from 'tap';
import { type Invocation, UsageError, parseCommandLine } from '../../ctl/args';
import { apiUrl, lsRows, parseDnsJson, parseEndpoints, queryJson, queryPlan, rcodeFailure, recordData, renderQuery } from '../../ctl/dns';
import { encodeQuestion, matchAnswer, rcodeOf, type QueryResult } from '../../dns/client';
import { formatHostPort } from '../../dns/upstreams';
import { ctl } from '../helpers/ctl';

const run = (argv: string[]): Extract<Invocation, { kind: 'run' }> => {
  const inv = parseCommandLine(argv);
  if (inv.kind !== 'run') throw new Error(`expected a command, got ${inv.kind}`);
  return inv;
};

t.test('the command line: dns ls and dns query, their options, their mistakes', async (t) => {
  let inv = run(['dns', 'ls', '--api', 'http://10.0.0.1:8123', '--json']);
  t.equal(inv.command, 'dns ls');
  t.equal(inv.values.api, 'http://10.0.0.1:8123');
  t.equal(inv.values.json, true);
  t.equal(run(['dns', 'list']).command, 'dns ls', 'list is an alias');
  inv = run(['dns', 'query', 'web', 'srv', '--server', '127.0.0.1:5353']);
  t.equal(inv.command, 'dns query');
  t.same(inv.positionals, ['web', 'srv']);
  t.equal(inv.values.server, '127.0.0.1:5353');
  t.throws(() => parseCommandLine(['dns', 'query', 'a', 'A', 'extra']), new UsageError('unexpected argument "extra" to "vxnetctl dns query" (see vxnetctl dns query --help)'));
  t.throws(() => parseCommandLine(['dns', 'ls', '--server', 'x']), new UsageError('option --server does not apply to "vxnetctl dns ls" (see vxnetctl dns ls --help)'));
  t.throws(() => parseCommandLine(['dns', 'query', 'x', '--api', 'u']), new UsageError('option --api does not apply to "vxnetctl dns query": it asks a DNS server, not the API (--server ADDR[:PORT])'));
  t.throws(() => parseCommandLine(['dns', 'ls', '--api', '']), new UsageError('option --api needs a non-empty value (see vxnetctl dns ls --help)'));
  t.throws(() => parseCommandLine(['dns', 'dig']), new UsageError('unknown command "dns dig" (see vxnetctl dns --help)'));
  const group = parseCommandLine(['dns']);
  t.equal(group.kind, 'help');
  t.match(group.kind === 'help' ? group.text : '', /dns ls \[--api URL\][\s\S]*dns query NAME \[TYPE\] \[--server ADDR\[:PORT\]\]/);
  const help = parseCommandLine(['dns', 'query', '--help']);
  t.match(help.kind === 'help' ? help.text : '', /A, AAAA, SRV, PTR, SOA, NS, TXT, CNAME, MX, CAA, ANY/, 'the help lists the types');
  const usage = parseCommandLine(['--help']);
  t.match(usage.kind === 'help' ? usage.text : '', /\n {2}dns ls {10}endpoints in vxnet's DNS/);
});

t.test('usage errors from the command module exit 2 with one line', async (t) => {
  let r = await ctl(['dns', 'query']);
  t.same(r, { code: 2, stdout: '', stderr: 'vxnetctl: dns query needs a NAME (see vxnetctl dns query --help)\n' });
  r = await ctl(['dns', 'query', 'web', 'AXFR']);
  t.same(r, { code: 2, stdout: '', stderr: 'vxnetctl: unknown record type "AXFR" (one of A, AAAA, SRV, PTR, SOA, NS, TXT, CNAME, MX, CAA, ANY)\n' });
  r = await ctl(['dns', 'query', 'web', '--server', 'dns.example:53']);
  t.equal(r.code, 2);
  t.equal(r.stderr, 'vxnetctl: --server "dns.example:53": expected ADDRESS[:PORT] or [IPV6]:PORT\n');
  r = await ctl(['dns', 'ls', '--api', 'ftp://x']);
  t.same(r, { code: 2, stdout: '', stderr: 'vxnetctl: --api "ftp://x": expected an http:// or https:// URL\n' });
});

t.test('apiUrl: --api, else $VXNET_API, else Mesos-DNS port on loopback', async (t) => {
  t.equal(apiUrl({}, {}), 'http://127.0.0.1:8123');
  t.equal(apiUrl({}, { VXNET_API: 'http://10.0.0.1:9000/' }), 'http://10.0.0.1:9000');
  t.equal(apiUrl({ api: 'http://[::1]:8123' }, { VXNET_API: 'http://10.0.0.1:9000' }), 'http://[::1]:8123', '--api wins');
  t.equal(apiUrl({}, { VXNET_API: '' }), 'http://127.0.0.1:8123', 'an empty variable is unset');
  t.throws(() => apiUrl({ api: 'localhost 8123' }, {}), UsageError);
});

t.test('queryPlan: the name qualified, the type, the server', async (t) => {
  const hp = (p: { server: Parameters<typeof formatHostPort>[0]; name: string; type: string }): string => `${formatHostPort(p.server)} ${p.name} ${p.type}`;
  t.equal(hp(queryPlan(['web'], {}, undefined)), '198.51.100.1:53 web.vxnet. A', 'defaults: 198.51.100.1, domain vxnet, type A');
  t.equal(hp(queryPlan(['web', 'srv'], {}, undefined)), '198.51.100.1:53 web.vxnet. SRV');
  t.equal(hp(queryPlan(['web.blue.vxnet.'], {}, undefined)), '198.51.100.1:53 web.blue.vxnet. A', 'a dotted name is kept');
  t.equal(hp(queryPlan(['example.com', 'MX'], {}, undefined)), '198.51.100.1:53 example.com. MX');
  const json = parseDnsJson(JSON.stringify({ nameservers: ['bogus', '127.0.0.1:5353', '198.51.100.2'], domain: 'cluster', search: ['cluster'] }));
  t.equal(hp(queryPlan(['web'], {}, json)), '127.0.0.1:5353 web.cluster. A', 'dns.json: the first usable nameserver and the domain');
  t.equal(hp(queryPlan(['web'], { server: '::1' }, json)), '[::1]:53 web.cluster. A', '--server wins');
  t.equal(hp(queryPlan(['web'], { server: '[fd00::1]:5353' }, undefined)), '[fd00::1]:5353 web.vxnet. A');
  t.equal(hp(queryPlan(['10.1.0.3'], {}, undefined)), '198.51.100.1:53 3.0.1.10.in-addr.arpa. PTR', 'an address: its PTR');
  t.equal(hp(queryPlan(['fd00::2', 'ptr'], {}, undefined)), `198.51.100.1:53 2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR`);
  t.equal(hp(queryPlan(['10.1.0.3', 'A'], {}, undefined)), '198.51.100.1:53 10.1.0.3. A', 'an address with another type is asked as is');
  t.throws(() => queryPlan(['a..b'], {}, undefined), new UsageError('"a..b" is not a DNS name: an empty label'));
  t.throws(() => queryPlan([`${'x'.repeat(64)}.vxnet`], {}, undefined), { message: /longer than 63 bytes/ });
  t.throws(() => queryPlan([Array(130).fill('ab').join('.')], {}, undefined), { message: /longer than 253 bytes/ });
  t.throws(() => queryPlan(['web'], { server: '127.0.0.1:0' }, undefined), UsageError, 'port 0 is no server');
});

t.test('parseDnsJson: what vxnetd writes; anything else falls back to the defaults', async (t) => {
  t.same(parseDnsJson('{"nameservers":["198.51.100.1","198.51.100.2"],"domain":"vxnet","search":["vxnet"]}'), { nameservers: ['198.51.100.1', '198.51.100.2'], domain: 'vxnet' });
  t.same(parseDnsJson('{"nameservers":[1, "10.0.0.1"]}'), { nameservers: ['10.0.0.1'] });
  t.equal(parseDnsJson('not json'), undefined);
  t.equal(parseDnsJson(undefined), undefined);
});

t.test('recordData and the dig-like rendering', async (t) => {
  const records: Answer[] = [
    { name: 'web.vxnet', type: 'A', ttl: 5, data: '10.1.0.2' },
    { name: 'web.vxnet', type: 'AAAA', ttl: 5, data: 'fd00::2' },
    { name: '_web._tcp.vxnet', type: 'SRV', ttl: 5, data: { priority: 0, weight: 1, port: 8080, target: 'web-1.vxnet' } },
    { name: '2.0.1.10.in-addr.arpa', type: 'PTR', ttl: 5, data: 'web-1.vxnet' },
    { name: 'vxnet', type: 'SOA', ttl: 5, data: { mname: 'ns.vxnet', rname: 'hostmaster.vxnet', serial: 7, refresh: 60, retry: 10, expire: 3600, minimum: 5 } },
    { name: 'example.com', type: 'MX', ttl: 300, data: { preference: 10, exchange: 'mx.example.com' } },
    { name: 'example.com', type: 'TXT', ttl: 300, data: [Buffer.from('v=spf1 -all'), Buffer.from('a "quote"')] },
  ];
  t.same(records.map(recordData), [
    '10.1.0.2', 'fd00::2', '0 1 8080 web-1.vxnet.', 'web-1.vxnet.', 'ns.vxnet. hostmaster.vxnet. 7 60 10 3600 5', '10 mx.example.com.', '"v=spf1 -all" "a \\"quote\\""',
  ]);
  const result: QueryResult = {
    server: '127.0.0.1:53', transport: 'tcp', truncatedOverUdp: true, rcode: 'NXDOMAIN', flags: ['qr', 'aa', 'rd', 'ra'],
    answers: [], authorities: [records[4]], additionals: [], elapsedMs: 1.23456,
  };
  const plan = { server: { ip: { family: 4 as const, value: 0x7f000001n }, port: 53 }, name: 'nope.vxnet.', type: 'A' };
  t.equal(renderQuery(plan, result), `;; nope.vxnet. A from 127.0.0.1:53 over tcp (truncated over udp): status: NXDOMAIN, flags: qr aa rd ra; ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 0

;; AUTHORITY SECTION:
vxnet.\t5\tIN\tSOA\tns.vxnet. hostmaster.vxnet. 7 60 10 3600 5
`);
  t.same(queryJson(plan, result), {
    server: '127.0.0.1:53', transport: 'tcp', truncatedOverUdp: true, name: 'nope.vxnet.', type: 'A', rcode: 'NXDOMAIN', flags: ['qr', 'aa', 'rd', 'ra'],
    answers: [], authorities: [{ name: 'vxnet.', ttl: 5, type: 'SOA', data: 'ns.vxnet. hostmaster.vxnet. 7 60 10 3600 5' }], additionals: [], elapsedMs: 1.235,
  });
  t.match(rcodeFailure(plan, result), { code: 106, message: 'nope.vxnet. A: NXDOMAIN from 127.0.0.1:53 (no such name)' });
  t.match(rcodeFailure(plan, { ...result, rcode: 'SERVFAIL' }), { code: 5, message: /SERVFAIL from 127\.0\.0\.1:53/ });
  t.equal(rcodeFailure(plan, { ...result, rcode: 'NOERROR' }), undefined);
});

t.test('the stub client takes only the answer to its own question', async (t) => {
  const q = encodeQuestion(4242, 'web.vxnet.', 'A');
  const decoded = dnsPacket.decode(q);
  t.same(decoded.questions, [{ name: 'web.vxnet', type: 'A', class: 'IN' }]);
  t.ok((decoded.flags ?? 0) & dnsPacket.RECURSION_DESIRED, 'RD');
  t.match(decoded.additionals, [{ type: 'OPT', udpPayloadSize: 1232 }], 'EDNS offering 1232 bytes');
  const answer = (over: Partial<dnsPacket.Packet>): Buffer => dnsPacket.encode({
    type: 'response', id: 4242, flags: 0x0400 | 3, questions: [{ name: 'WEB.vxnet', type: 'A', class: 'IN' }], answers: [], ...over,
  });
  const p = matchAnswer(answer({}), 4242, 'web.vxnet.', 'A');
  t.ok(p, 'the question may come back in another case');
  t.equal(rcodeOf(p!), 'NXDOMAIN');
  t.equal(matchAnswer(answer({ id: 4243 }), 4242, 'web.vxnet.', 'A'), undefined, 'another ID');
  t.equal(matchAnswer(answer({ questions: [{ name: 'evil.vxnet', type: 'A', class: 'IN' }] }), 4242, 'web.vxnet.', 'A'), undefined, 'another name');
  t.equal(matchAnswer(answer({ questions: [{ name: 'web.vxnet', type: 'AAAA', class: 'IN' }] }), 4242, 'web.vxnet.', 'A'), undefined, 'another type');
  t.equal(matchAnswer(answer({ type: 'query' }), 4242, 'web.vxnet.', 'A'), undefined, 'not a response');
  t.equal(matchAnswer(Buffer.from([1, 2, 3]), 4242, 'web.vxnet.', 'A'), undefined, 'not a message');
  const badvers = dnsPacket.encode({
    type: 'response', id: 1, flags: 0, questions: [{ name: 'a', type: 'A', class: 'IN' }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 1, ednsVersion: 0, flags: 0, options: [] } as unknown as Answer],
  });
  t.equal(rcodeOf(dnsPacket.decode(badvers)), 'BADVERS', 'the extended rcode from OPT');
});

t.test('dns ls rows and the API answer check', async (t) => {
  const views = parseEndpoints([{
    id: 'h/n/c', name: 'web-2', aliases: ['www'], network: 'blue', host: 'h2', runtime: 'cni', containerId: 'c', addresses: ['10.1.0.3', 'fd00::3'],
    ports: [{ port: 8080, protocol: 'tcp', name: 'http' }, { port: 53, protocol: 'udp', name: null }], service: 'web', labels: {}, dnsNames: ['web-2.vxnet.', 'www.vxnet.'],
  }, {
    id: 'h/n/d', name: '', aliases: [], network: 'blue', host: 'h1', runtime: 'docker', containerId: 'd', addresses: ['10.1.0.4'], ports: [], service: null, labels: {}, dnsNames: [],
  }], 'http://x/v1/endpoints');
  t.same(lsRows(views), [
    ['web-2,www', 'blue', 'web', '10.1.0.3,fd00::3', 'http=8080/tcp,53/udp', 'h2', 'web-2.vxnet,www.vxnet'],
    ['', 'blue', '', '10.1.0.4', '', 'h1', ''],
  ]);
  t.throws(() => parseEndpoints({ frameworks: [] }, 'http://x/v1/endpoints'), { code: 6, message: 'http://x/v1/endpoints: not a list of endpoints (is this vxnetd\'s HTTP API?)' });
  t.throws(() => parseEndpoints([{ name: 'a' }], 'u'), { code: 6 });
});
