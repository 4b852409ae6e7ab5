// handoff/protocol.ts: what vxnetd accepts from a plugin (same protocol, build and namespace),
// what a call must look like, which environment goes over, and line framing.
import t from 'tap';
import { HANDOFF_VERSION, LineReader, callEnv, netnsId, parseCall, refusal } from '../../handoff/protocol';

const own = { build: 'b1', netns: '4:4026531840' };

t.test('refusal: only the same protocol version, build and network namespace', async (t) => {
  t.equal(refusal({ v: HANDOFF_VERSION, build: 'b1', netns: own.netns }, own), undefined, 'accepted');
  t.match(refusal({ v: HANDOFF_VERSION, build: 'b2', netns: own.netns }, own), /plugin build b2, vxnetd runs b1/);
  t.match(refusal({ v: HANDOFF_VERSION, build: 'b1', netns: '4:1' }, own), /plugin in network namespace 4:1, vxnetd in 4:4026531840/);
  t.match(refusal({ v: 99, build: 'b1', netns: own.netns }, own), /hand-off version 99/);
  for (const bad of [null, 'x', 3, []]) t.ok(refusal(bad, own), `malformed: ${JSON.stringify(bad)}`);
});

t.test('parseCall: env of strings and a stdin string', async (t) => {
  t.same(parseCall({ env: { CNI_COMMAND: 'ADD' }, stdin: '{}' }), { env: { CNI_COMMAND: 'ADD' }, stdin: '{}' });
  for (const bad of [null, {}, { env: {}, stdin: 3 }, { env: null, stdin: '' }, { env: { A: 1 }, stdin: '' }, { stdin: '' }]) {
    t.equal(parseCall(bad), undefined, JSON.stringify(bad));
  }
});

t.test('callEnv: CNI_* and PATH only', async (t) => {
  t.same(callEnv({ CNI_COMMAND: 'ADD', CNI_PATH: '/opt/cni/bin', PATH: '/usr/bin', HOME: '/root', VXNET_TRACE: '1', SECRET: 'x', CNI_X: undefined }),
    { CNI_COMMAND: 'ADD', CNI_PATH: '/opt/cni/bin', PATH: '/usr/bin' });
});

t.test('LineReader: complete lines only, across chunks', async (t) => {
  const r = new LineReader();
  t.same(r.feed('{"a":'), []);
  t.same(r.feed('1}\n{"b"'), ['{"a":1}']);
  t.same(r.feed(':2}\n\n'), ['{"b":2}', '']);
});

t.test('netnsId: stable within a process, "dev:inode"', async (t) => {
  t.match(netnsId(), /^\d+:\d+$/);
  t.equal(netnsId(), netnsId());
});
