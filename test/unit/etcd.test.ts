// The pure parts of etcd/: the cluster store's URL, etcd failures in vxnet's error family, and
// guarded transactions as etcd's TxnRequest, the lease keeper's renewal rate.
import t from 'tap';
import { BrokenCircuitError } from 'cockatiel';
import {
  ClientClosedError, EtcdLeaseInvalidError, EtcdPermissionDeniedError, GRPCDeadlineExceededError, GRPCGenericError,
  GRPCOutOfRangeError, GRPCResourceExhastedError, GRPCUnavailableError,
} from 'etcd3';
import { classifyEtcdError, etcdError, etcdReason, isRetryable } from '../../etcd/errors';
import { nextRenewalDelay } from '../../etcd/lease';
import { buildTxn, prefixEnd } from '../../etcd/txn';
import { parseEtcdUrl } from '../../etcd/url';
import { NetworkInUse, TryAgainLater } from '../../lib/errors';
import { caught, invalidConf } from '../ipam/helpers/errors';

t.test('parseEtcdUrl: etcd://host:port[,host:port...]', async (t) => {
  t.strictSame(parseEtcdUrl('etcd://10.0.0.1:2379,h2:2380,[fd00::1]:2379,h4,[::1]'),
    { endpoints: ['10.0.0.1:2379', 'h2:2380', '[fd00::1]:2379', 'h4:2379', '[::1]:2379'] });
  t.strictSame(parseEtcdUrl(' etcd://h1:2379/ ').endpoints, ['h1:2379'], 'spaces and a trailing slash');
  t.strictSame(parseEtcdUrl('etcd://h1:2379, ,h2:1').endpoints, ['h1:2379', 'h2:1'], 'empty entries skipped');
  for (const [url, why] of [
    ['http://h1:2379', ' is not etcd://host:port[,host:port...]'],
    ['etcd://', ' names no etcd endpoint'],
    ['etcd://,', ' names no etcd endpoint'],
    ['etcd://h1:99999', ': "h1:99999" is not host:port'],
    ['etcd://h1:0', ': "h1:0" is not host:port'],
    ['etcd://fd00::1:2379', ': "fd00::1:2379" is not host:port'],
    ['etcd://h1:2379/prefix', ' is not etcd://host:port[,host:port...]'],
    ['etcd://h1:2379?x=1', ' is not etcd://host:port[,host:port...]'],
  ]) {
    t.strictSame(caught(() => parseEtcdUrl(url)), invalidConf(`cluster store "${url}"${why}`), url);
  }
});

