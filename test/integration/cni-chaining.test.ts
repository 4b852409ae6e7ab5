// vxnet among Debian's reference plugins (containernetworking-plugins 1.1.1 in /usr/lib/cni,
// CNI up to 1.0.0), run as libcni runs a conflist (helpers/conflist.ts): vxnet followed by
// portmap, tuning and bandwidth; the reference bridge and macvlan plugins using vxnet-ipam;
// vxnet delegating to host-local, including the release of host-local's address when the ADD
// fails after IPAM. Root only; everything it creates is vxt-prefixed.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { cleanupLink, exec, linkExists, newNetns, pollUntil } from '../helpers/netns';
import {
  REF_CNI, VXNET, bare, cannotRun, describe, globalAddrs, hostVethName, newContainerId, newNet, resultAddrs, runPlugin,
} from './helpers/cni';
import { ConflistRunner, type PluginConf, describeSteps } from './helpers/conflist';

const reason = cannotRun() ?? (['portmap', 'tuning', 'bandwidth', 'bridge', 'macvlan', 'host-local'].every((p) => fs.existsSync(join(REF_CNI, p)))
  ? undefined : `the reference plugins are not in ${REF_CNI} (apt-get install containernetworking-plugins)`);
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(120_000);
  main();
}

/** The reference plugins speak CNI up to 1.0.0. */
const VERSION = '1.0.0';

async function natRules(): Promise<string> {
  return (await exec('iptables', ['-w', '-t', 'nat', '-S'])).stdout;
}

async function sysctlIn(ns: string, key: string): Promise<string> {
  return (await exec('ip', ['netns', 'exec', ns, 'cat', `/proc/sys/${key.replace(/\./g, '/')}`])).stdout.trim();
}

