// The vxnet plugin in overlay mode ("mode":"overlay"): addresses from this host's blocks and
// the overlay MTU, both read from the overlay agent's local state file (no etcd on ADD), the
// network's whole subnets masqueraded, clear errors when the state is missing or the config
// gives its own ranges; the container attached routed (datapath/routed.ts). Then two hosts (namespaces on an underlay, the overlay programmed by
// VtepProgrammer) with containers attached by the built plugin run inside each host namespace:
// they ping each other across hosts, IPv4 and IPv6, without NAT between overlay addresses;
// and the same with two real overlay agents on etcd writing the state files.
// Root only; every object is vxt-prefixed or inside the test's namespaces.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cidr, Ip, parseCidr, parseIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { openNetns } from '../../net/netns';
import { Rtnl } from '../../net/rtnl';
import { VtepProgrammer } from '../../overlay/apply';
import { LocalOverlayState, writeLocalState } from '../../overlay/local';
import { Peer, parseOverlayNetwork, vtepMacFor, vxlanDeviceName } from '../../overlay/plan';
import { ETCD, startEtcd } from '../helpers/etcd';
import { cleanupLink, exec, linkExists, newNetns, pollUntil, type Netns } from '../helpers/netns';
import { overlayCluster } from '../overlay/helpers/cluster';
import { newUnderlay, reachable } from '../overlay/helpers/hosts';
import {
  VXNET, type CniCall, type CniOutcome, attach, bare, cannotRun, cniEnv, describe, hostVethName, linkIdentity, newContainerId, newNet, resultAddrs, runInNetns, runPlugin,
} from './helpers/cni';

const reason = cannotRun();
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(120_000);
  main();
}

const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const ip = (s: string): Ip => parseIp(s) as Ip;

/** MTU of a link (in namespace `ns`, or the host's). */
async function mtuOf(name: string, ns?: string): Promise<number | undefined> {
  const r = await exec('ip', [...(ns ? ['-n', ns] : []), '-j', 'link', 'show', 'dev', name]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as Array<{ mtu: number }>)[0]?.mtu;
}

/**
 * The VXLAN device the overlay agent would have made on this host, with the block gateways it
 * puts on it, named as the test network's bridge: newNet's teardown deletes the link of that
 * name and the FORWARD rules commented with it.
 */
async function fakeVxlanDevice(t: Test, net: { bridge: string; n: number }, gateways: string[]): Promise<string> {
  const device = net.bridge;
  await mustExec('ip', ['link', 'add', device, 'type', 'vxlan', 'id', String(4300 + net.n), 'dstport', '4789', 'nolearning']);
  t.teardown(() => exec('ip', ['link', 'del', device]));
  for (const gw of gateways) await mustExec('ip', ['addr', 'add', gw, 'dev', device]);
  await mustExec('ip', ['link', 'set', device, 'up']);
  return device;
}

