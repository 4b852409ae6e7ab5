// How the built vxnet plugin fails: every error is one CNI error object on stdout
// ({"code","msg"}), a non-zero exit and no stack trace on stderr, with the code the spec (or
// vxnet's 100+ range) gives; and a failed ADD leaves nothing behind: no allocation in the
// store, no host veth. Root only; everything it creates is vxt-prefixed.
import t, { type Test } from 'tap';
import { exec, linkExists, newNetns, type Netns } from '../helpers/netns';
import {
  VXNET, type CniCall, type CniOutcome, type TestNet, cannotRun, describe, hasStackTrace, hostVethName, newContainerId, newNet, runPlugin,
} from './helpers/cni';

const reason = cannotRun();
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(90_000);
  main();
}

type T = Test;

/** Asserts the common shape of a CNI error: JSON object on stdout with code and msg, non-zero exit, no stack. */
function assertCniError(t: T, o: CniOutcome, code: number | ((c: number) => boolean), what: string): Record<string, any> {
  t.not(o.code, 0, `${what}: non-zero exit`, { diag: describe(o) });
  t.ok(o.json && typeof o.json === 'object' && !Array.isArray(o.json), `${what}: a JSON object on stdout`, { diag: describe(o) });
  t.equal(o.stdout.trim().split('\n').length, 1, `${what}: exactly one JSON document on stdout`);
  t.type(o.json?.code, 'number', `${what}: has a numeric code`);
  t.type(o.json?.msg, 'string', `${what}: has a msg`);
  t.ok((o.json?.msg ?? '').length > 0, `${what}: the msg is not empty`);
  if (typeof code === 'number') t.equal(o.json?.code, code, `${what}: code ${code}`, { diag: describe(o) });
  else t.ok(code(o.json?.code), `${what}: code ${o.json?.code} as expected`, { diag: describe(o) });
  t.notOk(hasStackTrace(o.stderr), `${what}: no stack trace on stderr`, { stderr: o.stderr });
  t.notOk(hasStackTrace(o.stdout), `${what}: no stack trace on stdout`);
  return o.json ?? {};
}

/** Asserts that the failed ADD of containerId left neither an allocation nor a host veth. */
async function assertNothingLeft(t: T, net: TestNet, containerId: string, ns?: Netns): Promise<void> {
  t.same((await net.allocations()).filter((a) => a.containerId === containerId), [], `no allocation left for ${containerId}`);
  t.notOk(await linkExists(hostVethName(containerId, 'eth0')), `no host veth left for ${containerId}`);
  if (ns) {
    const links = await exec('ip', ['-n', ns.name, '-o', 'link', 'show']);
    t.notOk(/vx[0-9a-f]{12}/.test(links.stdout), 'no vxnet veth in the netns');
  }
}

