// The vxnet plugin handing its calls to vxnetd (handoff/client.ts, handoff/service.ts): the built
// plugin, with VXNET_CNI_SOCKET pointing at a built vxnetd of the test's own, gets the same
// answers as in-process (results, the same errors for bad input), and vxnetd's log shows it
// did the work. A plugin in another network namespace, vxnetd SIGKILLed (stale socket) or
// vxnetd of another build: the plugin does the work itself, and the runtime sees no difference.
// Root only; every object is vxt-prefixed or inside the test's namespaces.
import t from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { exec, linkExists, newNetns } from '../helpers/netns';
import { pollUntil } from '../helpers/sh';
import {
  DIST_BIN, VXNET, type CniCall, bare, cannotRun, cniEnv, describe, hostVethName, linkIdentity, newContainerId, newNet, resultAddrs, runInNetns, runPlugin,
} from './helpers/cni';

const reason = cannotRun();
if (reason) t.plan(0, reason);
else void main();

interface Daemon { proc: ChildProcess; socket: string; log: () => string }

async function startVxnetd(tmp: string, cniSocket: string): Promise<Daemon> {
  const socket = `/run/docker/plugins/vxt${randomBytes(4).toString('hex')}.sock`;
  const proc = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--no-dns', '--no-vip', '--http-listen', '', '--socket', socket, '--cni-socket', cniSocket, '--data-dir', join(tmp, 'vxnetd'), '--log-level', 'debug'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  let log = '';
  proc.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    fs.rmSync(socket, { force: true });
  });
  await pollUntil(() => {
    if (proc.exitCode !== null) throw new Error(`vxnetd exited ${proc.exitCode}: ${log}`);
    return log.includes('"serving CNI calls"');
  }, { timeoutMs: 10_000, what: 'vxnetd serving CNI calls' });
  return { proc, socket, log: () => log };
}

