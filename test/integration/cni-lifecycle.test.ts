// The vxnet CNI plugin's whole lifecycle through the built binary (dist/bin/vxnet), as a
// runtime drives it: ADD in every result version, real addresses and routes in the netns,
// containers reaching each other (IPv4 and IPv6), repeated ADD (the same, or asking for another
// static IP), CHECK and drift, every DEL
// variant the spec says must succeed, GC, STATUS, VERSION, static IP, MAC, names, aliases.
// Root only; everything it creates is vxt-prefixed and removed by teardowns.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { deleteNetns, exec, linkExists, newNetns, pollUntil } from '../helpers/netns';
import {
  VXNET, attach, bare, cannotRun, describe, globalAddrs, hasStackTrace, hostVethName, linkIdentity, newContainerId, newNet, ping, resultAddrs, runPlugin,
} from './helpers/cni';

const reason = cannotRun();
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(120_000);
  main();
}

async function defaultGateway(ns: string, family: 4 | 6): Promise<string | undefined> {
  const r = await exec('ip', ['-n', ns, `-${family}`, '-j', 'route', 'show', 'default']);
  const routes = JSON.parse(r.stdout || '[]') as Array<{ gateway?: string; dev?: string }>;
  return routes.find((x) => x.dev === 'eth0')?.gateway;
}

async function linkMac(name: string, ns?: string): Promise<string | undefined> {
  const r = await exec('ip', [...(ns ? ['-n', ns] : []), '-j', 'link', 'show', 'dev', name]);
  return (JSON.parse(r.stdout || '[]') as Array<{ address?: string }>)[0]?.address;
}