function main(): void {
  t.test('decode and environment errors', async (t) => {
    const net = await newNet(t);
    const ns = await newNetns(t);
    const base = (): CniCall => ({ command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: ns.path });

    const malformed = await runPlugin(VXNET, '{"cniVersion":"1.1.0","name":', base());
    assertCniError(t, malformed, 6, 'malformed JSON');
    const notObject = await runPlugin(VXNET, '[1,2]', base());
    assertCniError(t, notObject, 6, 'a JSON array');

    const noCommand = await runPlugin(VXNET, net.conf(), { ...base(), env: { CNI_COMMAND: undefined } });
    assertCniError(t, noCommand, 4, 'missing CNI_COMMAND');
    t.match(noCommand.json?.msg, 'CNI_COMMAND');
    const badCommand = await runPlugin(VXNET, net.conf(), { ...base(), env: { CNI_COMMAND: 'FROB' } });
    assertCniError(t, badCommand, 4, 'unknown CNI_COMMAND');

    const noCid = await runPlugin(VXNET, net.conf(), { ...base(), containerId: undefined });
    assertCniError(t, noCid, 4, 'missing CNI_CONTAINERID');
    t.match(noCid.json?.msg, 'CNI_CONTAINERID');
    const badCid = await runPlugin(VXNET, net.conf(), { ...base(), containerId: '-bad id' });
    assertCniError(t, badCid, 4, 'invalid CNI_CONTAINERID');

    const noIf = await runPlugin(VXNET, net.conf(), { ...base(), ifname: undefined });
    assertCniError(t, noIf, 4, 'missing CNI_IFNAME');
    t.match(noIf.json?.msg, 'CNI_IFNAME');
    for (const bad of ['eth0/x', 'a-very-long-ifname', '..', 'eth 0', 'eth:0']) {
      const o = await runPlugin(VXNET, net.conf(), { ...base(), ifname: bad });
      assertCniError(t, o, 4, `CNI_IFNAME ${JSON.stringify(bad)}`);
      t.match(o.json?.msg, 'CNI_IFNAME');
    }
    const noNetns = await runPlugin(VXNET, net.conf(), { ...base(), netns: undefined });
    assertCniError(t, noNetns, 4, 'ADD without CNI_NETNS');
    t.match(noNetns.json?.msg, 'CNI_NETNS');

    const v = await runPlugin(VXNET, net.conf('9.9.9'), base());
    const e = assertCniError(t, v, 1, 'cniVersion 9.9.9');
    t.equal(e.cniVersion, '9.9.9', 'the error answers in the config\'s version');
    t.match(`${e.msg} ${e.details ?? ''}`, '9.9.9', 'and names it');
    const old = await runPlugin(VXNET, net.conf('0.1.0'), base());
    assertCniError(t, old, 1, 'cniVersion 0.1.0');
    t.same(await net.allocations(), [], 'nothing was allocated');
  });

  t.test('invalid configurations: code 7 with a message naming the field', async (t) => {
    const net = await newNet(t);
    const ns = await newNetns(t);
    const conf = net.conf();
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['a CIDR that is not one', { ipam: { ...conf.ipam, ranges: [[{ subnet: '10.239.300.0/24' }]] } }, /ipam\.ranges.*subnet/],
      ['a prefix that is too long', { ipam: { ...conf.ipam, ranges: [[{ subnet: `10.239.${net.n}.0/33` }]] } }, /subnet/],
      ['host bits set', { ipam: { ...conf.ipam, ranges: [[{ subnet: `10.239.${net.n}.5/24` }]] } }, /subnet.*host bits/],
      ['rangeStart outside the subnet', { ipam: { ...conf.ipam, ranges: [[{ subnet: net.v4, rangeStart: '10.238.0.5' }]] } }, /rangeStart.*outside/],
      ['rangeEnd outside the subnet', { ipam: { ...conf.ipam, ranges: [[{ subnet: net.v4, rangeEnd: '10.239.255.250' }]] } }, /rangeEnd/],
      ['no ranges', { ipam: { type: 'vxnet-ipam', dataDir: net.dataDir } }, /ipam\.ranges/],
      ['a bridge name longer than 15 characters', { bridge: 'vxt-much-too-long-name' }, /bridge/],
      ['a bridge name with a slash', { bridge: 'vxt/x' }, /bridge/],
      ['an mtu out of range', { mtu: 70000 }, /mtu/],
      ['a natTable that is not a name', { natTable: 'no spaces allowed' }, /natTable/],
      ['a relative dataDir', { ipam: { ...conf.ipam, dataDir: 'relative/dir' } }, /dataDir/],
      ['a bad MAC', { runtimeConfig: { mac: 'not-a-mac' } }, /mac/],
      ['an ipMasq that is not a boolean', { ipMasq: 'yes' }, /ipMasq/],
      ['a missing name', { name: undefined }, /name/],
    ];
    for (const [what, patch, field] of cases) {
      const cid = newContainerId();
      const o = await runPlugin(VXNET, { ...conf, ...patch }, { command: 'ADD', containerId: cid, ifname: 'eth0', netns: ns.path });
      const e = assertCniError(t, o, 7, what);
      t.match(e.msg, field, `${what}: the message names the field`);
      await assertNothingLeft(t, net, cid, ns);
    }
    t.notOk(await linkExists('vxt-much-too-long-name'.slice(0, 15)), 'no bridge created from the invalid name');
  });

  t.test('pool exhausted: a /30 gives one address, the second ADD fails naming the pool and leaves nothing', async (t) => {
    const net = await newNet(t, { v4Prefix: 30 });
    const ns1 = await newNetns(t);
    const ns2 = await newNetns(t);
    const first = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: ns1.path });
    t.equal(first.code, 0, 'the first ADD gets the only address', { diag: describe(first) });
    t.same(first.json?.ips?.map((i: { address: string }) => i.address), [`${net.ip4(2)}/30`], 'which is .2');
    const cid = newContainerId();
    const second = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: cid, ifname: 'eth0', netns: ns2.path });
    const e = assertCniError(t, second, (c) => c >= 100, 'pool exhausted');
    t.equal(e.code, 100, 'code 100 (PoolExhausted)');
    t.match(e.msg, net.name, 'the message names the network');
    t.match(e.msg, net.ip4(2), 'and the pool\'s range');
    await assertNothingLeft(t, net, cid, ns2);
    t.equal((await net.allocations()).length, 1, 'only the first allocation exists');
  });

  t.test('failed ADDs clean up: missing netns, interface already in the netns, static IP outside the pool', async (t) => {
    const net = await newNet(t);

    const cid1 = newContainerId();
    const missing = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: cid1, ifname: 'eth0', netns: '/run/netns/vxt-does-not-exist' });
    const e1 = assertCniError(t, missing, 8, 'netns missing');
    t.match(e1.msg, /\/run\/netns\/vxt-does-not-exist.*does not exist|does not exist.*\/run\/netns\/vxt-does-not-exist/, 'the message names the netns and says it does not exist');
    await assertNothingLeft(t, net, cid1);

    const notNs = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: net.tmp });
    const e1b = assertCniError(t, notNs, (c) => c === 8 || c === 5, 'a netns path that is a directory');
    t.match(e1b.msg, net.tmp, 'names the path');

    // An interface named eth0 already exists in the namespace: the ADD must fail after IPAM
    // allocated and undo that allocation.
    const ns = await newNetns(t);
    const pre = await exec('ip', ['-n', ns.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'vxtpeer0']);
    t.equal(pre.code, 0, 'pre-created eth0 in the netns', { stderr: pre.stderr });
    const cid2 = newContainerId();
    const exists = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: cid2, ifname: 'eth0', netns: ns.path });
    const e2 = assertCniError(t, exists, (c) => c >= 100, 'eth0 already exists in the netns');
    t.match(e2.msg, /eth0|exist/i, 'the message says what is in the way');
    await assertNothingLeft(t, net, cid2, ns);
    t.ok(await linkExists('eth0', ns.name), 'the pre-existing eth0 is untouched');
    t.ok(await linkExists('vxtpeer0', ns.name), 'and its peer too');

    const ns3 = await newNetns(t);
    const cid3 = newContainerId();
    const outside = await runPlugin(VXNET, net.conf('1.1.0', { runtimeConfig: { ips: ['10.238.1.1/24'] } }), { command: 'ADD', containerId: cid3, ifname: 'eth0', netns: ns3.path });
    const e3 = assertCniError(t, outside, 101, 'static IP outside the pool');
    t.match(e3.msg, '10.238.1.1', 'names the address');
    await assertNothingLeft(t, net, cid3, ns3);

    const gwCid = newContainerId();
    const gw = await runPlugin(VXNET, net.conf('1.1.0', { runtimeConfig: { ips: [`${net.ip4(1)}/24`] } }), { command: 'ADD', containerId: gwCid, ifname: 'eth0', netns: ns3.path });
    const e4 = assertCniError(t, gw, 101, 'static IP = the gateway');
    t.match(e4.msg, /gateway/, 'says it is the gateway');
    await assertNothingLeft(t, net, gwCid, ns3);

    t.same(await net.allocations(), [], 'the store holds nothing at the end');
  });

  t.test('CHECK and GC errors', async (t) => {
    const net = await newNet(t);
    const ns = await newNetns(t);
    const noPrev = await runPlugin(VXNET, net.conf(), { command: 'CHECK', containerId: newContainerId(), ifname: 'eth0', netns: ns.path });
    const e = assertCniError(t, noPrev, 7, 'CHECK without prevResult');
    t.match(e.msg, 'prevResult');
    const badGc = await runPlugin(VXNET, { ...net.conf(), 'cni.dev/valid-attachments': 'everything' }, { command: 'GC' });
    const g = assertCniError(t, badGc, 7, 'GC with a malformed attachment list');
    t.match(g.msg, 'cni.dev/valid-attachments');
    const unknown = await runPlugin(VXNET, net.conf(), { command: 'CHECK', containerId: newContainerId(), ifname: 'eth0', netns: ns.path, env: { CNI_NETNS: undefined } });
    assertCniError(t, unknown, 4, 'CHECK without CNI_NETNS');
  });
}
