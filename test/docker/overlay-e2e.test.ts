// A Docker network on an overlay network, against a real dockerd: the machine's own network
// namespace is host A (Docker's), a namespace of the test's is host B; an underlay bridge joins
// them (a vxt veth from the root namespace). Each host's VXLAN device (vxt-named) and peer
// entries are programmed by VtepProgrammer and its local overlay state written as the agent
// writes it, so no etcd is needed. vxnetd reads that state (--overlay-dir):
// `docker network create --subnet <the overlay's IPv4 subnet>` is the overlay network, and
// containers get addresses from host A's block and reach a CNI container on host B both ways,
// through Docker's FORWARD DROP policy. The overlay is dual stack, and so is the Docker network
// (`--ipv6 --subnet <the overlay's IPv6 subnet>`, issue 16): the same over IPv6. Both are attached routed (no bridge: a host route per
// container veth, datapath/routed.ts). A CNI container on host A shares the pool.
// Root and dockerd only; every object is vxt-prefixed or inside the test's namespaces.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cidr, Ip, parseCidr, parseIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { openNetns } from '../../net/netns';
import { removeForwardAccept } from '../../net/nat';
import { Rtnl } from '../../net/rtnl';
import { VtepProgrammer } from '../../overlay/apply';
import { writeLocalState } from '../../overlay/local';
import { Peer, vtepMacFor } from '../../overlay/plan';
import { newNetns } from '../helpers/netns';
import { exec, mustExec, pollUntil } from '../helpers/sh';
import { VXNET, bare, cniEnv, describe, newContainerId, resultAddrs, runInNetns, runPlugin } from '../integration/helpers/cni';
import { newUnderlay, reachable } from '../overlay/helpers/hosts';
import {
  allocations, cannotRunDocker, containerIp, docker, endpointOf, ensureDockerImage, mustDocker, pingFrom, registerNetCleanup, runContainer, startVxnetd,
} from '../helpers/docker';

const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const ip = (s: string): Ip => parseIp(s) as Ip;

const reason = cannotRunDocker();
if (reason) t.plan(0, reason);
else {
  // The whole file: a dockerd may have to start first, and teardown removes Docker objects (tap's default is 60 s).
  t.setTimeout(300_000);
  void t.test('a Docker network on an overlay network: Docker host A, CNI host B', main);
}

