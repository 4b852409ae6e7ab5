// Many runtimes' worth of plugin processes at once on one network: 64 concurrent ADDs get 64
// distinct, really configured addresses and 64 concurrent DELs leave nothing; ADDs SIGKILLed
// at staggered moments leave state that the next ADD for the container or a GC repairs.
// Root only; everything it creates is vxt-prefixed.
import t from 'tap';
import { exec, linkExists, newNetns, pollUntil, type Netns } from '../helpers/netns';
import {
  VXNET, type CniOutcome, cannotRun, describe, globalAddrs, hostVethName, mapLimit, newContainerId, newNet, resultAddrs, runPlugin, startPlugin,
} from './helpers/cni';

const N = 64;

const reason = cannotRun();
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(240_000);
  main();
}


/** True once the namespace has no eth0 (its veth pair is gone). */
async function eth0Gone(ns: Netns): Promise<boolean> {
  return !(await linkExists('eth0', ns.name));
}

function main(): void {
  t.test(`${N} concurrent ADDs then ${N} concurrent DELs on one network`, async (t) => {
    const net = await newNet(t);
    const nss = await mapLimit(Array.from({ length: N }, (_, i) => i), 8, () => newNetns(t));
    const cids = nss.map(() => newContainerId());

    const started = Date.now();
    const adds = await Promise.all(nss.map((ns, i) =>
      startPlugin(VXNET, net.conf(), { command: 'ADD', containerId: cids[i], ifname: 'eth0', netns: ns.path }, 120_000).done));
    t.comment(`${N} concurrent ADDs took ${Date.now() - started} ms`);
    const failed = adds.map((o, i) => [i, o] as const).filter(([, o]) => o.code !== 0);
    t.same(failed.map(([i, o]) => `${i}: ${describe(o)}`), [], 'every ADD succeeded');
    const addrs = adds.map((o) => resultAddrs(o.json)[0]);
    t.equal(new Set(addrs).size, N, `${N} distinct addresses`);
    t.ok(addrs.every((a) => a?.startsWith(`10.239.${net.n}.`)), 'all in the subnet');
    const allocs = await net.allocations();
    t.equal(allocs.length, N, `${N} allocations in the store`);
    t.same(allocs.map((a) => `${a.containerId} ${a.address}/24`).sort(), cids.map((c, i) => `${c} ${addrs[i]}`).sort(), 'each container holds the address its ADD returned');
    const configured = await mapLimit(nss, 8, (ns) => globalAddrs('eth0', ns.name));
    const wrong = configured.map((c, i) => [i, c] as const).filter(([i, c]) => c.length !== 1 || c[0] !== addrs[i]);
    t.same(wrong, [], 'every address is really configured on eth0 in its netns');
    const veths = await mapLimit(cids, 8, (c) => linkExists(hostVethName(c, 'eth0')));
    t.ok(veths.every(Boolean), `${N} host veths exist`);
    const br = await exec('ip', ['-o', 'link', 'show', 'master', net.bridge]);
    t.equal(br.stdout.trim().split('\n').filter(Boolean).length, N, `${N} ports on the bridge`);

    const delStarted = Date.now();
    const dels = await Promise.all(nss.map((ns, i) =>
      startPlugin(VXNET, net.conf('1.1.0', { prevResult: adds[i].json }), { command: 'DEL', containerId: cids[i], ifname: 'eth0', netns: ns.path }, 120_000).done));
    t.comment(`${N} concurrent DELs took ${Date.now() - delStarted} ms`);
    t.same(dels.map((o, i) => [i, o] as const).filter(([, o]) => o.code !== 0).map(([i, o]) => `${i}: ${describe(o)}`), [], 'every DEL succeeded');
    t.same(await net.allocations(), [], 'zero allocations left');
    const left = await mapLimit(cids, 8, (c) => linkExists(hostVethName(c, 'eth0')));
    t.equal(left.filter(Boolean).length, 0, 'zero host veths left under their names');
    // The pairs themselves may be deleted in the background: wait (bounded) until every netns lost eth0.
    await pollUntil(async () => (await mapLimit(nss, 8, eth0Gone)).every(Boolean), { timeoutMs: 20_000, what: 'every eth0 gone' })
      .then(() => t.pass('every veth pair is gone (no eth0 in any netns)'), (e: Error) => t.fail(e.message));
    const ports = await exec('ip', ['-o', 'link', 'show', 'master', net.bridge]);
    t.equal(ports.stdout.trim(), '', 'no port left on the bridge');
  });

  t.test('ADDs SIGKILLed half-way: the next ADD or a GC cleans up', async (t) => {
    const net = await newNet(t);
    const nVictims = 16;
    const nSurvivors = 6;
    const victims = await mapLimit(Array.from({ length: nVictims }, (_, i) => i), 8, async () => ({ delay: 0, ns: await newNetns(t), cid: newContainerId() }));
    const survivors = await mapLimit(Array.from({ length: nSurvivors }, (_, i) => i), 8, async () => ({ ns: await newNetns(t), cid: newContainerId() }));

    // Survivors: the first two alone, to measure how long an ADD takes on this machine now
    // (the bridge exists after the first); the rest concurrently.
    const addSurvivor = async (s: (typeof survivors)[number]): Promise<CniOutcome & { ms: number }> => {
      const t0 = Date.now();
      const o = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: s.cid, ifname: 'eth0', netns: s.ns.path });
      return { ...o, ms: Date.now() - t0 };
    };
    const survivorOutcomes = [await addSurvivor(survivors[0]), await addSurvivor(survivors[1])];
    survivorOutcomes.push(...(await Promise.all(survivors.slice(2).map(addSurvivor))));
    t.same(survivorOutcomes.filter((o) => o.code !== 0).map(describe), [], 'every ADD that is not killed succeeds');
    const lone = survivorOutcomes[1].ms;

    // Victims, one at a time so the timing holds: killed at staggered fractions of a lone
    // ADD's duration, from process start through the store transaction, bridge and veth
    // setup, addresses and routes.
    const fractions = Array.from({ length: nVictims }, (_, i) => 0.05 + (i * 1.0) / nVictims);
    const victimOutcomes: CniOutcome[] = [];
    for (const [i, v] of victims.entries()) {
      v.delay = Math.max(1, Math.round(fractions[i] * lone));
      const r = startPlugin(VXNET, net.conf(), { command: 'ADD', containerId: v.cid, ifname: 'eth0', netns: v.ns.path }, 60_000);
      const timer = setTimeout(() => r.child.kill('SIGKILL'), v.delay);
      const o = await r.done;
      clearTimeout(timer);
      victimOutcomes.push(o);
    }
    const killed = victimOutcomes.filter((o) => o.signal === 'SIGKILL').length;
    t.comment(`a lone ADD took ${lone} ms; ${killed} of ${nVictims} victims were killed (at ${victims.map((v) => v.delay).join(', ')} ms)`);
    t.ok(killed > 0, 'ADDs were killed before finishing');
    const before = await net.allocations();
    const leftAlloc = victims.filter((v) => before.some((a) => a.containerId === v.cid)).length;
    const leftVeth = (await mapLimit(victims, 8, (v) => linkExists(hostVethName(v.cid, 'eth0')))).filter(Boolean).length;
    const leftEth0 = (await mapLimit(victims, 8, async (v) => !(await eth0Gone(v.ns)))).filter(Boolean).length;
    t.comment(`left behind by the victims: ${leftAlloc} allocation(s), ${leftVeth} host veth(s), ${leftEth0} eth0 in their netns`);

    // Even victims: the runtime retries the ADD (after a kill it may; after a DEL it would too).
    const retried = victims.filter((_, i) => i % 2 === 0);
    const collected = victims.filter((_, i) => i % 2 === 1);
    const readds = await mapLimit(retried, 8, (v) => runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: v.cid, ifname: 'eth0', netns: v.ns.path }));
    t.same(readds.map((o, i) => [retried[i].delay, o] as const).filter(([, o]) => o.code !== 0).map(([d, o]) => `killed at ${d} ms: ${describe(o)}`), [],
      'the next ADD for every killed container succeeds');
    const afterReadd = await net.allocations();
    for (const [i, v] of retried.entries()) {
      const mine = afterReadd.filter((a) => a.containerId === v.cid);
      t.equal(mine.length, 1, `killed at ${v.delay} ms, ADD again: exactly one allocation`);
      t.same(await globalAddrs('eth0', v.ns.name), resultAddrs(readds[i].json), `killed at ${v.delay} ms, ADD again: eth0 has exactly the returned address`);
      t.ok(await linkExists(hostVethName(v.cid, 'eth0')), `killed at ${v.delay} ms, ADD again: host veth exists`);
    }

    // Odd victims: the runtime gave up on them; GC with the live attachments collects them.
    const valid = [...survivors.map((s) => s.cid), ...retried.map((v) => v.cid)].map((containerID) => ({ containerID, ifname: 'eth0' }));
    const gc = await runPlugin(VXNET, { ...net.conf('1.1.0'), 'cni.dev/valid-attachments': valid }, { command: 'GC' });
    t.equal(gc.code, 0, 'GC succeeds', { diag: describe(gc) });
    const afterGc = await net.allocations();
    for (const v of collected) {
      t.same(afterGc.filter((a) => a.containerId === v.cid), [], `killed at ${v.delay} ms, GC: no allocation left`);
      t.notOk(await linkExists(hostVethName(v.cid, 'eth0')), `killed at ${v.delay} ms, GC: no host veth left`);
    }
    t.same(afterGc.map((a) => a.containerId).sort(), valid.map((v) => v.containerID).sort(), 'the valid attachments keep exactly one allocation each');
    const addrs = afterGc.map((a) => a.address);
    t.equal(new Set(addrs).size, addrs.length, 'no address is held twice');
    // Nothing of the collected victims still hangs on the bridge, under any name.
    const ports = await exec('ip', ['-o', 'link', 'show', 'master', net.bridge]);
    t.equal(ports.stdout.trim().split('\n').filter(Boolean).length, valid.length, 'the bridge has exactly one port per valid attachment');
  });
}
