// Dual stack for Docker (issue 16), end to end against a real dockerd (20.10) and a real podman:
// `docker network create --ipv6` on a vxnet network, a Docker and a podman container on it
// pinging each other over IPv6 both ways, --ip6, what `docker network rm` leaves (nothing, in
// either family), and the bad inputs (a v6 subnet conflicting with the CNI side's, --ip6
// outside the pool, an exhausted v6 pool) refused with vxnet's message and nothing leaked.
// The two-host overlay over IPv6 is in overlay-e2e.test.ts. Root only; every network, bridge,
// nft table and container is vxt-prefixed and removed by teardowns.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore } from '../../ipam/store';
import { ensureBusyboxImage, newCniConfigDir, podmanWithBuiltPlugins } from '../helpers/podman';
import { exec, pollUntil } from '../helpers/sh';
import {
  allocations, cannotRunDocker, docker, endpointOf, ensureDockerImage, freeSubnetOctet, mustDocker, registerNetCleanup, runContainer, startVxnetd,
} from '../helpers/docker';

const reason = cannotRunDocker();
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(600_000);
  main();
}

interface DualNet {
  readonly name: string;
  readonly hex: string;
  readonly n: number;
  readonly subnet: string;
  readonly subnet6: string;
  readonly bridge: string;
  readonly natTable: string;
  ip(host: number): string;
  ip6(host: string): string;
}

function dualNet(prefix6Len = 64): DualNet {
  const hex = randomBytes(4).toString('hex');
  const n = freeSubnetOctet();
  return {
    name: `vxt-${hex}`, hex, n, subnet: `10.232.${n}.0/24`, subnet6: `fd00:232:${n.toString(16)}::/${prefix6Len}`,
    bridge: `vxtb${hex}`, natTable: `vxtn${hex}`, ip: (h) => `10.232.${n}.${h}`, ip6: (h) => `fd00:232:${n.toString(16)}::${h}`,
  };
}