function main(): void {
  t.test('vxnet + portmap + tuning + bandwidth: ADD in order, effects visible, DEL in reverse leaves nothing', async (t) => {
    const net = await newNet(t);
    const ns = await newNetns(t);
    const containerId = newContainerId();
    const hostPort = 20000 + (randomBytes(2).readUInt16BE() % 10000);
    const list = {
      cniVersion: VERSION,
      name: net.name,
      plugins: [
        { ...net.conf(VERSION), cniVersion: undefined, name: undefined } as unknown as PluginConf,
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
        { type: 'tuning', mtu: 1400, sysctl: { 'net.ipv4.conf.eth0.arp_notify': '1', 'net.ipv4.conf.all.arp_ignore': '2' } },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    };
    const rt = new ConflistRunner(list, {
      containerId, ifname: 'eth0', netns: ns.path,
      capabilityArgs: {
        portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }],
        bandwidth: { ingressRate: 8_000_000, ingressBurst: 1_000_000 },
      },
    });
    // Whatever happens, DEL the chain before the namespace and network go (portmap's rules).
    t.teardown(async () => { if (rt.cached) await rt.del().catch(() => undefined); });

    const hostArpIgnore = fs.readFileSync('/proc/sys/net/ipv4/conf/all/arp_ignore', 'utf8').trim();
    const add = await rt.add();
    t.ok(add.ok, 'the chained ADD succeeds', { steps: describeSteps(rt.steps) });
    if (!add.ok) return;
    const result = add.result;
    t.equal(result.cniVersion, VERSION, 'the final result is in the list\'s version');
    t.equal(result.interfaces?.[1]?.name, hostVethName(containerId, 'eth0'), 'the result still names vxnet\'s host veth');
    t.match(result.interfaces?.[2], { name: 'eth0', sandbox: ns.path }, 'and the container interface');
    const addr = resultAddrs(result)[0];
    const ip = bare(addr);
    t.same(await globalAddrs('eth0', ns.name), [addr], 'vxnet configured the address');

    const nat = await natRules();
    t.match(nat, new RegExp(`--dport ${hostPort} .*--to-destination ${ip.replace(/\./g, '\\.')}:80`), 'portmap: DNAT of the host port to the container');

    t.equal(await sysctlIn(ns.name, 'net.ipv4.conf.eth0.arp_notify'), '1', 'tuning: interface sysctl set in the netns');
    t.equal(await sysctlIn(ns.name, 'net.ipv4.conf.all.arp_ignore'), '2', 'tuning: namespace sysctl set in the netns');
    t.equal(fs.readFileSync('/proc/sys/net/ipv4/conf/all/arp_ignore', 'utf8').trim(), hostArpIgnore, 'tuning: the host\'s sysctl is untouched');
    const mtu = JSON.parse((await exec('ip', ['-n', ns.name, '-j', 'link', 'show', 'dev', 'eth0'])).stdout)[0]?.mtu;
    t.equal(mtu, 1400, 'tuning: eth0 MTU changed');

    const veth = hostVethName(containerId, 'eth0');
    const qdisc = (await exec('tc', ['qdisc', 'show', 'dev', veth])).stdout;
    t.match(qdisc, /tbf/, 'bandwidth: a tbf qdisc shapes the host veth');

    // portmap 1.1.1's CHECK looks for ip6tables chains it never created for an IPv4-only
    // container (containernetworking/plugins#819), so it is left out.
    const check = await rt.check(['portmap']);
    t.same(describeSteps(check), [], 'CHECK through the chain (vxnet, tuning, bandwidth) passes');

    const failed = await rt.del();
    t.same(describeSteps(failed), [], 'the chained DEL succeeds');
    t.same(await net.allocations(), [], 'vxnet released the address');
    t.notOk(await linkExists(veth), 'the host veth is gone (and its qdisc with it)');
    t.notOk((await natRules()).includes(`${ip}:80`), 'portmap\'s DNAT rule is gone');
    await pollUntil(async () => !(await linkExists('eth0', ns.name)), { timeoutMs: 5000, what: 'eth0 gone' })
      .then(() => t.pass('eth0 is gone from the netns'), (e: Error) => t.fail(e.message));
    const again = await rt.del();
    t.same(describeSteps(again), [], 'a repeated chained DEL (no cached result) succeeds');
  });

  t.test('reference bridge plugin with vxnet-ipam: the address comes from vxnet\'s store, DEL releases it', async (t) => {
    const net = await newNet(t);
    const ns = await newNetns(t);
    const containerId = newContainerId();
    const list = {
      cniVersion: VERSION,
      name: net.name,
      plugins: [{
        type: 'bridge', bridge: net.bridge, isGateway: true, ipMasq: false,
        ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: net.v4 }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: net.dataDir },
      }],
    };
    const rt = new ConflistRunner(list, { containerId, ifname: 'eth0', netns: ns.path });
    t.teardown(async () => { if (rt.cached) await rt.del().catch(() => undefined); });
    const add = await rt.add();
    t.ok(add.ok, 'ADD succeeds', { steps: describeSteps(rt.steps) });
    if (!add.ok) return;
    const addr = resultAddrs(add.result)[0];
    t.match(addr, new RegExp(`^10\\.239\\.${net.n}\\.\\d+/24$`), 'an address of the vxnet-ipam pool');
    t.equal(add.result.ips[0].gateway, net.ip4(1), 'with its gateway');
    const allocs = await net.allocations();
    t.same(allocs.map((a) => [a.containerId, a.ifname, a.address]), [[containerId, 'eth0', bare(addr)]], 'recorded in vxnet\'s store for this container');
    t.same(await globalAddrs('eth0', ns.name), [addr], 'the bridge plugin configured it in the netns');
    t.same(describeSteps(await rt.check()), [], 'CHECK (bridge, then vxnet-ipam) passes');
    t.same(describeSteps(await rt.del()), [], 'DEL succeeds');
    t.same(await net.allocations(), [], 'the address is released');
  });

  t.test('reference macvlan plugin with vxnet-ipam on a vxt veth as master', async (t) => {
    const net = await newNet(t);
    const hex = randomBytes(3).toString('hex');
    const master = `vxtm${hex}`;
    const peer = `vxtn${hex}`;
    cleanupLink(t, master);
    const mk = await exec('ip', ['link', 'add', master, 'type', 'veth', 'peer', 'name', peer]);
    t.equal(mk.code, 0, 'created the master veth pair', { stderr: mk.stderr });
    await exec('ip', ['link', 'set', master, 'up']);
    await exec('ip', ['link', 'set', peer, 'up']);
    const ns = await newNetns(t);
    const containerId = newContainerId();
    const list = {
      cniVersion: VERSION,
      name: net.name,
      plugins: [{
        type: 'macvlan', master, mode: 'bridge',
        ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: net.v4 }]], dataDir: net.dataDir },
      }],
    };
    const rt = new ConflistRunner(list, { containerId, ifname: 'eth0', netns: ns.path });
    t.teardown(async () => { if (rt.cached) await rt.del().catch(() => undefined); });
    const add = await rt.add();
    t.ok(add.ok, 'ADD succeeds', { steps: describeSteps(rt.steps) });
    if (!add.ok) return;
    const addr = resultAddrs(add.result)[0];
    t.same((await net.allocations()).map((a) => [a.containerId, a.address]), [[containerId, bare(addr)]], 'the address is allocated in vxnet\'s store');
    t.same(await globalAddrs('eth0', ns.name), [addr], 'and configured on the macvlan in the netns');
    const kind = JSON.parse((await exec('ip', ['-n', ns.name, '-d', '-j', 'link', 'show', 'dev', 'eth0'])).stdout)[0]?.linkinfo?.info_kind;
    t.equal(kind, 'macvlan', 'eth0 is a macvlan');
    t.same(describeSteps(await rt.del()), [], 'DEL succeeds');
    t.same(await net.allocations(), [], 'the address is released');
    t.notOk(await linkExists('eth0', ns.name), 'the macvlan is gone');
  });

  t.test('vxnet delegating IPAM to host-local; a failed ADD after IPAM releases host-local\'s address', async (t) => {
    let hlDir = '';
    const net = await newNet(t, {
      ipam: ({ tmp, v4 }) => {
        hlDir = join(tmp, 'host-local');
        return { type: 'host-local', ranges: [[{ subnet: v4 }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: hlDir };
      },
    });
    const reservations = (): string[] => {
      try {
        return fs.readdirSync(join(hlDir, net.name)).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
      } catch { return []; }
    };
    const ns = await newNetns(t);
    const containerId = newContainerId();
    const call = { containerId, ifname: 'eth0', netns: ns.path };
    t.teardown(async () => { await runPlugin(VXNET, net.conf(VERSION), { command: 'DEL', ...call }); });

    const add = await runPlugin(VXNET, net.conf(VERSION), { command: 'ADD', ...call });
    t.equal(add.code, 0, 'ADD with host-local succeeds', { diag: describe(add) });
    const addr = resultAddrs(add.json)[0];
    t.match(addr, new RegExp(`^10\\.239\\.${net.n}\\.\\d+/24$`), 'host-local\'s address');
    t.same(await globalAddrs('eth0', ns.name), [addr], 'configured on eth0');
    t.same(reservations(), [bare(addr)], 'host-local holds one reservation');
    t.match(fs.readFileSync(join(hlDir, net.name, bare(addr)), 'utf8'), containerId, 'for this container');
    t.same(await net.allocations(), [], 'vxnet\'s own store is not used');
    const gwOk = await exec('ip', ['netns', 'exec', ns.name, 'busybox', 'ping', '-c1', '-W2', net.ip4(1)]);
    t.equal(gwOk.code, 0, 'the container reaches the gateway', { out: gwOk.stdout + gwOk.stderr });

    const check = await runPlugin(VXNET, net.conf(VERSION, { prevResult: add.json }), { command: 'CHECK', ...call });
    t.equal(check.code, 0, 'CHECK (delegated to host-local as well) passes', { diag: describe(check) });

    // eth0 already exists in this netns: vxnet's ADD fails after host-local allocated.
    const ns2 = await newNetns(t);
    const pre = await exec('ip', ['-n', ns2.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'vxtpeer0']);
    t.equal(pre.code, 0, 'pre-created eth0 in a second netns', { stderr: pre.stderr });
    const cid2 = newContainerId();
    const failed = await runPlugin(VXNET, net.conf(VERSION), { command: 'ADD', containerId: cid2, ifname: 'eth0', netns: ns2.path });
    t.not(failed.code, 0, 'the ADD fails', { diag: describe(failed) });
    t.type(failed.json?.code, 'number', 'with a CNI error');
    t.same(reservations(), [bare(addr)], 'host-local\'s reservation for the failed container was released');
    t.notOk(await linkExists(hostVethName(cid2, 'eth0')), 'no host veth left for it');

    const del = await runPlugin(VXNET, net.conf(VERSION, { prevResult: add.json }), { command: 'DEL', ...call });
    t.equal(del.code, 0, 'DEL succeeds', { diag: describe(del) });
    t.same(reservations(), [], 'host-local holds nothing any more');
    t.notOk(await linkExists(hostVethName(containerId, 'eth0')), 'the host veth is gone');
  });
}