async function main(t: Test): Promise<void> {
  t.setTimeout(300_000);
  const root = t; // the Docker container outlives the subtest that starts it
  await ensureDockerImage();
  const hex = randomBytes(3).toString('hex');
  const network = `vxt-ov${hex}`;
  const VNI = 4900 + Math.floor(Math.random() * 90);
  const DEV = `vxtov${hex}`;
  const subnets = ['10.226.0.0/16', 'fd26::/48'];
  const log = createLogger('docker-overlay-test', 'error');
  const tmp = fs.mkdtempSync(join(tmpdir(), 'vxt-docker-overlay-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // Underlay: host B a namespace (10.238.0.12), host A the root namespace (10.238.0.100 on a vxt veth).
  const underlay = await newUnderlay(t, 1500);
  const hostB = await underlay.addHost(2);
  const rootSide = `vxtr${hex}`;
  t.teardown(async () => { await exec('ip', ['link', 'del', rootSide]); });
  await mustExec('ip', ['link', 'add', rootSide, 'type', 'veth', 'peer', 'name', 'vxtua', 'netns', underlay.ns.name]);
  await mustExec('ip', ['-n', underlay.ns.name, 'link', 'set', 'vxtua', 'master', 'vxtul', 'up']);
  await mustExec('ip', ['addr', 'add', '10.238.0.100/24', 'dev', rootSide]);
  await mustExec('ip', ['link', 'set', rootSide, 'up']);

  const A: Peer = { id: `vxt-a-${hex}`, underlay: ip('10.238.0.100'), mac: vtepMacFor(`vxt-a-${hex}`, VNI), blocks: [cidr('10.226.1.0/24'), cidr('fd26:0:0:1::/64')] };
  const B: Peer = { id: `vxt-b-${hex}`, underlay: ip(hostB.underlay), mac: vtepMacFor(`vxt-b-${hex}`, VNI), blocks: [cidr('10.226.2.0/24'), cidr('fd26:0:0:2::/64')] };
  const rtnlA = Rtnl.open();
  t.teardown(async () => { await exec('ip', ['link', 'del', DEV]); rtnlA.close(); });
  const handleB = openNetns(hostB.ns.path);
  const rtnlB = Rtnl.open(handleB);
  handleB.close();
  t.teardown(() => rtnlB.close());
  const progA = new VtepProgrammer(rtnlA, { hostId: A.id, vni: VNI, device: DEV, underlay: A.underlay, mac: A.mac, blocks: A.blocks }, log);
  const progB = new VtepProgrammer(rtnlB, { hostId: B.id, vni: VNI, device: DEV, underlay: B.underlay, mac: B.mac, blocks: B.blocks }, log);
  const mtu = (await progA.sync([A, B])).mtu;
  await progB.sync([A, B]);
  const dirA = join(tmp, 'a');
  const dirB = join(tmp, 'b');
  for (const [dir, p] of [[dirA, A], [dirB, B]] as const) {
    writeLocalState(join(dir, 'overlay'), { network, hostId: p.id, vni: VNI, device: DEV, mtu, blocks: p.blocks, subnets: subnets.map(cidr), updated: Date.now() });
  }

  // Host B: a CNI container, the plugin run inside B's namespace.
  const confOf = (dir: string, bridge: string): Record<string, unknown> => ({
    cniVersion: '1.1.0', name: network, type: 'vxnet', mode: 'overlay', bridge, natTable: `vxtn${hex}`, ipMasq: true,
    overlayStateDir: join(dir, 'overlay'), ipam: { dataDir: join(dir, 'store') },
  });
  const cB = await newNetns(t);
  const addB = await runInNetns(hostB.ns, VXNET, [], cniEnv({ command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: cB.path }), confOf(dirB, 'vxtbr0'));
  if (addB.code !== 0) throw new Error(`ADD on host B: ${describe(addB)}`);
  const [b4, b6] = resultAddrs(addB.json).map(bare);

  // Host A: vxnetd reads A's overlay state; its store is the one A's CNI config uses.
  fs.mkdirSync(join(dirA, 'store'), { recursive: true });
  const vx = await startVxnetd(t, { dataDir: join(dirA, 'store'), extraArgs: ['--overlay-dir', join(dirA, 'overlay')] });
  const bridge = `vxtb${hex}`;
  const natTable = `vxtn${hex}`;
  registerNetCleanup(t, network, bridge, natTable);
  // The routed setup's FORWARD rules carry the device's name.
  t.teardown(() => removeForwardAccept(DEV));
  // The overlay is dual stack: the IPv6 side of the masquerade table too (registerNetCleanup does IPv4).
  t.teardown(async () => { await exec('nft', ['delete', 'table', 'ip6', natTable]); });

  await t.test('docker network create with the overlay subnets: this host\'s blocks, their gateways', async (t) => {
    const wrong6 = await docker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--ipv6', '--subnet', '10.226.0.0/16', '--subnet', 'fd99::/48', `vxt-bad6${hex}`]);
    t.not(wrong6.code, 0, 'another IPv6 subnet is refused');
    t.match(wrong6.stderr, /IPv6 subnet fd99::\/48 is not overlay network .*its IPv6 subnet is fd26::\/48/, `saying which: ${wrong6.stderr.trim()}`);
    await mustDocker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--ipv6', '--subnet', '10.226.0.0/16', '--subnet', 'fd26::/48',
      '-o', `natTable=${natTable}`, network]);
    const info = JSON.parse(await mustDocker(['network', 'inspect', network]))[0];
    t.same(info.IPAM.Config.map((c: { Subnet: string }) => c.Subnet), ['10.226.0.0/16', 'fd26::/48'], 'the overlay subnets (the gateways: this host\'s blocks\', see the container)');
    const bad = await docker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--subnet', '10.226.0.0/16', '--gateway', '10.226.0.1', `vxt-bad${hex}`]);
    t.not(bad.code, 0, 'another gateway is refused');
    t.match(bad.stderr, /this host's gateway is 10\.226\.1\.1/);
  });

  let c1 = '';
  await t.test('a Docker container: an address from the block, the overlay MTU, reaches host B both ways', async (t) => {
    c1 = await runContainer(root, { network });
    const ep = await endpointOf(c1, network);
    t.match(ep?.IPAddress, /^10\.226\.1\.\d+$/, `address ${ep?.IPAddress} in host A's block`);
    t.equal(ep?.IPPrefixLen, 24, 'the block\'s prefix: other blocks go through the gateway');
    t.equal(ep?.Gateway, '10.226.1.1');
    t.match((await docker(['exec', c1, 'ip', 'link', 'show', 'eth0'])).stdout, `mtu ${mtu}`, `container MTU ${mtu}`);
    t.ok(await pingFrom(c1, b4), `Docker container -> CNI container on host B (${b4})`);
    const a4 = await containerIp(c1, network);
    t.ok(await reachable(cB, a4), `CNI container on host B -> Docker container (${a4}), a new connection through FORWARD DROP`);
    const forward = (await exec('iptables', ['-S', 'FORWARD'])).stdout;
    t.match(forward, new RegExp(`-A FORWARD -s 10\\.226\\.0\\.0/16 .*vxnet:${DEV}.* -j ACCEPT`), 'the overlay\'s traffic accepted by address');
    const route = JSON.parse((await exec('ip', ['-j', 'route', 'show', `${a4}/32`])).stdout) as Array<{ dev: string }>;
    t.equal(route.length, 1, `a host route to ${a4}`);
    t.equal(fs.readFileSync(`/proc/sys/net/ipv4/conf/${route[0]?.dev}/proxy_arp`, 'utf8').trim(), '1', `its veth ${route[0]?.dev} answers ARP for the rest of the subnet`);
    const bridges = JSON.parse((await exec('ip', ['-j', 'link', 'show', 'type', 'bridge'])).stdout) as Array<{ ifname: string; ifalias?: string }>;
    t.same(bridges.filter((b) => b.ifalias?.startsWith(`vxnet network=${network} `)).map((b) => b.ifname), [], 'no bridge for the network');
    t.comment(`FORWARD policy here: ${forward.split('\n')[0]} (Docker's is DROP)`);
    const mine = (await allocations(vx.dataDir, network)).filter((a) => a.runtime === 'docker');
    t.same(mine.map((a) => a.family).sort(), [4, 6], 'Docker holds one address per family');
  });

  await t.test('the Docker container over IPv6: an address of this host\'s IPv6 block, reaches host B both ways', async (t) => {
    const ep = await endpointOf(c1, network) as unknown as Record<string, any>;
    const a6 = ep.GlobalIPv6Address as string;
    t.match(a6, /^fd26:0:0:1::/, `address ${a6} in host A's IPv6 block`);
    t.equal(ep.GlobalIPv6PrefixLen, 128, 'the address alone: everything goes through the gateway');
    t.equal(ep.IPv6Gateway, 'fd26:0:0:1::1');
    const routes = (await docker(['exec', c1, 'ip', '-6', 'route'])).stdout;
    t.match(routes, 'default via fd26:0:0:1::1 dev eth0', `IPv6 default route via the block's gateway:\n${routes}`);
    let ok = false;
    await pollUntil(async () => { ok = (await docker(['exec', c1, '/bin/busybox', 'ping', '-6', '-c', '1', '-W', '1', b6 as string])).code === 0; return ok; },
      { timeoutMs: 10_000, intervalMs: 200, what: 'docker -> host B over IPv6' }).catch(() => undefined);
    t.ok(ok, `Docker container -> CNI container on host B over IPv6 (${b6})`);
    t.ok(await reachable(cB, a6, 10_000), `CNI container on host B -> Docker container over IPv6 (${a6})`);
    const route = JSON.parse((await exec('ip', ['-j', '-6', 'route', 'show', `${a6}/128`])).stdout) as Array<{ dev: string }>;
    t.equal(route.length, 1, `a host route to ${a6}`);
    const dev = route[0]?.dev as string;
    t.match((await exec('ip', ['-6', 'neigh', 'show', 'dev', dev])).stdout, new RegExp(`${a6} lladdr ${ep.MacAddress} PERMANENT`, 'i'), 'a permanent neighbour entry for the container, as the CNI side');
    t.match((await exec('ip', ['-6', 'neigh', 'show', 'proxy', 'dev', dev])).stdout, 'fd26:0:0:1::1', 'the host veth answers NDP for the gateway');
    const masq6 = (await exec('nft', ['list', 'set', 'ip6', natTable, 'masq'])).stdout;
    t.match(masq6, 'fd26::/48', 'the IPv6 subnet masqueraded');
    t.match((await exec('ip6tables', ['-S', 'FORWARD'])).stdout, new RegExp(`-A FORWARD -s fd26::/48 .*vxnet:${DEV}.* -j ACCEPT`), 'IPv6 traffic accepted by address');
  });

  await t.test('a CNI container on host A: the same pool, distinct addresses, reached from the Docker container', async (t) => {
    const c = await newNetns(t);
    const call = { containerId: newContainerId(), ifname: 'eth0', netns: c.path };
    const r = { ...(await runPlugin(VXNET, confOf(dirA, bridge), { command: 'ADD', ...call })), containerId: call.containerId };
    t.equal(r.code, 0, describe(r));
    const [a4, a6] = resultAddrs(r.json).map(bare);
    t.match(a4, /^10\.226\.1\.\d+$/);
    t.match(a6, /^fd26:0:0:1::/);
    t.not(a4, await containerIp(c1, network), 'not the Docker container\'s address');
    t.ok(await pingFrom(c1, a4), 'Docker container -> CNI container on the same host');
    let ok6 = false;
    await pollUntil(async () => { ok6 = (await docker(['exec', c1, '/bin/busybox', 'ping', '-6', '-c', '1', '-W', '1', a6 as string])).code === 0; return ok6; },
      { timeoutMs: 10_000, intervalMs: 200, what: 'docker -> the CNI container on host A over IPv6' }).catch(() => undefined);
    t.ok(ok6, `Docker container -> CNI container on the same host over IPv6 (${a6}): through the gateway, no neighbour discovery between them`);
    t.ok(await reachable(cB, a4), 'host B -> the CNI container on host A');
    const all = await allocations(vx.dataDir, network);
    t.same([...new Set(all.map((a) => a.runtime))].sort(), ['cni', 'docker'], 'one allocation table for both runtimes');
    const del = await runPlugin(VXNET, confOf(dirA, bridge), { command: 'DEL', containerId: r.containerId, ifname: 'eth0', netns: c.path });
    t.equal(del.code, 0, describe(del));
  });

  await t.test('docker rm and network rm: every FORWARD rule of the network goes; the agent\'s device stays', async (t) => {
    const veth = JSON.parse((await exec('ip', ['-j', 'route', 'show', `${await containerIp(c1, network)}/32`])).stdout)[0]?.dev as string;
    const a6 = ((await endpointOf(c1, network)) as unknown as Record<string, any>).GlobalIPv6Address as string;
    await mustDocker(['rm', '-f', c1]);
    t.equal((await exec('ip', ['link', 'show', veth])).code, 1, `the endpoint's veth ${veth} is gone`);
    t.equal((await exec('ip', ['-6', 'route', 'show', `${a6}/128`])).stdout.trim(), '', 'no IPv6 host route left');
    await mustDocker(['network', 'rm', network]);
    for (const bin of ['iptables', 'ip6tables']) {
      t.notMatch((await exec(bin, ['-S', 'FORWARD'])).stdout, `vxnet:${DEV}`, `${bin}: no rule of the network left`);
    }
    for (const fam of ['ip', 'ip6']) t.not((await exec('nft', ['list', 'table', fam, natTable])).code, 0, `${fam} masquerade table removed`);
    t.same(await allocations(vx.dataDir, network), [], 'no allocation left in either family');
    const dev = JSON.parse((await exec('ip', ['-j', 'link', 'show', DEV])).stdout)[0] as { ifalias?: string } | undefined;
    t.ok(dev, 'the VXLAN device stays (the agent\'s)');
    t.notOk(dev?.ifalias, 'without the setup\'s record, so the next attachment sets it up again');
  });
}