/** registerNetCleanup's, plus the IPv6 side: the ip6 masquerade table and the ip6tables FORWARD rules. */
function registerDualCleanup(t: Test, net: DualNet): void {
  t.teardown(async () => {
    await exec('nft', ['delete', 'table', 'ip6', net.natTable]);
    await exec('ip6tables', ['-w', '-D', 'FORWARD', '-i', net.bridge, '-m', 'comment', '--comment', `vxnet:${net.bridge}`, '-j', 'ACCEPT']);
    await exec('ip6tables', ['-w', '-D', 'FORWARD', '-o', net.bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-m', 'comment', '--comment', `vxnet:${net.bridge}`, '-j', 'ACCEPT']);
  });
  registerNetCleanup(t, net.name, net.bridge, net.natTable);
}

function createArgs(plugin: string, net: DualNet, extra: readonly string[] = []): string[] {
  return ['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--ipv6', '--subnet', net.subnet, '--subnet', net.subnet6,
    '-o', `bridge=${net.bridge}`, '-o', `natTable=${net.natTable}`, ...extra, net.name];
}

/** IPv6 ping from a Docker container, polled (a fresh address may still be in duplicate address detection). */
async function ping6From(container: string, ip: string): Promise<boolean> {
  try {
    await pollUntil(async () => (await docker(['exec', container, '/bin/busybox', 'ping', '-6', '-c', '1', '-W', '1', ip], { timeoutMs: 10_000 })).code === 0,
      { timeoutMs: 10_000, intervalMs: 200, what: `${container} -> ${ip}` });
    return true;
  } catch {
    return false;
  }
}

const dockerAllocs = async (dataDir: string, network: string): Promise<Array<Record<string, any>>> =>
  (await allocations(dataDir, network)).filter((a) => a.runtime === 'docker');

function main(): void {
  t.before(async () => { await ensureDockerImage(); });

  t.test('a Docker and a podman container on one dual-stack network ping each other over IPv6; --ip6; network rm leaves nothing in either family', async (t) => {
    const vx = await startVxnetd(t);
    const net = dualNet();
    const cniDir = newCniConfigDir(t);
    fs.writeFileSync(join(cniDir, `${net.name}.conflist`), JSON.stringify({
      cniVersion: '1.0.0', name: net.name,
      plugins: [{
        type: 'vxnet', bridge: net.bridge, natTable: net.natTable, ipMasq: true,
        ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: net.subnet }], [{ subnet: net.subnet6 }]], dataDir: vx.dataDir },
      }],
    }));
    const pm = podmanWithBuiltPlugins(cniDir, join(vx.dataDir, 'containers.conf'));
    const image = await ensureBusyboxImage();
    registerDualCleanup(t, net);
    await mustDocker(createArgs(vx.plugin, net));

    const info = JSON.parse(await mustDocker(['network', 'inspect', net.name]))[0];
    t.equal(info.EnableIPv6, true, 'EnableIPv6');
    t.same(info.IPAM.Config.map((c: { Subnet: string }) => c.Subnet), [net.subnet, net.subnet6], 'docker network inspect: both subnets');

    const d = await runContainer(t, { network: net.name });
    const ep = await endpointOf(d, net.name) as unknown as Record<string, any>;
    t.match(ep.IPAddress, new RegExp(`^10\\.232\\.${net.n}\\.`), 'IPv4 address');
    t.match(ep.GlobalIPv6Address, new RegExp(`^fd00:232:${net.n.toString(16)}::`), `IPv6 address ${ep.GlobalIPv6Address}`);
    t.equal(ep.GlobalIPv6PrefixLen, 64);
    t.equal(ep.IPv6Gateway, net.ip6('1'), 'IPv6 gateway');
    t.match((await docker(['exec', d, 'ip', '-6', 'route'])).stdout, `default via ${net.ip6('1')} dev eth0`, 'IPv6 default route via the gateway');
    const brAddrs = (await exec('ip', ['-j', 'addr', 'show', 'dev', net.bridge])).stdout;
    t.match(brAddrs, `"local":"${net.ip6('1')}"`, 'the bridge carries the IPv6 gateway');
    t.match(brAddrs, `"local":"${net.ip(1)}"`, 'and the IPv4 one');
    t.ok(await ping6From(d, net.ip6('1')), 'the IPv6 gateway answers');
    t.equal((await exec('nft', ['list', 'set', 'ip6', net.natTable, 'masq'])).stdout.includes(net.subnet6), true, 'IPv6 subnet masqueraded (ipMasq)');

    const s = await runContainer(t, { network: net.name, args: ['--ip6', net.ip6('77')] });
    t.equal(((await endpointOf(s, net.name)) as unknown as Record<string, any>).GlobalIPv6Address, net.ip6('77'), '--ip6 honoured');

    const pname = `vxt-p${net.hex}`;
    t.teardown(async () => { await pm(['rm', '-f', '--ignore', '-t', '0', pname]); });
    const run = await pm(['run', '-d', '--pull', 'never', '--name', pname, '--network', net.name, image, 'sleep', '3600']);
    t.equal(run.code, 0, `podman run on the CNI network ${net.name}: ${run.stderr.trim()}`);
    const pinfo = JSON.parse((await pm(['inspect', '--format', '{{json .NetworkSettings.Networks}}', pname])).stdout || '{}') as Record<string, { GlobalIPv6Address?: string }>;
    const p6 = pinfo[net.name]?.GlobalIPv6Address ?? '';
    t.match(p6, new RegExp(`^fd00:232:${net.n.toString(16)}::`), `podman container IPv6 address ${p6} from the same pool`);
    t.ok(await ping6From(d, p6), `Docker -> podman over IPv6 (${p6})`);
    let back = false;
    await pollUntil(async () => { back = (await pm(['exec', pname, 'ping', '-6', '-c', '1', '-W', '1', ep.GlobalIPv6Address])).code === 0; return back; },
      { timeoutMs: 10_000, intervalMs: 200, what: 'podman -> docker over IPv6' }).catch(() => undefined);
    t.ok(back, `podman -> Docker over IPv6 (${ep.GlobalIPv6Address})`);
    const links = JSON.parse((await exec('ip', ['-j', 'link', 'show', 'master', net.bridge])).stdout || '[]') as unknown[];
    t.equal(links.length, 3, 'all three containers on one bridge');

    const all = await allocations(vx.dataDir, net.name);
    const byRuntime = all.map((a) => `${a.runtime} ${a.family}`).sort();
    t.same(byRuntime, ['cni 4', 'cni 6', 'docker 4', 'docker 4', 'docker 6', 'docker 6'], 'vxnetctl ipam ls: both families for each container, one table for both runtimes');
    const ctl = await exec(join(__dirname, '..', '..', 'dist', 'bin', 'vxnetctl'), ['--data-dir', vx.dataDir, 'ipam', 'ls', '--network', net.name]);
    t.match(ctl.stdout, net.ip6('77'), 'the human table lists the IPv6 addresses');

    await pm(['rm', '-f', '-t', '0', pname]);
    await mustDocker(['rm', '-f', d, s]);
    await mustDocker(['network', 'rm', net.name]);
    t.equal((await exec('ip', ['link', 'show', 'dev', net.bridge])).code === 0, false, 'bridge removed');
    t.not((await exec('nft', ['list', 'table', 'ip', net.natTable])).code, 0, 'ip masquerade table removed');
    t.not((await exec('nft', ['list', 'table', 'ip6', net.natTable])).code, 0, 'ip6 masquerade table removed');
    for (const bin of ['iptables', 'ip6tables']) t.notMatch((await exec(bin, ['-S', 'FORWARD'])).stdout, `vxnet:${net.bridge}`, `${bin}: no FORWARD rule left`);
    t.equal((await exec('ip', ['-6', 'route', 'show', 'match', net.ip6('5')])).stdout.includes(net.subnet6.split('/')[0] as string), false, 'no IPv6 route into the subnet');
    t.equal((await exec('ip', ['-6', 'addr', 'show', 'to', net.subnet6])).stdout.trim(), '', 'no IPv6 address of the subnet on the host');
    t.equal((await exec('ip', ['-4', 'addr', 'show', 'to', net.subnet])).stdout.trim(), '', 'no IPv4 address of the subnet on the host');
    t.same(await allocations(vx.dataDir, net.name), [], 'no allocation left in either family');
    const st = openStore({ dataDir: vx.dataDir, mustExist: true });
    try {
      t.equal(await st.view((tx) => tx.getPool(net.name)), undefined, 'pool removed');
    } finally {
      await st.close();
    }
  });

  t.test('bad input: a v6 subnet conflicting with the CNI side\'s, --ip6 outside the pool, an exhausted v6 pool: vxnet\'s message, nothing leaked', async (t) => {
    const vx = await startVxnetd(t);
    // A CNI container of network NAME holds addresses of v4 and fd00:233:N::/64.
    const clash = dualNet();
    const cni6 = `fd00:233:${clash.n.toString(16)}::/64`;
    const st = openStore({ dataDir: vx.dataDir });
    try {
      const { ipamAdd } = await import('../../ipam/core');
      const { parseIpamConf } = await import('../../ipam/config');
      await ipamAdd(st, parseIpamConf(clash.name, { ranges: [[{ subnet: clash.subnet }], [{ subnet: cni6 }]] }), { network: clash.name, containerId: 'vxt-cni-1', ifname: 'eth0', runtime: 'cni' });
    } finally {
      await st.close();
    }
    registerDualCleanup(t, clash);
    const refused = await docker(createArgs(vx.plugin, clash, ['-o', `network=${clash.name}`]));
    t.not(refused.code, 0, 'docker network create refused');
    t.match(refused.stderr, new RegExp(`${cni6.replace(/[/.]/g, '\\$&')}.*${clash.subnet6.replace(/[/.]/g, '\\$&')}`), `names both IPv6 subnets: ${refused.stderr.trim()}`);
    t.not((await docker(['network', 'inspect', clash.name])).code, 0, 'no network made');
    t.equal((await exec('ip', ['link', 'show', 'dev', clash.bridge])).code === 0, false, 'no bridge made');
    t.same((await allocations(vx.dataDir, clash.name)).map((a) => a.runtime), ['cni', 'cni'], 'the CNI container\'s addresses untouched');

    // A /126: two container addresses after the gateway.
    const tiny = dualNet(126);
    registerDualCleanup(t, tiny);
    await mustDocker(createArgs(vx.plugin, tiny));
    const outside = await docker(['run', '--rm', '--network', tiny.name, '--ip6', 'fd99::5', 'local/busybox', '/bin/busybox', 'true']);
    t.not(outside.code, 0, '--ip6 outside the pool refused');
    t.match(outside.stderr, /fd99::5/, `saying which address: ${outside.stderr.trim()}`);
    await runContainer(t, { network: tiny.name });
    await runContainer(t, { network: tiny.name });
    // Docker took an IPv4 address before it refused fd99::5 itself, and does not give it back;
    // vxnetd releases a reservation no endpoint claimed (cnm/ipam-driver.ts ORPHAN_MS, 10 s).
    const settled = async (): Promise<string[]> => {
      let list: string[] = [];
      await pollUntil(async () => { list = (await dockerAllocs(vx.dataDir, tiny.name)).map((a) => a.address).sort(); return list.length === 4; },
        { timeoutMs: 30_000, intervalMs: 500, what: 'only the two containers\' addresses held' }).catch(() => undefined);
      return list;
    };
    const before = await settled();
    t.equal(before.length, 4, `two containers, two addresses each, the refused run's reservation released: ${before.join(' ')}`);
    const full = await docker(['run', '--rm', '--network', tiny.name, 'local/busybox', '/bin/busybox', 'true']);
    t.not(full.code, 0, 'a third container is refused');
    t.match(full.stderr, /no free address in network/, `the pool is full, said so: ${full.stderr.trim()}`);
    // The same for the IPv4 address taken before the IPv6 request failed.
    t.same(await settled(), before, 'nothing leaked by the refused run');
    t.match(vx.logs(), /released an IPv4 reservation Docker left behind/, 'logged');
  });
}