function main(): void {
  t.test('ADD: result shape per cniVersion, address and default route in the netns, containers reach each other', async (t) => {
    const net = await newNet(t);
    const gw = net.ip4(1);
    const attached = [];
    for (const version of ['1.1.0', '1.0.0', '0.4.0', '0.3.1']) {
      const a = await attach(t, net, { cniVersion: version });
      attached.push(a);
      const r = a.add.json!;
      t.equal(r.cniVersion, version, `${version}: answers in the config's version`);
      t.equal(r.interfaces.length, 3, `${version}: bridge, host veth, container interface`);
      t.match(r.interfaces[0], { name: net.bridge, mac: /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/ }, `${version}: interfaces[0] is the bridge`);
      t.match(r.interfaces[1], { name: hostVethName(a.containerId, 'eth0') }, `${version}: interfaces[1] is the host veth`);
      t.notOk('sandbox' in r.interfaces[1], `${version}: the host veth has no sandbox`);
      t.match(r.interfaces[2], { name: 'eth0', sandbox: a.ns.path }, `${version}: interfaces[2] is eth0 in the netns`);
      t.equal(r.ips.length, 1, `${version}: one address`);
      const ip = r.ips[0];
      t.equal(ip.interface, 2, `${version}: ips[].interface = 2`);
      t.equal(ip.gateway, gw, `${version}: gateway`);
      t.match(ip.address, new RegExp(`^10\\.239\\.${net.n}\\.\\d+/24$`), `${version}: address in the subnet`);
      if (version === '0.4.0' || version === '0.3.1') t.equal(ip.version, '4', `${version}: ips[].version present before 1.0.0`);
      else t.notOk('version' in ip, `${version}: no ips[].version from 1.0.0 on`);
      t.same(r.routes, [{ dst: '0.0.0.0/0', gw }], `${version}: default route in the result`);
      t.same(await globalAddrs('eth0', a.ns.name), [ip.address], `${version}: the address is on eth0 in the netns`);
      t.equal(await defaultGateway(a.ns.name, 4), gw, `${version}: default route via the gateway in the netns`);
      t.ok(await linkExists(hostVethName(a.containerId, 'eth0')), `${version}: the host veth exists`);
      t.equal(r.interfaces[2].mac, await linkMac('eth0', a.ns.name), `${version}: the result has eth0's MAC`);
      t.equal(r.interfaces[1].mac, await linkMac(hostVethName(a.containerId, 'eth0')), `${version}: the result has the host veth's MAC`);
    }
    const queues = fs.readdirSync(`/sys/class/net/${hostVethName(attached[0].containerId, 'eth0')}/queues`).sort();
    t.same(queues, ['rx-0', 'tx-0'], 'the host veth was made with one queue each way');
    const addrs = attached.map((a) => bare(resultAddrs(a.add.json)[0]));
    t.equal(new Set(addrs).size, 4, 'four distinct addresses');
    t.same((await net.allocations()).map((x) => x.address).sort(), [...addrs].sort(), 'the store holds exactly these');
    const [a, b] = attached;
    const ab = await ping(a.ns.name, addrs[1]);
    t.ok(ab.ok, `container 1 pings container 2 (${addrs[1]})`, { output: ab.output });
    const ba = await ping(b.ns.name, addrs[0]);
    t.ok(ba.ok, `container 2 pings container 1 (${addrs[0]})`, { output: ba.output });
    const toGw = await ping(a.ns.name, gw);
    t.ok(toGw.ok, 'container 1 pings the gateway on the bridge', { output: toGw.output });
  });

  t.test('without the kernel echoing the new veth (VXNET_LINK_ECHO=0, as on kernels before 6.3): ends looked up, the same result', async (t) => {
    const net = await newNet(t);
    const env = { VXNET_LINK_ECHO: '0' };
    const a = await attach(t, net, { env });
    const b = await attach(t, net, { env, conf: { runtimeConfig: { mac: '02:42:0a:ef:00:77' } } });
    for (const x of [a, b]) {
      const r = x.add.json!;
      t.equal(r.interfaces[2].mac, await linkMac('eth0', x.ns.name), "the result has eth0's MAC");
      t.equal(r.interfaces[1].mac, await linkMac(hostVethName(x.containerId, 'eth0')), "the result has the host veth's MAC");
      t.same(await globalAddrs('eth0', x.ns.name), resultAddrs(r), 'the address is on eth0');
    }
    t.equal(b.add.json!.interfaces[2].mac, '02:42:0a:ef:00:77', 'a requested MAC is kept');
    const ab = await ping(a.ns.name, bare(resultAddrs(b.add.json)[0]));
    t.ok(ab.ok, 'the two reach each other', { output: ab.output });
    for (const x of [a, b]) {
      const del = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: x.containerId, ifname: 'eth0', netns: x.ns.path, env });
      t.equal(del.code, 0, describe(del));
    }
    t.same(await net.allocations(), [], 'both released');
  });

  t.test('repeated ADD returns the same address; CHECK passes, then detects a removed address', async (t) => {
    const net = await newNet(t, { ipMasq: true });
    const a = await attach(t, net);
    const masq = await exec('nft', ['get', 'element', 'ip', net.natTable, 'masq', `{ ${net.v4} }`]);
    t.equal(masq.code, 0, `ipMasq: the subnet is in nft table ip ${net.natTable}`, { stderr: masq.stderr });
    const first = resultAddrs(a.add.json);
    const again = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path });
    t.equal(again.code, 0, 'repeated ADD succeeds', { diag: describe(again) });
    t.same(resultAddrs(again.json), first, 'same address');
    t.equal((await net.allocations()).length, 1, 'still exactly one allocation');
    t.same(await globalAddrs('eth0', a.ns.name), first, 'the address is configured once');

    const prev = again.json;
    const check = await runPlugin(VXNET, net.conf('1.1.0', { prevResult: prev }), { command: 'CHECK', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path });
    t.equal(check.code, 0, 'CHECK passes on an intact attachment', { diag: describe(check) });
    t.equal(check.stdout, '', 'CHECK prints nothing on success');

    const del = await exec('ip', ['-n', a.ns.name, 'addr', 'del', first[0], 'dev', 'eth0']);
    t.equal(del.code, 0, 'removed the address by hand', { stderr: del.stderr });
    const drift = await runPlugin(VXNET, net.conf('1.1.0', { prevResult: prev }), { command: 'CHECK', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path });
    t.not(drift.code, 0, 'CHECK fails after the drift');
    t.equal(drift.json?.code, 102, 'code 102', { diag: describe(drift) });
    t.match(drift.json?.msg, bare(first[0]), 'the message names the address');
    t.notOk(hasStackTrace(drift.stderr), 'no stack trace on stderr');
  });

  t.test('repeated ADD of a live attachment: the same result (MACs too), nothing recreated, CHECK with the first result passes; drifted: code 102, left in place', async (t) => {
    const net = await newNet(t, { dual: true });
    const a = await attach(t, net);
    const veth = hostVethName(a.containerId, 'eth0');
    const call = { command: 'ADD', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path } as const;
    const before = { host: await linkIdentity(veth), container: await linkIdentity('eth0', a.ns.name) };
    t.ok(before.host && before.container, 'both ends exist after the first ADD');
    const again = await runPlugin(VXNET, net.conf(), call);
    t.equal(again.code, 0, 'repeated ADD succeeds', { diag: describe(again) });
    t.same(again.json, a.add.json, 'the same result as the first ADD, MACs included');
    t.same(await linkIdentity(veth), before.host, 'the host veth is the same link (index, MAC)');
    t.same(await linkIdentity('eth0', a.ns.name), before.container, 'so is the container\'s eth0');
    const check = await runPlugin(VXNET, net.conf('1.1.0', { prevResult: a.add.json }), { ...call, command: 'CHECK' });
    t.equal(check.code, 0, 'CHECK with the first ADD\'s result passes', { diag: describe(check) });

    // Someone replaced the container's IPv4 address: what is there is not what IPAM holds for it.
    const [first4] = resultAddrs(a.add.json);
    const other = `${net.ip4(200)}/24`;
    for (const args of [['addr', 'del', first4, 'dev', 'eth0'], ['addr', 'add', other, 'dev', 'eth0']]) {
      const r = await exec('ip', ['-n', a.ns.name, ...args]);
      t.equal(r.code, 0, `ip ${args.join(' ')}`, { stderr: r.stderr });
    }
    const allocated = (await net.allocations()).map((x) => x.address).sort();
    const drifted = await runPlugin(VXNET, net.conf(), call);
    t.equal(drifted.json?.code, 102, 'ADD over a drifted attachment: code 102', { diag: describe(drifted) });
    t.match(drifted.json?.msg, new RegExp(`eth0 .*${bare(other).replace(/\./g, '\\.')}.*${bare(first4).replace(/\./g, '\\.')}`), 'the message names the interface, what it has and what was allocated');
    t.notOk(hasStackTrace(drifted.stderr), 'no stack trace on stderr');
    t.same(await linkIdentity(veth), before.host, 'the host veth is left in place');
    t.same(await linkIdentity('eth0', a.ns.name), before.container, 'and the container\'s eth0');
    t.ok((await globalAddrs('eth0', a.ns.name)).includes(other), 'with its addresses');
    t.same((await net.allocations()).map((x) => x.address).sort(), allocated, 'the allocation is kept');
  });

  t.test('repeated ADD asking for another static IP: code 102 naming both, before anything is released; the first address still held and configured', async (t) => {
    const net = await newNet(t);
    const first = net.ip4(80);
    const second = net.ip4(81);
    const a = await attach(t, net, { conf: { runtimeConfig: { ips: [`${first}/24`] } } });
    const veth = hostVethName(a.containerId, 'eth0');
    const before = { host: await linkIdentity(veth), container: await linkIdentity('eth0', a.ns.name) };
    const call = { command: 'ADD', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path } as const;
    const again = await runPlugin(VXNET, net.conf('1.1.0', { runtimeConfig: { ips: [`${second}/24`] } }), call);
    t.equal(again.json?.code, 102, 'refused: code 102', { diag: describe(again) });
    t.match(again.json?.msg, new RegExp(`holds ${first.replace(/\./g, '\\.')}\\b.*asks for ${second.replace(/\./g, '\\.')}\\b`), 'the message names the held and the asked-for address');
    t.notOk(hasStackTrace(again.stderr), 'no stack trace on stderr');
    t.same((await net.allocations()).map((x) => [x.address, x.containerId, x.ifname]), [[first, a.containerId, 'eth0']],
      'the store still holds the first address for the container, and nothing for the second');
    t.same(await globalAddrs('eth0', a.ns.name), [`${first}/24`], 'still configured on eth0');
    t.same(await linkIdentity(veth), before.host, 'the host veth is the same link');
    t.same(await linkIdentity('eth0', a.ns.name), before.container, 'so is the container\'s eth0');
    const check = await runPlugin(VXNET, net.conf('1.1.0', { prevResult: a.add.json, runtimeConfig: { ips: [`${first}/24`] } }), { ...call, command: 'CHECK' });
    t.equal(check.code, 0, 'CHECK with the first ADD\'s result passes', { diag: describe(check) });
  });

  t.test('repeated ADD over leftovers: a host veth whose peer is in another namespace, or a pair never configured, is replaced', async (t) => {
    const net = await newNet(t);
    const a = await attach(t, net);
    const veth = hostVethName(a.containerId, 'eth0');
    const old = await linkIdentity(veth);
    // The runtime retries the container in a new namespace without a DEL in between.
    const ns2 = await newNetns(t);
    const moved = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: a.containerId, ifname: 'eth0', netns: ns2.path });
    t.equal(moved.code, 0, 'ADD into the new namespace succeeds', { diag: describe(moved) });
    t.same(resultAddrs(moved.json), resultAddrs(a.add.json), 'with the same address');
    t.same(await globalAddrs('eth0', ns2.name), resultAddrs(a.add.json), 'configured in the new namespace');
    t.not((await linkIdentity(veth))?.index, old?.index, 'through a new host veth');
    await pollUntil(async () => !(await linkExists('eth0', a.ns.name)), { timeoutMs: 5000, what: 'the old eth0 gone' })
      .then(() => t.pass('the old pair is gone from the old namespace'), (e: Error) => t.fail(e.message));

    // An ADD killed right after creating the pair: both ends exist, the container's is down and bare.
    const ns3 = await newNetns(t);
    const cid = newContainerId();
    const half = hostVethName(cid, 'eth0');
    const mk = await exec('ip', ['link', 'add', half, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns3.name]);
    t.equal(mk.code, 0, 'a bare pair under the attachment\'s names', { stderr: mk.stderr });
    const stale = await linkIdentity(half);
    const add = await runPlugin(VXNET, net.conf(), { command: 'ADD', containerId: cid, ifname: 'eth0', netns: ns3.path });
    t.equal(add.code, 0, 'ADD over it succeeds', { diag: describe(add) });
    t.not((await linkIdentity(half))?.index, stale?.index, 'the bare pair was replaced');
    t.same(await globalAddrs('eth0', ns3.name), resultAddrs(add.json), 'eth0 has exactly the returned address');
    t.equal(add.json?.interfaces?.[2]?.mac, (await linkIdentity('eth0', ns3.name))?.mac, 'and the returned MAC');
  });

  t.test('DEL: releases and removes the host veth; repeated, netns gone, no prevResult, never seen: all succeed', async (t) => {
    const net = await newNet(t);
    const a = await attach(t, net);
    const veth = hostVethName(a.containerId, 'eth0');
    const delA = { command: 'DEL' as const, containerId: a.containerId, ifname: 'eth0', netns: a.ns.path };
    const d1 = await runPlugin(VXNET, net.conf('1.1.0', { prevResult: a.add.json }), delA);
    t.equal(d1.code, 0, 'DEL succeeds', { diag: describe(d1) });
    t.equal(d1.stdout, '', 'DEL prints nothing');
    t.same((await net.allocations()).filter((x) => x.containerId === a.containerId), [], 'the allocation is gone from the store');
    t.notOk(await linkExists(veth), 'the host veth is gone');
    // The pair itself may be deleted in the background (the host end is renamed away at once).
    t.ok(await pollUntil(async () => !(await linkExists('eth0', a.ns.name)), { timeoutMs: 5000, what: 'eth0 gone' }), 'eth0 is gone from the netns');
    const d2 = await runPlugin(VXNET, net.conf('1.1.0', { prevResult: a.add.json }), delA);
    t.equal(d2.code, 0, 'a repeated DEL succeeds', { diag: describe(d2) });

    const b = await attach(t, net);
    const gone = await deleteNetns(b.ns.name);
    t.equal(gone.code, 0, 'deleted the netns of container b');
    const d3 = await runPlugin(VXNET, net.conf('1.1.0', { prevResult: b.add.json }), { command: 'DEL', containerId: b.containerId, ifname: 'eth0', netns: b.ns.path });
    t.equal(d3.code, 0, 'DEL with the netns gone succeeds', { diag: describe(d3) });
    t.same((await net.allocations()).filter((x) => x.containerId === b.containerId), [], 'and releases its address');
    t.notOk(await linkExists(hostVethName(b.containerId, 'eth0')), 'no host veth of b left');

    const c = await attach(t, net);
    const d4 = await runPlugin(VXNET, net.conf('1.1.0'), { command: 'DEL', containerId: c.containerId, ifname: 'eth0', netns: c.ns.path });
    t.equal(d4.code, 0, 'DEL without prevResult succeeds', { diag: describe(d4) });
    t.same((await net.allocations()).filter((x) => x.containerId === c.containerId), [], 'and releases its address');
    t.notOk(await linkExists(hostVethName(c.containerId, 'eth0')), 'no host veth of c left');

    const d = await attach(t, net);
    const d5 = await runPlugin(VXNET, net.conf('1.1.0'), { command: 'DEL', containerId: d.containerId, ifname: 'eth0', netns: '' });
    t.equal(d5.code, 0, 'DEL with an empty CNI_NETNS succeeds', { diag: describe(d5) });
    t.same((await net.allocations()).filter((x) => x.containerId === d.containerId), [], 'and releases its address');

    for (const version of ['1.1.0', '0.4.0', '0.3.1']) {
      const never = await runPlugin(VXNET, net.conf(version), { command: 'DEL', containerId: newContainerId(), ifname: 'eth0', netns: '/run/netns/vxt-never-existed' });
      t.equal(never.code, 0, `DEL of a never-seen container succeeds (${version})`, { diag: describe(never) });
    }
    t.same(await net.allocations(), [], 'nothing left allocated');
  });

  t.test('GC releases the attachments not listed and deletes their host veths', async (t) => {
    const net = await newNet(t);
    const keep = await attach(t, net);
    const drop1 = await attach(t, net);
    const drop2 = await attach(t, net);
    const gc = await runPlugin(VXNET, { ...net.conf('1.1.0'), 'cni.dev/valid-attachments': [{ containerID: keep.containerId, ifname: 'eth0' }] }, { command: 'GC' });
    t.equal(gc.code, 0, 'GC succeeds', { diag: describe(gc) });
    t.equal(gc.stdout, '', 'GC prints nothing');
    t.same((await net.allocations()).map((x) => x.containerId), [keep.containerId], 'only the valid attachment keeps its address');
    t.ok(await linkExists(hostVethName(keep.containerId, 'eth0')), 'the valid attachment keeps its host veth');
    t.notOk(await linkExists(hostVethName(drop1.containerId, 'eth0')), 'host veth of the first stale attachment deleted');
    t.notOk(await linkExists(hostVethName(drop2.containerId, 'eth0')), 'host veth of the second stale attachment deleted');
    t.same(await globalAddrs('eth0', keep.ns.name), resultAddrs(keep.add.json), 'the valid attachment is untouched');

    // The key as the spec tag's text spells it works as well.
    const gc2 = await runPlugin(VXNET, { ...net.conf('1.1.0'), 'cni.dev/attachments': [] }, { command: 'GC' });
    t.equal(gc2.code, 0, 'GC with cni.dev/attachments succeeds', { diag: describe(gc2) });
    t.same(await net.allocations(), [], 'an empty list releases everything');
    t.notOk(await linkExists(hostVethName(keep.containerId, 'eth0')), 'and deletes the last host veth');

    const old = await runPlugin(VXNET, { ...net.conf('1.0.0'), 'cni.dev/valid-attachments': [] }, { command: 'GC' });
    t.equal(old.json?.code, 7, 'GC below cniVersion 1.1.0 is refused (code 7)', { diag: describe(old) });
  });

  t.test('STATUS: ok with a usable store, code 50 with an unusable one', async (t) => {
    const net = await newNet(t);
    const ok = await runPlugin(VXNET, net.conf('1.1.0'), { command: 'STATUS' });
    t.equal(ok.code, 0, 'STATUS exits 0', { diag: describe(ok) });
    t.equal(ok.stdout, '', 'and prints nothing');
    const file = join(net.tmp, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const conf = net.conf('1.1.0');
    const bad = await runPlugin(VXNET, { ...conf, ipam: { ...conf.ipam, dataDir: join(file, 'store') } }, { command: 'STATUS' });
    t.not(bad.code, 0, 'STATUS fails when the store cannot be used');
    t.equal(bad.json?.code, 50, 'code 50', { diag: describe(bad) });
    t.type(bad.json?.msg, 'string');
    t.notOk(hasStackTrace(bad.stderr), 'no stack trace on stderr');
  });

  t.test('VERSION lists 0.3.0 to 1.1.0', async (t) => {
    const v = await runPlugin(VXNET, { cniVersion: '1.1.0' }, { command: 'VERSION', env: { CNI_PATH: undefined } });
    t.equal(v.code, 0, 'VERSION exits 0', { diag: describe(v) });
    t.equal(v.json?.cniVersion, '1.1.0');
    for (const version of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) t.ok(v.json?.supportedVersions?.includes(version), `supports ${version}`);
    const v04 = await runPlugin(VXNET, { cniVersion: '0.4.0' }, { command: 'VERSION' });
    t.equal(v04.json?.cniVersion, '0.4.0', 'answers in the asked version');
  });

  t.test('dual stack: one address per family, IPv6 configured without DAD delay, v4 and v6 ping', async (t) => {
    const net = await newNet(t, { dual: true });
    const a = await attach(t, net);
    const b = await attach(t, net);
    const v6gw = `fd00:239:${net.n.toString(16)}::1`;
    for (const [label, x] of [['a', a], ['b', b]] as const) {
      const ips = x.add.json!.ips as Array<{ address: string; gateway: string; interface: number }>;
      t.equal(ips.length, 2, `${label}: two addresses`);
      t.match(ips[0], { address: new RegExp(`^10\\.239\\.${net.n}\\.\\d+/24$`), gateway: net.ip4(1), interface: 2 }, `${label}: IPv4`);
      t.match(ips[1], { address: new RegExp(`^fd00:239:${net.n.toString(16)}::[0-9a-f]+/64$`), gateway: v6gw, interface: 2 }, `${label}: IPv6`);
      t.same(x.add.json!.routes, [{ dst: '0.0.0.0/0', gw: net.ip4(1) }, { dst: '::/0', gw: v6gw }], `${label}: a default route per family`);
      const r = await exec('ip', ['-n', x.ns.name, '-6', '-j', 'addr', 'show', 'dev', 'eth0', 'scope', 'global']);
      const info = (JSON.parse(r.stdout || '[]') as Array<{ addr_info: Array<{ local: string; tentative?: boolean; dadfailed?: boolean }> }>)[0]?.addr_info ?? [];
      const mine = info.find((i) => `${i.local}/64` === ips[1].address);
      t.ok(mine, `${label}: the IPv6 address is on eth0`);
      t.notOk(mine?.tentative, `${label}: and not tentative (usable at once)`);
      t.equal(await defaultGateway(x.ns.name, 6), v6gw, `${label}: IPv6 default route via the gateway`);
    }
    const allocs = await net.allocations();
    t.same(allocs.map((x) => x.family).sort(), [4, 4, 6, 6], 'the store holds one address per family per container');
    const b6 = bare(resultAddrs(b.add.json)[1]);
    const a6 = bare(resultAddrs(a.add.json)[1]);
    const p1 = await ping(a.ns.name, b6);
    t.ok(p1.ok, `a pings b over IPv6 (${b6})`, { output: p1.output });
    const p2 = await ping(b.ns.name, a6);
    t.ok(p2.ok, `b pings a over IPv6 (${a6})`, { output: p2.output });
    const p3 = await ping(a.ns.name, bare(resultAddrs(b.add.json)[0]));
    t.ok(p3.ok, 'a pings b over IPv4', { output: p3.output });
  });

  t.test('static IP (runtimeConfig.ips), MAC (runtimeConfig.mac), K8S_POD_NAME and aliases recorded; a taken IP is refused', async (t) => {
    const net = await newNet(t);
    const want = net.ip4(50);
    const mac = `02:42:0a:ef:${net.n.toString(16).padStart(2, '0')}:32`;
    const a = await attach(t, net, {
      conf: { runtimeConfig: { ips: [`${want}/24`], mac, aliases: ['web', 'web.default'] } },
      args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1',
    });
    t.same(resultAddrs(a.add.json), [`${want}/24`], 'the requested address');
    t.same(await globalAddrs('eth0', a.ns.name), [`${want}/24`], 'configured on eth0');
    t.equal(a.add.json!.interfaces[2].mac, mac, 'the result reports the requested MAC');
    t.equal(await linkMac('eth0', a.ns.name), mac, 'eth0 has the requested MAC');
    const [alloc] = await net.allocations();
    t.match(alloc, { address: want, containerId: a.containerId, ifname: 'eth0', name: 'web-1', netns: a.ns.path }, 'the allocation records the pod name');
    t.same(alloc?.aliases, ['web', 'web.default'], 'and the aliases');

    const b = await attach(t, net, { conf: { runtimeConfig: { ips: [`${net.ip4(60)}/24`] } }, args: `IP=${net.ip4(70)}` });
    t.same(resultAddrs(b.add.json), [`${net.ip4(60)}/24`], 'runtimeConfig.ips wins over CNI_ARGS IP=');

    const ns = await newNetns(t);
    const cid = newContainerId();
    const taken = await runPlugin(VXNET, net.conf('1.1.0', { runtimeConfig: { ips: [`${want}/24`] } }), { command: 'ADD', containerId: cid, ifname: 'eth0', netns: ns.path });
    t.not(taken.code, 0, 'ADD asking for a taken address fails');
    t.equal(taken.json?.code, 101, 'code 101', { diag: describe(taken) });
    t.match(taken.json?.msg, want, 'the message names the address');
    t.same((await net.allocations()).filter((x) => x.containerId === cid), [], 'no allocation left for the refused container');
    t.notOk(await linkExists(hostVethName(cid, 'eth0')), 'no host veth left for it');
    t.notOk(await linkExists('eth0', ns.name), 'no eth0 in its netns');
  });
}