async function mustExec(file: string, args: string[]): Promise<void> {
  const r = await exec(file, args);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** Runs the built plugin inside host namespace `host` (`ip netns exec HOST dist/bin/vxnet`). */
const runIn = (host: Netns, stdin: unknown, call: CniCall, timeoutMs = 60_000): Promise<CniOutcome> =>
  runInNetns(host, VXNET, [], cniEnv(call), stdin, timeoutMs);

function main(): void {
  t.test('one host: addresses from the block, routed (no bridge), overlay MTU, whole subnets masqueraded, CHECK, GC, DEL', async (t) => {
    // The test's 10.239.<n>.0/24 plays the overlay network; this host's block is its .64/26.
    const net = await newNet(t, { ipMasq: true, ipam: ({ tmp }) => ({ type: 'vxnet-ipam', dataDir: join(tmp, 'store') }), extra: { mode: 'overlay' } });
    const stateDir = join(net.tmp, 'overlay');
    const block = `10.239.${net.n}.64/26`;
    const device = await fakeVxlanDevice(t, net, [`10.239.${net.n}.65/32`]);
    const state: LocalOverlayState = {
      network: net.name, hostId: 'vxt-host-1', vni: 4243, device, mtu: 1370,
      blocks: [cidr(block)], subnets: [cidr(net.v4)], updated: Date.now(),
    };
    writeLocalState(stateDir, state);
    const conf = { overlayStateDir: stateDir };

    const a = await attach(t, net, { conf });
    const vethA = hostVethName(a.containerId, 'eth0');
    t.same(resultAddrs(a.add.json), [`10.239.${net.n}.66/26`], 'the first address of the block\'s range (.2 of the block)');
    t.equal(a.add.json?.ips?.[0]?.gateway, `10.239.${net.n}.65`, 'gateway: the block\'s second address');
    t.same(a.add.json?.interfaces?.map((i: { name: string }) => i.name), [vethA, 'eth0'], 'interfaces: the host veth and the container\'s, no bridge');
    t.equal(a.add.json?.ips?.[0]?.interface, 1, 'ips[].interface points at the container\'s interface');
    t.equal(await mtuOf('eth0', a.ns.name), 1370, 'container MTU = the overlay MTU');
    t.equal(await mtuOf(vethA), 1370, 'host veth MTU = the overlay MTU');
    t.equal(a.add.json?.interfaces?.[1]?.mtu, 1370, 'the result reports the MTU');
    const hostSide = JSON.parse((await exec('ip', ['-j', '-d', 'link', 'show', 'dev', vethA])).stdout) as Array<{ master?: string; address: string }>;
    t.notOk(hostSide[0]?.master, 'the host veth is on no bridge');
    const hostRoute = JSON.parse((await exec('ip', ['-j', 'route', 'show', `10.239.${net.n}.66/32`])).stdout) as Array<{ dev: string }>;
    t.same(hostRoute.map((r) => r.dev), [vethA], 'the host routes the container\'s address to its veth');
    const hostNeigh = (await exec('ip', ['neigh', 'show', 'dev', vethA])).stdout;
    t.match(hostNeigh, new RegExp(`10\\.239\\.${net.n}\\.66 lladdr ${a.add.json?.interfaces?.[1]?.mac} PERMANENT`), 'and knows its MAC (no ARP)');
    const addrs = JSON.parse((await exec('ip', ['-n', a.ns.name, '-j', 'addr', 'show', 'dev', 'eth0'])).stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number; noprefixroute?: boolean }> }>;
    const v4 = addrs[0]?.addr_info.find((x) => x.local === `10.239.${net.n}.66`);
    t.equal(v4?.prefixlen, 26, 'the container holds its address with the block\'s prefix');
    t.equal(v4?.noprefixroute, true, 'without a prefix route');
    const routes = (await exec('ip', ['-n', a.ns.name, 'route', 'show'])).stdout;
    t.match(routes, new RegExp(`^default via 10\\.239\\.${net.n}\\.65 dev eth0 (proto boot )?onlink`, 'm'), 'default via the gateway, onlink');
    t.notMatch(routes, /^10\.239\./m, 'no on-link route into the block: neighbours are reached through the host', { diag: routes });
    const gwNeigh = (await exec('ip', ['-n', a.ns.name, 'neigh', 'show', `10.239.${net.n}.65`])).stdout;
    t.match(gwNeigh, `lladdr ${hostSide[0]?.address} PERMANENT`, 'the gateway resolves to the host veth (no ARP)');
    const set = await exec('nft', ['list', 'set', 'ip', net.natTable, 'masq']);
    t.match(set.stdout, `10.239.${net.n}.0/24`, 'the network\'s whole subnet is masqueraded');
    t.notMatch(set.stdout, '/26', 'the block is not an element of its own');
    const forward = (await exec('iptables', ['-w', '-S', 'FORWARD'])).stdout;
    t.match(forward, new RegExp(`-A FORWARD -s 10\\.239\\.${net.n}\\.0/24 .*vxnet:${device}.* -j ACCEPT`), 'FORWARD accepts the overlay\'s traffic by address');
    t.match((await exec('ip', ['-j', 'link', 'show', 'dev', device])).stdout, `"ifalias":"vxnet network=${net.name} setup=`, 'the setup is recorded on the VXLAN device');
    t.same((await net.allocations()).map((x) => x.address), [`10.239.${net.n}.66`], 'one allocation');

    const check = await runPlugin(VXNET, { ...net.conf('1.1.0', conf), prevResult: a.add.json }, { command: 'CHECK', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path });
    t.equal(check.code, 0, 'CHECK passes', { diag: describe(check) });

    const b = await attach(t, net, { conf: { ...conf, mtu: 1300 } });
    t.same(resultAddrs(b.add.json), [`10.239.${net.n}.67/26`], 'the next address of the block');
    t.equal(await mtuOf('eth0', b.ns.name), 1300, 'mtu in the config wins over the overlay MTU');
    t.ok(await reachable(a.ns, `10.239.${net.n}.67`, 5000), 'container a reaches container b through the host');
    t.ok(await reachable(b.ns, `10.239.${net.n}.66`, 5000), 'and b reaches a');

    await mustExec('ip', ['route', 'del', `10.239.${net.n}.66/32`, 'dev', vethA]);
    const drifted = await runPlugin(VXNET, { ...net.conf('1.1.0', conf), prevResult: a.add.json }, { command: 'CHECK', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path });
    t.equal(drifted.json?.code, 102, 'CHECK: code 102 once the host route is gone', { diag: describe(drifted) });
    t.match(drifted.json?.msg, `the host route to 10.239.${net.n}.66 via ${vethA} is missing`);

    // c plays an ADD killed before its host route: a veth routing nowhere, an allocation.
    const c = await attach(t, net, { conf });
    const vethC = hostVethName(c.containerId, 'eth0');
    await mustExec('ip', ['route', 'del', `10.239.${net.n}.68/32`, 'dev', vethC]);
    const gc = await runPlugin(VXNET, { ...net.conf('1.1.0', conf), 'cni.dev/valid-attachments': [{ containerID: a.containerId, ifname: 'eth0' }] }, { command: 'GC' });
    t.equal(gc.code, 0, 'GC', { diag: describe(gc) });
    t.notOk(await linkExists(hostVethName(b.containerId, 'eth0')), 'GC removed the veth of the attachment not listed');
    t.notOk(await linkExists(vethC), 'and the one of a released attachment that routed nowhere yet');
    t.ok(await linkExists(vethA), 'and kept the listed one');
    t.same((await net.allocations()).map((x) => x.address), [`10.239.${net.n}.66`], 'GC released b\'s and c\'s addresses');

    const del = await runPlugin(VXNET, net.conf('1.1.0', conf), { command: 'DEL', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path });
    t.equal(del.code, 0, 'DEL', { diag: describe(del) });
    t.notOk(await linkExists(vethA), 'host veth gone');
    t.same(await net.allocations(), [], 'DEL released the addresses');
  });

  t.test('repeated ADD of a routed attachment: the same result (MACs too), nothing recreated, CHECK passes; its veth put on a bridge: code 102, left in place', async (t) => {
    const net = await newNet(t, { ipam: ({ tmp }) => ({ type: 'vxnet-ipam', dataDir: join(tmp, 'store') }), extra: { mode: 'overlay' } });
    const stateDir = join(net.tmp, 'overlay');
    const device = await fakeVxlanDevice(t, net, [`10.239.${net.n}.65/32`]);
    writeLocalState(stateDir, {
      network: net.name, hostId: 'vxt-host-1', vni: 4243, device, mtu: 1450, blocks: [cidr(`10.239.${net.n}.64/26`)], subnets: [cidr(net.v4)], updated: Date.now(),
    });
    const conf = { overlayStateDir: stateDir };
    const a = await attach(t, net, { conf });
    const veth = hostVethName(a.containerId, 'eth0');
    const call: CniCall = { command: 'ADD', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path };
    const before = { host: await linkIdentity(veth), container: await linkIdentity('eth0', a.ns.name) };
    const again = await runPlugin(VXNET, net.conf('1.1.0', conf), call);
    t.equal(again.code, 0, describe(again));
    t.same(again.json, a.add.json, 'the same result as the first ADD, MACs included');
    t.same(await linkIdentity(veth), before.host, 'the host veth is the same link');
    t.same(await linkIdentity('eth0', a.ns.name), before.container, 'so is the container\'s eth0');
    const check = await runPlugin(VXNET, { ...net.conf('1.1.0', conf), prevResult: a.add.json }, { ...call, command: 'CHECK' });
    t.equal(check.code, 0, `CHECK with the first result: ${describe(check)}`);

    const bridge = `vxtb${net.name.slice(3, 9)}`;
    cleanupLink(t, bridge);
    await mustExec('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await mustExec('ip', ['link', 'set', veth, 'master', bridge]);
    const drifted = await runPlugin(VXNET, net.conf('1.1.0', conf), call);
    t.equal(drifted.json?.code, 102, 'code 102', { diag: describe(drifted) });
    t.match(drifted.json?.msg, new RegExp(`${veth}.*bridge`), 'the message names the veth and the bridge it is on');
    t.same(await linkIdentity(veth), before.host, 'the host veth is left in place');
    t.same(await linkIdentity('eth0', a.ns.name), before.container, 'and the container\'s eth0');
    t.same((await net.allocations()).map((x) => x.address), [`10.239.${net.n}.66`], 'the allocation is kept');
  });

  t.test('the host\'s block changes under live allocations: ADD refused (code 105) until they are gone', async (t) => {
    // An agent that lost its lease for longer than the grace period comes back with another block
    // while containers still hold addresses of the old one.
    const net = await newNet(t, { ipam: ({ tmp }) => ({ type: 'vxnet-ipam', dataDir: join(tmp, 'store') }), extra: { mode: 'overlay' } });
    const stateDir = join(net.tmp, 'overlay');
    const device = await fakeVxlanDevice(t, net, []);
    const state = (block: string): LocalOverlayState => ({
      network: net.name, hostId: 'vxt-host-1', vni: 4243, device, mtu: 1450,
      blocks: [cidr(block)], subnets: [cidr(net.v4)], updated: Date.now(),
    });
    const conf = { overlayStateDir: stateDir };
    writeLocalState(stateDir, state(`10.239.${net.n}.64/26`));
    const a = await attach(t, net, { conf });
    t.same(resultAddrs(a.add.json), [`10.239.${net.n}.66/26`], 'an address of the first block');

    writeLocalState(stateDir, state(`10.239.${net.n}.128/26`));
    const ns = await newNetns(t);
    const id = newContainerId();
    const refused = await runPlugin(VXNET, net.conf('1.1.0', conf), { command: 'ADD', containerId: id, ifname: 'eth0', netns: ns.path });
    t.equal(refused.json?.code, 105, 'code 105', { diag: describe(refused) });
    t.match(refused.json?.msg, `10.239.${net.n}.64/26`, 'the message names the block in use');
    t.match(refused.json?.msg, `10.239.${net.n}.128/26`, 'and the new one');
    t.match(refused.json?.msg, /1 live allocation/, 'and how many addresses hold it');
    t.notOk(await linkExists(hostVethName(id, 'eth0')), 'no veth left behind');
    t.same((await net.allocations()).map((x) => x.containerId), [a.containerId], 'nothing allocated by the refused ADD');

    const del = await runPlugin(VXNET, net.conf('1.1.0', conf), { command: 'DEL', containerId: a.containerId, ifname: 'eth0', netns: a.ns.path });
    t.equal(del.code, 0, 'DEL of the old block\'s container works', { diag: describe(del) });
    const again = await runPlugin(VXNET, net.conf('1.1.0', conf), { command: 'ADD', containerId: id, ifname: 'eth0', netns: ns.path });
    t.equal(again.code, 0, 'once no address of the old block is held, ADD works', { diag: describe(again) });
    t.same(resultAddrs(again.json), [`10.239.${net.n}.130/26`], 'from the new block');
    const del2 = await runPlugin(VXNET, net.conf('1.1.0', conf), { command: 'DEL', containerId: id, ifname: 'eth0', netns: ns.path });
    t.equal(del2.code, 0, describe(del2));
  });

  t.test('the agent has not made the VXLAN device (yet): ADD fails with code 11, nothing left', async (t) => {
    const net = await newNet(t, { ipam: ({ tmp }) => ({ type: 'vxnet-ipam', dataDir: join(tmp, 'store') }), extra: { mode: 'overlay' } });
    const stateDir = join(net.tmp, 'overlay');
    // Named as the test network's bridge, so the teardown would remove it had anything made it.
    writeLocalState(stateDir, {
      network: net.name, hostId: 'vxt-host-1', vni: 4243, device: net.bridge, mtu: 1450,
      blocks: [cidr(`10.239.${net.n}.64/26`)], subnets: [cidr(net.v4)], updated: Date.now(),
    });
    const ns = await newNetns(t);
    const containerId = newContainerId();
    const add = await runPlugin(VXNET, net.conf('1.1.0', { overlayStateDir: stateDir }), { command: 'ADD', containerId, ifname: 'eth0', netns: ns.path });
    t.equal(add.json?.code, 11, 'code 11: try again', { diag: describe(add) });
    t.equal(add.json?.msg, `network ${net.name}: the overlay's VXLAN device ${net.bridge} is missing on this host; is vxnetd's overlay agent running?`);
    t.same(await net.allocations(), [], 'the address was released again');
    t.notOk(await linkExists(hostVethName(containerId, 'eth0')), 'no host veth');
    t.notOk(await linkExists(net.bridge), 'no device or bridge made');
  });

  t.test('configs overlay mode refuses', async (t) => {
    const net = await newNet(t);
    const stateDir = join(net.tmp, 'overlay');
    const ov = { mode: 'overlay', overlayStateDir: stateDir };
    writeLocalState(stateDir, {
      network: net.name, hostId: 'vxt-host-1', vni: 4243, device: vxlanDeviceName(4243), mtu: 1450, blocks: [cidr(`10.239.${net.n}.0/26`)], updated: Date.now(),
    });
    const ns = await newNetns(t);
    const call = (): CniCall => ({ command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: ns.path });
    // newNet's default ipam section has ranges: refused, since the blocks are the only ranges.
    const ranges = await runPlugin(VXNET, net.conf('1.1.0', ov), call());
    t.equal(ranges.json?.code, 7, 'ipam.ranges: code 7', { diag: describe(ranges) });
    t.match(ranges.json?.msg, /^ipam\.ranges: not allowed in overlay mode/);
    const delegated = await runPlugin(VXNET, { ...net.conf('1.1.0', ov), ipam: { type: 'host-local' } }, call());
    t.equal(delegated.json?.code, 7, 'another IPAM plugin: code 7', { diag: describe(delegated) });
    t.match(delegated.json?.msg, /^ipam\.type: "host-local" cannot be used in overlay mode/);
    // A state file without the network's subnets (an older agent) and ipMasq: refused, not NATing overlay traffic.
    const masq = await runPlugin(VXNET, { ...net.conf('1.1.0', { ...ov, ipMasq: true }), ipam: { dataDir: net.dataDir } }, call());
    t.equal(masq.json?.code, 7, 'ipMasq without subnets in the state: code 7', { diag: describe(masq) });
    t.match(masq.json?.msg, /^ipMasq: the overlay state at .* does not list the network's subnets/);
    const badMode = await runPlugin(VXNET, net.conf('1.1.0', { mode: 'vxlan' }), call());
    t.equal(badMode.json?.code, 2, 'an unknown mode: code 2', { diag: describe(badMode) });
    const noGateway = await runPlugin(VXNET, { ...net.conf('1.1.0', { ...ov, isGateway: false }), ipam: { dataDir: net.dataDir } }, call());
    t.equal(noGateway.json?.code, 7, 'isGateway false: code 7 (overlay containers are routed)', { diag: describe(noGateway) });
    t.match(noGateway.json?.msg, /^isGateway: false is not possible in overlay mode/);
    t.same(await net.allocations(), [], 'nothing allocated');
    t.notOk(await linkExists(net.bridge), 'no bridge created');
  });

  t.test('no overlay state: a clear error and nothing left behind; DEL and GC still work', async (t) => {
    const net = await newNet(t, { ipam: ({ tmp }) => ({ type: 'vxnet-ipam', dataDir: join(tmp, 'store') }), extra: { mode: 'overlay' } });
    const empty = join(net.tmp, 'overlay');
    fs.mkdirSync(empty);
    const conf = net.conf('1.1.0', { overlayStateDir: empty });
    const ns = await newNetns(t);
    const containerId = newContainerId();
    const add = await runPlugin(VXNET, conf, { command: 'ADD', containerId, ifname: 'eth0', netns: ns.path });
    t.equal(add.json?.code, 11, 'code 11 (try again: the agent may not have written it yet)', { diag: describe(add) });
    t.equal(add.json?.msg, `network ${net.name}: no overlay state at ${empty}/${net.name}.json; is vxnetd running with --store etcd://... and this network defined?`);
    t.same(await net.allocations(), [], 'no allocation');
    t.notOk(await linkExists(hostVethName(containerId, 'eth0')), 'no host veth');
    t.notOk(await linkExists(net.bridge), 'no bridge');
    const links = await exec('ip', ['-n', ns.name, '-o', 'link', 'show']);
    t.notMatch(links.stdout, 'eth0', 'nothing in the container');
    const del = await runPlugin(VXNET, conf, { command: 'DEL', containerId, ifname: 'eth0', netns: ns.path });
    t.equal(del.code, 0, 'DEL succeeds without the state', { diag: describe(del) });
    const gc = await runPlugin(VXNET, { ...conf, 'cni.dev/valid-attachments': [] }, { command: 'GC' });
    t.equal(gc.code, 0, 'GC succeeds without the state', { diag: describe(gc) });
    const status = await runPlugin(VXNET, conf, { command: 'STATUS' });
    t.equal(status.json?.code, 50, 'STATUS: not available', { diag: describe(status) });
    t.match(status.json?.msg, 'no overlay state at');
  });

  t.test('two hosts: containers attached by the plugin inside each host reach each other across the overlay', async (t) => {
    await twoHosts(t);
  });

  t.test('with the real overlay agent (etcd): the plugin reads the state file it writes', { skip: existsSync(ETCD) ? false : `needs ${ETCD}` }, async (t) => {
    await withAgents(t);
  });
}

/** Two OverlayAgents on a real etcd write the state; the plugin attaches a container on each host from it. */
async function withAgents(t: Test): Promise<void> {
  const NET = parseOverlayNetwork({ name: 'vxtagent', vni: 4245, subnets: ['10.237.0.0/16', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64 });
  const etcd = await startEtcd(t);
  const underlay = await newUnderlay(t, 1500);
  const cl = overlayCluster(t, underlay, { endpoints: etcd.clientUrls, network: NET, ttlSeconds: 5 });
  const nodes = [await cl.addNode(1), await cl.addNode(2)];
  for (const [a, b] of [[nodes[0], nodes[1]], [nodes[1], nodes[0]]]) {
    await pollUntil(() => cl.hasRoutesTo(a, b), { timeoutMs: 5000, what: `${a.id} routes to ${b.id}` });
  }
  const containers = [];
  for (const n of nodes) {
    const conf = {
      // ipMasq on: the agent's state lists the network's subnets, so cross-host traffic is not NATed.
      cniVersion: '1.1.0', name: NET.name, type: 'vxnet', mode: 'overlay', natTable: 'vxtnat', ipMasq: true,
      overlayStateDir: cl.localDir(n.id), ipam: { dataDir: join(cl.localDir(n.id), 'store') },
    };
    const c = await newNetns(t);
    const containerId = newContainerId();
    const add = await runIn(n.host.ns, conf, { command: 'ADD', containerId, ifname: 'eth0', netns: c.path });
    if (add.code !== 0) throw new Error(`ADD on ${n.id} failed: ${describe(add)}`);
    const addrs = resultAddrs(add.json);
    t.same(addrs.map((a) => a.split('/')[1]), ['24', '64'], `${n.id}: one address per block`);
    t.ok(addrs[0].startsWith(n.v4.replace(/0\/24$/, '')), `${n.id}: ${addrs[0]} is in its block ${n.v4}`);
    t.equal(await mtuOf('eth0', c.name), 1450, `${n.id}: container MTU = the agent's overlay MTU (1500 - 50)`);
    containers.push({ n, c, containerId, conf, v4: bare(addrs[0]), v6: bare(addrs[1]) });
  }
  const [a, b] = containers;
  t.ok(await reachable(a.c, b.v4, 10_000), `${a.n.id} container -> ${b.n.id} container ${b.v4}`);
  t.ok(await reachable(b.c, a.v4, 10_000), `${b.n.id} container -> ${a.n.id} container ${a.v4}`);
  t.ok(await reachable(a.c, b.v6, 10_000), `${a.n.id} container -> ${b.n.id} container ${b.v6}`);
  t.ok(await reachable(b.c, a.v6, 10_000), `${b.n.id} container -> ${a.n.id} container ${a.v6}`);
  for (const x of containers) {
    const del = await runIn(x.n.host.ns, x.conf, { command: 'DEL', containerId: x.containerId, ifname: 'eth0', netns: x.c.path });
    t.equal(del.code, 0, `DEL on ${x.n.id}`, { diag: describe(del) });
  }
}

async function twoHosts(t: Test): Promise<void> {
  const VNI = 4244;
  const DEV = vxlanDeviceName(VNI);
  const log = createLogger('cni-overlay-test', 'error');
  const underlay = await newUnderlay(t, 1400);
  const subnets = ['10.237.0.0/16', 'fd37::/48'];
  const network = 'vxtov';
  const hosts = [];
  for (const i of [1, 2]) {
    const host = await underlay.addHost(i);
    const id = `vxt-host-${i}`;
    const peer: Peer = { id, underlay: ip(host.underlay), mac: vtepMacFor(id, VNI), blocks: [cidr(`10.237.${i}.0/24`), cidr(`fd37:0:0:${i}::/64`)] };
    const handle = openNetns(host.ns.path);
    const rtnl = Rtnl.open(handle);
    handle.close();
    t.teardown(() => rtnl.close());
    const prog = new VtepProgrammer(rtnl, { hostId: id, vni: VNI, device: DEV, underlay: peer.underlay, mac: peer.mac, blocks: peer.blocks }, log);
    const tmp = fs.mkdtempSync(join(tmpdir(), 'vxt-cni-overlay-'));
    t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
    hosts.push({ i, host, peer, prog, tmp });
  }
  const peers = hosts.map((h) => h.peer);
  const attached = [];
  for (const h of hosts) {
    const r = await h.prog.sync(peers);
    t.equal(r.mtu, 1350, `${h.peer.id}: overlay MTU 1350 over the 1400 underlay`);
    // What the agent writes (overlay/agent.ts writeLocal), plus the network's subnets.
    writeLocalState(join(h.tmp, 'overlay'), {
      network, hostId: h.peer.id, vni: VNI, device: DEV, mtu: r.mtu, blocks: h.peer.blocks, subnets: subnets.map(cidr), updated: Date.now(),
    });
    const conf = {
      cniVersion: '1.1.0', name: network, type: 'vxnet', mode: 'overlay', natTable: 'vxtnat', ipMasq: true,
      overlayStateDir: join(h.tmp, 'overlay'), ipam: { dataDir: join(h.tmp, 'store') },
    };
    const c = await newNetns(t);
    const containerId = newContainerId();
    const add = await runIn(h.host.ns, conf, { command: 'ADD', containerId, ifname: 'eth0', netns: c.path });
    if (add.code !== 0) throw new Error(`ADD on host ${h.i} failed: ${describe(add)}`);
    t.same(resultAddrs(add.json), [`10.237.${h.i}.2/24`, `fd37:0:0:${h.i}::2/64`], `host ${h.i}: addresses from its blocks`);
    t.equal(await mtuOf('eth0', c.name), 1350, `host ${h.i}: container MTU = overlay MTU`);
    const bridges = await exec('ip', ['-n', h.host.ns.name, '-o', 'link', 'show', 'type', 'bridge']);
    t.equal(bridges.stdout.trim(), '', `host ${h.i}: no bridge: the container is routed`);
    const via = await exec('ip', ['-n', h.host.ns.name, '-6', 'route', 'show', `fd37:0:0:${h.i}::2/128`]);
    t.match(via.stdout, `dev ${hostVethName(containerId, 'eth0')}`, `host ${h.i}: the IPv6 host route goes to the container's veth`);
    attached.push({ h, c, containerId, conf, v4: bare(resultAddrs(add.json)[0]), v6: bare(resultAddrs(add.json)[1]) });
  }
  // Count, on host 2, packets arriving from container 1's own address: masquerading them
  // would have replaced it with host 1's address.
  const [a1, a2] = attached;
  const counter = await exec('ip', ['netns', 'exec', a2.h.host.ns.name, 'nft', '-f', '-'], {
    input: `add table ip vxtcount\nadd chain ip vxtcount pre { type filter hook prerouting priority -300; }\nadd rule ip vxtcount pre ip saddr ${a1.v4} counter\n`,
  });
  t.equal(counter.code, 0, 'counter rule on host 2', { diag: counter.stdout + counter.stderr });
  t.ok(await reachable(a1.c, a2.v4, 10_000), `host 1 container -> host 2 container ${a2.v4}`);
  t.ok(await reachable(a2.c, a1.v4, 10_000), `host 2 container -> host 1 container ${a1.v4}`);
  t.ok(await reachable(a1.c, a2.v6, 10_000), `host 1 container -> host 2 container ${a2.v6}`);
  t.ok(await reachable(a2.c, a1.v6, 10_000), `host 2 container -> host 1 container ${a1.v6}`);
  const counted = await exec('ip', ['netns', 'exec', a2.h.host.ns.name, 'nft', 'list', 'table', 'ip', 'vxtcount']);
  const packets = Number(/packets (\d+)/.exec(counted.stdout)?.[1] ?? 0);
  t.ok(packets > 0, `host 2 saw container 1's own source address (${packets} packets): overlay traffic is not masqueraded`, { diag: counted.stdout });
  for (const a of attached) {
    const del = await runIn(a.h.host.ns, a.conf, { command: 'DEL', containerId: a.containerId, ifname: 'eth0', netns: a.c.path });
    t.equal(del.code, 0, `DEL on host ${a.h.i}`, { diag: describe(del) });
  }
}