t.test('etcd failures map onto the error family', async (t) => {
  const refused = new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ');
  t.equal(classifyEtcdError(refused), 'unreachable');
  t.equal(etcdReason(refused), 'connect ECONNREFUSED 127.0.0.1:1', 'the cause gRPC buries');
  t.strictSame(caught(() => { throw etcdError('lease a block', refused); }),
    { name: 'TryAgainLater', code: 11, message: 'lease a block: no etcd member answers (connect ECONNREFUSED 127.0.0.1:1); try again' });

  const cases: Array<[Error, string, string, number]> = [
    [new GRPCUnavailableError('etcdserver: no leader'), 'unavailable', 'TryAgainLater', 11],
    [new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded'), 'unavailable', 'TryAgainLater', 11],
    [new GRPCGenericError('etcdserver: leader changed'), 'unavailable', 'TryAgainLater', 11],
    [new BrokenCircuitError(), 'unreachable', 'TryAgainLater', 11],
    [new GRPCOutOfRangeError('etcdserver: mvcc: required revision has been compacted'), 'compacted', 'IoFailure', 5],
    [new Error('Watcher canceled: mvcc: required revision has been compacted'), 'compacted', 'IoFailure', 5],
    [new GRPCGenericError('etcdserver: too many operations in txn request'), 'too-large', 'IoFailure', 5],
    [new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: message larger than max'), 'too-large', 'IoFailure', 5],
    [new EtcdPermissionDeniedError('etcdserver: permission denied'), 'denied', 'IoFailure', 5],
    [new EtcdLeaseInvalidError('7587'), 'lease-gone', 'NotFound', 106],
    [new ClientClosedError('etcd'), 'closed', 'IoFailure', 5],
    [new Error('something else\nwith a second line'), 'other', 'IoFailure', 5],
  ];
  for (const [err, kind, name, code] of cases) {
    t.equal(classifyEtcdError(err), kind, `${err.message}: ${kind}`);
    const mapped = etcdError('x', err);
    t.strictSame({ name: mapped.name, code: mapped.code }, { name, code }, `${err.message}: ${name}`);
    t.equal(isRetryable(err), code === 11, `${err.message}: retryable ${code === 11}`);
    t.notMatch(mapped.message, /\n/, 'one line');
  }
  t.match(etcdError('commit', new GRPCGenericError('etcdserver: too many operations in txn request')).message, /--max-txn-ops/);
  t.equal(etcdError('x', new Error('a\nb')).message, 'x: etcd failed (a)');
  const own = new NetworkInUse('held');
  t.equal(etcdError('x', own), own, 'a VxnetError passes through');
  t.ok(isRetryable(new TryAgainLater('later')), 'TryAgainLater is retried');
  t.notOk(isRetryable(own), 'another VxnetError is not');
});

t.test('guarded transactions', async (t) => {
  t.strictSame(prefixEnd('/a/'), Buffer.from('/a0'));
  t.strictSame(prefixEnd('a\xff'), Buffer.from([0x61, 0xc3, 0xc0]), 'bytes of the UTF-8 key, not characters');
  const req = buildTxn({
    if: [{ key: '/k/free', absent: true }, { key: '/k/seen', modRevision: '42' }, { key: '/k/v', version: 3, not: true }, { key: '/k/x', value: 'on' }],
    then: [{ put: '/k/free', value: 'me', lease: '77' }, { delete: '/k/seen' }, { deletePrefix: '/k/blocks/' }],
    else: [{ get: '/k/free' }, { getPrefix: '/k/' }],
  });
  t.strictSame(req.compare, [
    { key: Buffer.from('/k/free'), target: 'Create', result: 'Equal', create_revision: '0' },
    { key: Buffer.from('/k/seen'), target: 'Mod', result: 'Equal', mod_revision: '42' },
    { key: Buffer.from('/k/v'), target: 'Version', result: 'NotEqual', version: '3' },
    { key: Buffer.from('/k/x'), target: 'Value', result: 'Equal', value: Buffer.from('on') },
  ]);
  t.strictSame(req.success, [
    { request_put: { key: Buffer.from('/k/free'), value: Buffer.from('me'), lease: '77' } },
    { request_delete_range: { key: Buffer.from('/k/seen') } },
    { request_delete_range: { key: Buffer.from('/k/blocks/'), range_end: Buffer.from('/k/blocks0') } },
  ]);
  t.strictSame(req.failure, [
    { request_range: { key: Buffer.from('/k/free') } },
    { request_range: { key: Buffer.from('/k/'), range_end: Buffer.from('/k0') } },
  ]);
  t.strictSame(buildTxn({ if: [], then: [{ put: 'a', value: '' }] }).failure, [], 'no else: an empty failure branch');
  t.throws(() => buildTxn({ if: [{ key: 'a', modRevision: 'x1' }], then: [] }), /guard on a: revision "x1" is not a number/);
  t.throws(() => buildTxn({ if: [{ key: 'a', version: -1 }], then: [] }), /guard on a: version -1 is not a count/);
});

t.test('nextRenewalDelay: a fixed rate measured from the previous start', async (t) => {
  t.equal(nextRenewalDelay(1000, 1050, 3333), 3283, 'a quick renewal: the rest of the interval');
  t.equal(nextRenewalDelay(1000, 3000, 3333), 1333, 'a slow one does not push the next back');
  t.equal(nextRenewalDelay(1000, 4333, 3333), 0, 'exactly one interval: at once');
  t.equal(nextRenewalDelay(1000, 9000, 3333), 0, 'longer than the interval: at once, never negative');
});