async function main(): Promise<void> {
  t.setTimeout(120_000);
  const net1 = await newNet(t, { dual: true });
  const cniSocket = join(net1.tmp, 'cni.sock');
  const d = await startVxnetd(net1.tmp, cniSocket);
  const via = (call: CniCall): CniCall => ({ ...call, env: { ...call.env, VXNET_CNI_SOCKET: cniSocket } });
  /** Whether vxnetd's debug log has the call, now. */
  const logged = (containerId: string, command: string): boolean =>
    d.log().split('\n').some((l) => l.includes('"CNI call') && l.includes(`"container":"${containerId}"`) && l.includes(`"command":"${command}"`));
  /** Whether vxnetd handled the call: its log line may reach us just after the plugin's answer. */
  const handled = (containerId: string, command: string): Promise<boolean> =>
    pollUntil(() => logged(containerId, command), { timeoutMs: 3000, intervalMs: 10, what: `vxnetd's log of ${command} ${containerId}` }).then(() => true, () => false);

  await t.test('ADD, CHECK, DEL through vxnetd: the same results, and vxnetd did the work', async (t) => {
    const a = await newNetns(t);
    const b = await newNetns(t);
    const ida = newContainerId();
    const idb = newContainerId();
    const addA = await runPlugin(VXNET, net1.conf(), via({ command: 'ADD', containerId: ida, ifname: 'eth0', netns: a.path }));
    t.equal(addA.code, 0, describe(addA));
    t.ok(await handled(ida, 'ADD'), 'vxnetd logged the ADD');
    const addB = await runPlugin(VXNET, net1.conf(), { command: 'ADD', containerId: idb, ifname: 'eth0', netns: b.path });
    t.equal(addB.code, 0, `in-process ADD on the same network: ${describe(addB)}`);
    t.notOk(logged(idb, 'ADD'), 'that one was not handed over');
    t.same(Object.keys(addA.json!).sort(), Object.keys(addB.json!).sort(), 'the same result shape');
    const [a4, a6] = resultAddrs(addA.json);
    const [b4] = resultAddrs(addB.json);
    t.match(a4, /^10\.239\.\d+\.\d+\/24$/);
    t.match(a6, /^fd00:239:/);
    t.not(bare(a4), bare(b4), 'one store: distinct addresses');
    t.same((await net1.allocations()).map((x) => x.containerId).sort(), [ida, ida, idb, idb].sort(), 'both in the one store');
    const ping = await exec('ip', ['netns', 'exec', a.name, 'busybox', 'ping', '-c', '1', '-W', '2', bare(b4)]);
    t.equal(ping.code, 0, 'the handed-over container reaches the in-process one');

    const check = await runPlugin(VXNET, { ...net1.conf(), prevResult: addA.json }, via({ command: 'CHECK', containerId: ida, ifname: 'eth0', netns: a.path }));
    t.equal(check.code, 0, describe(check));
    t.ok(await handled(ida, 'CHECK'), 'vxnetd logged the CHECK');
    const del = await runPlugin(VXNET, net1.conf(), via({ command: 'DEL', containerId: ida, ifname: 'eth0', netns: a.path }));
    t.equal(del.code, 0, describe(del));
    t.ok(await handled(ida, 'DEL'), 'vxnetd logged the DEL');
    t.same((await net1.allocations()).map((x) => x.containerId), [idb, idb], 'DEL through vxnetd released both addresses');
  });

  await t.test('32 ADDs at once through vxnetd, then their DELs: distinct addresses, nothing left', async (t) => {
    const net2 = await newNet(t);
    const nss = await Promise.all(Array.from({ length: 32 }, () => newNetns(t)));
    const ids = nss.map(() => newContainerId());
    const adds = await Promise.all(nss.map((ns, i) => runPlugin(VXNET, net2.conf(), via({ command: 'ADD', containerId: ids[i], ifname: 'eth0', netns: ns.path }))));
    t.same(adds.filter((a) => a.code !== 0).map(describe), [], 'every ADD succeeded');
    const addrs = adds.map((a) => resultAddrs(a.json)[0]);
    t.equal(new Set(addrs).size, 32, '32 distinct addresses');
    t.equal((await Promise.all(ids.map((id) => handled(id, 'ADD')))).filter(Boolean).length, 32, 'all 32 done by vxnetd');
    const dels = await Promise.all(nss.map((ns, i) => runPlugin(VXNET, net2.conf(), via({ command: 'DEL', containerId: ids[i], ifname: 'eth0', netns: ns.path }))));
    t.same(dels.filter((r) => r.code !== 0).map(describe), [], 'every DEL succeeded');
    t.same(await net2.allocations(), [], 'no allocation left');
  });

  await t.test('vxnetd attaches to a bridge it set up without looking it up; deleted, or replaced by a bare one, it is set up again', async (t) => {
    const net3 = await newNet(t);
    const [a, b, c] = await Promise.all([newNetns(t), newNetns(t), newNetns(t)]);
    const ids = [newContainerId(), newContainerId(), newContainerId()];
    const add = (i: number, ns: { path: string }) => runPlugin(VXNET, net3.conf(), via({ command: 'ADD', containerId: ids[i], ifname: 'eth0', netns: ns.path }));
    const bridge = async (): Promise<{ index: number; alias?: string; up: boolean; addrs: string[] }> => {
      const j = (JSON.parse((await exec('ip', ['-j', 'addr', 'show', 'dev', net3.bridge])).stdout || '[]') as Array<{ ifindex: number; ifalias?: string; flags: string[]; addr_info: Array<{ local: string }> }>)[0];
      const alias = (JSON.parse((await exec('ip', ['-j', '-d', 'link', 'show', 'dev', net3.bridge])).stdout || '[]') as Array<{ ifalias?: string }>)[0]?.ifalias;
      return { index: j.ifindex, ...(alias ? { alias } : {}), up: j.flags.includes('UP'), addrs: j.addr_info.map((x) => x.local) };
    };
    const masterOf = async (id: string): Promise<string | undefined> =>
      (JSON.parse((await exec('ip', ['-j', 'link', 'show', 'dev', hostVethName(id, 'eth0')])).stdout || '[]') as Array<{ master?: string }>)[0]?.master;
    const gw = `10.239.${net3.n}.1`;

    const r1 = await add(0, a);
    t.equal(r1.code, 0, describe(r1));
    const first = await bridge();
    t.ok(first.addrs.includes(gw) && first.up && first.alias?.startsWith('vxnet network='), 'the first ADD set the bridge up', { first });

    await exec('ip', ['link', 'del', net3.bridge]);
    const r2 = await add(1, b);
    t.equal(r2.code, 0, `ADD after the bridge was deleted: ${describe(r2)}`);
    t.ok(await handled(ids[1], 'ADD'), 'by vxnetd');
    const second = await bridge();
    t.not(second.index, first.index, 'a new bridge');
    t.ok(second.addrs.includes(gw) && second.up && second.alias === first.alias, 'set up like the first', { second });
    t.equal(await masterOf(ids[1]), net3.bridge, 'the new veth is on it');

    await exec('ip', ['link', 'del', net3.bridge]);
    await exec('ip', ['link', 'add', net3.bridge, 'type', 'bridge']);
    const r3 = await add(2, c);
    t.equal(r3.code, 0, `ADD after the bridge was replaced by a bare one: ${describe(r3)}`);
    const third = await bridge();
    t.ok(third.addrs.includes(gw) && third.up && third.alias === first.alias, 'the bare bridge got the setup', { third });
    t.equal(await masterOf(ids[2]), net3.bridge, 'the veth is on it');
    const toGw = await exec('ip', ['netns', 'exec', c.name, 'busybox', 'ping', '-c', '1', '-W', '2', gw]);
    t.equal(toGw.code, 0, 'the container reaches the gateway', { output: toGw.stdout + toGw.stderr });
    for (const [i, ns] of [a, b, c].entries()) {
      const del = await runPlugin(VXNET, net3.conf(), via({ command: 'DEL', containerId: ids[i], ifname: 'eth0', netns: ns.path }));
      t.equal(del.code, 0, describe(del));
    }
  });

  await t.test('an ADD failing in IPAM while vxnetd creates its veth (bridge known): the veth is removed, no address kept', async (t) => {
    const net4 = await newNet(t);
    const [a, b] = await Promise.all([newNetns(t), newNetns(t)]);
    const [ida, idb] = [newContainerId(), newContainerId()];
    const addA = await runPlugin(VXNET, net4.conf(), via({ command: 'ADD', containerId: ida, ifname: 'eth0', netns: a.path }));
    t.equal(addA.code, 0, describe(addA));
    // vxnetd now knows the bridge: B's pair is created while its address is allocated, and the
    // allocation fails (A's address asked for).
    const taken = bare(resultAddrs(addA.json)[0]);
    const addB = await runPlugin(VXNET, { ...net4.conf(), runtimeConfig: { ips: [`${taken}/24`] } }, via({ command: 'ADD', containerId: idb, ifname: 'eth0', netns: b.path }));
    t.not(addB.code, 0, 'the ADD fails');
    t.match(addB.json?.msg, new RegExp(taken.replace(/\./g, '\\.')), 'naming the address', { out: describe(addB) });
    t.ok(await handled(idb, 'ADD'), 'in vxnetd');
    t.notOk(await linkExists(hostVethName(idb, 'eth0')), 'no host veth left');
    t.notOk(await linkExists('eth0', b.name), 'no interface left in the container');
    t.same((await net4.allocations()).map((x) => x.containerId), [ida], 'only A holds an address');
    const addB2 = await runPlugin(VXNET, net4.conf(), via({ command: 'ADD', containerId: idb, ifname: 'eth0', netns: b.path }));
    t.equal(addB2.code, 0, `B added without the conflict: ${describe(addB2)}`);
    for (const [id, ns] of [[ida, a], [idb, b]] as const) {
      const del = await runPlugin(VXNET, net4.conf(), via({ command: 'DEL', containerId: id, ifname: 'eth0', netns: ns.path }));
      t.equal(del.code, 0, describe(del));
    }
  });

  await t.test('repeated ADD through vxnetd, then in-process (the client\'s retry when vxnetd died before answering): the same result, nothing recreated; drifted: code 102 both ways, nothing undone', async (t) => {
    const net5 = await newNet(t);
    const ns = await newNetns(t);
    const id = newContainerId();
    const call: CniCall = { command: 'ADD', containerId: id, ifname: 'eth0', netns: ns.path };
    const first = await runPlugin(VXNET, net5.conf(), via(call));
    t.equal(first.code, 0, describe(first));
    const veth = hostVethName(id, 'eth0');
    const before = { host: await linkIdentity(veth), container: await linkIdentity('eth0', ns.name) };
    // The second ADD through vxnetd finds the bridge known: its pair is created while the
    // address is allocated (and exists already).
    const again = await runPlugin(VXNET, net5.conf(), via(call));
    t.equal(again.code, 0, describe(again));
    t.ok(await handled(id, 'ADD'), 'done by vxnetd');
    t.same(again.json, first.json, 'through vxnetd: the same result, MACs included');
    const inproc = await runPlugin(VXNET, net5.conf(), call);
    t.equal(inproc.code, 0, describe(inproc));
    t.same(inproc.json, first.json, 'in-process: the same result');
    t.same(await linkIdentity(veth), before.host, 'the host veth is the same link');
    t.same(await linkIdentity('eth0', ns.name), before.container, 'so is the container\'s eth0');
    const check = await runPlugin(VXNET, { ...net5.conf(), prevResult: first.json }, via({ ...call, command: 'CHECK' }));
    t.equal(check.code, 0, `CHECK with the first result: ${describe(check)}`);

    // The host veth taken off the bridge by hand: not the attachment this network makes.
    const nomaster = await exec('ip', ['link', 'set', veth, 'nomaster']);
    t.equal(nomaster.code, 0, 'host veth off the bridge', { stderr: nomaster.stderr });
    for (const [how, c] of [['through vxnetd', via(call)], ['in-process', call]] as const) {
      const drifted = await runPlugin(VXNET, net5.conf(), c);
      t.equal(drifted.json?.code, 102, `${how}: code 102`, { diag: describe(drifted) });
      t.match(drifted.json?.msg, new RegExp(`${veth}.*bridge ${net5.bridge}`), `${how}: the message names the veth and the bridge`);
    }
    t.same(await linkIdentity(veth), before.host, 'the host veth is left in place');
    t.same(await linkIdentity('eth0', ns.name), before.container, 'and the container\'s eth0');
    t.same((await net5.allocations()).map((x) => x.containerId), [id], 'the allocation is kept');
    const del = await runPlugin(VXNET, net5.conf(), via({ ...call, command: 'DEL' }));
    t.equal(del.code, 0, describe(del));
  });

  await t.test('the node:net transport (VXNET_HANDOFF_TRANSPORT=net) hands over the same calls', async (t) => {
    const ns = await newNetns(t);
    const id = newContainerId();
    const viaNet = (call: CniCall): CniCall => via({ ...call, env: { ...call.env, VXNET_HANDOFF_TRANSPORT: 'net' } });
    const add = await runPlugin(VXNET, net1.conf(), viaNet({ command: 'ADD', containerId: id, ifname: 'eth0', netns: ns.path }));
    t.equal(add.code, 0, describe(add));
    t.ok(await handled(id, 'ADD'), 'vxnetd logged the ADD');
    const del = await runPlugin(VXNET, net1.conf(), viaNet({ command: 'DEL', containerId: id, ifname: 'eth0', netns: ns.path }));
    t.equal(del.code, 0, describe(del));
    t.ok(await handled(id, 'DEL'), 'vxnetd logged the DEL');
    t.same((await net1.allocations()).filter((x) => x.containerId === id), [], 'released');
  });

  await t.test('vxnetd keeps a store open between calls, and notices when its file is replaced', async (t) => {
    const net3 = await newNet(t);
    const ns1 = await newNetns(t);
    const ns2 = await newNetns(t);
    const id1 = newContainerId();
    const id2 = newContainerId();
    const add1 = await runPlugin(VXNET, net3.conf(), via({ command: 'ADD', containerId: id1, ifname: 'eth0', netns: ns1.path }));
    t.equal(add1.code, 0, describe(add1));
    t.ok(await handled(id1, 'ADD'), 'done by vxnetd');
    // An operator wipes the network's store: the next call must not write into the deleted file.
    fs.rmSync(net3.dataDir, { recursive: true, force: true });
    const add2 = await runPlugin(VXNET, net3.conf(), via({ command: 'ADD', containerId: id2, ifname: 'eth0', netns: ns2.path }));
    t.equal(add2.code, 0, describe(add2));
    t.ok(await handled(id2, 'ADD'), 'done by vxnetd');
    t.same((await net3.allocations()).map((x) => x.containerId), [id2], 'the new store file holds the new allocation, and only it');
    const del2 = await runPlugin(VXNET, net3.conf(), via({ command: 'DEL', containerId: id2, ifname: 'eth0', netns: ns2.path }));
    t.equal(del2.code, 0, describe(del2));
    const del1 = await runPlugin(VXNET, net3.conf(), via({ command: 'DEL', containerId: id1, ifname: 'eth0', netns: ns1.path }));
    t.equal(del1.code, 0, `DEL of an attachment whose store was wiped: ${describe(del1)}`);
  });

  await t.test('bad input: the same error through vxnetd as in-process', async (t) => {
    const ns = await newNetns(t);
    const cases: Array<[string, unknown, CniCall]> = [
      ['malformed JSON', '{"cniVersion":', { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: ns.path }],
      ['missing CNI_NETNS', net1.conf(), { command: 'ADD', containerId: newContainerId(), ifname: 'eth0' }],
      ['unsupported version', net1.conf('0.2.0'), { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: ns.path }],
      ['bad bridge name', net1.conf('1.1.0', { bridge: 'a-bridge-name-too-long' }), { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: ns.path }],
      ['missing namespace', net1.conf(), { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: '/run/netns/vxt-none' }],
      ['VERSION', {}, { command: 'VERSION' }],
    ];
    for (const [what, stdin, call] of cases) {
      const inproc = await runPlugin(VXNET, stdin, call);
      const handed = await runPlugin(VXNET, stdin, via(call));
      t.equal(handed.code, inproc.code, `${what}: exit ${inproc.code}`);
      t.equal(handed.stdout, inproc.stdout, `${what}: ${inproc.stdout.trim()}`);
    }
    t.same((await net1.allocations()).length, 2, 'nothing allocated by the failed calls');
  });

  await t.test('a plugin in another network namespace: vxnetd declines, the plugin does the work', async (t) => {
    const other = await newNetns(t);
    const c = await newNetns(t);
    const id = newContainerId();
    // The plugin runs inside `other`: its bridge is made there, as it must be.
    const add = await runInNetns(other, VXNET, [], cniEnv(via({ command: 'ADD', containerId: id, ifname: 'eth0', netns: c.path })), net1.conf('1.1.0', { ipMasq: false }));
    t.equal(add.code, 0, describe(add));
    t.notOk(logged(id, 'ADD'), 'not done by vxnetd');
    t.ok(await pollUntil(() => /"CNI call left to the plugin".*network namespace/.test(d.log()), { timeoutMs: 3000, intervalMs: 10, what: 'the refusal logged' }), 'vxnetd says why');
    const br = await exec('ip', ['-n', other.name, 'link', 'show', net1.bridge]);
    t.equal(br.code, 0, 'the bridge is in the plugin\'s namespace');
    const del = await runInNetns(other, VXNET, [], cniEnv(via({ command: 'DEL', containerId: id, ifname: 'eth0', netns: c.path })), net1.conf());
    t.equal(del.code, 0, describe(del));
  });

  await t.test('vxnetd of another build, then vxnetd killed (stale socket): the plugin does the work', async (t) => {
    // A fake vxnetd of another build on its own socket: it refuses every call.
    const fakeSocket = join(net1.tmp, 'fake.sock');
    const fake = net.createServer((s) => s.end(JSON.stringify({ fallback: 'plugin build x, vxnetd runs y' }) + '\n'));
    await new Promise<void>((r) => fake.listen(fakeSocket, () => r()));
    t.teardown(() => fake.close());
    const ns1 = await newNetns(t);
    const id1 = newContainerId();
    const add1 = await runPlugin(VXNET, net1.conf(), { command: 'ADD', containerId: id1, ifname: 'eth0', netns: ns1.path, env: { VXNET_CNI_SOCKET: fakeSocket } });
    t.equal(add1.code, 0, `refused by the other build: ${describe(add1)}`);
    t.equal((await net1.allocations()).filter((x) => x.containerId === id1).length, 2, 'allocated once, in-process');

    d.proc.kill('SIGKILL');
    await pollUntil(() => d.proc.signalCode !== null, { timeoutMs: 5000, what: 'vxnetd gone' });
    t.ok(fs.existsSync(cniSocket), 'its socket file is left behind');
    const ns2 = await newNetns(t);
    const id2 = newContainerId();
    const add2 = await runPlugin(VXNET, net1.conf(), via({ command: 'ADD', containerId: id2, ifname: 'eth0', netns: ns2.path }));
    t.equal(add2.code, 0, `stale socket: ${describe(add2)}`);
    t.equal((await net1.allocations()).filter((x) => x.containerId === id2).length, 2, 'allocated once');
  });
}

