// vxnetd as Docker's network and IPAM driver, end to end against a real dockerd (20.10): the
// built dist/bin/vxnetd, the docker CLI, containers pinging each other. Root only. Every
// network, bridge, nft table and container is vxt-prefixed and removed by teardowns, also when
// an assertion fails; a dockerd is started only if none runs, and stopped again (helpers/docker).
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore } from '../../ipam/store';
import { ensureBusyboxImage, newCniConfigDir, podmanWithBuiltPlugins } from '../helpers/podman';
import { exec, pollUntil } from '../helpers/sh';
import {
  allocations, cannotRunDocker, containerIp, createDockerNet, createDockerNetNamed, docker, endpointOf, ensureDockerImage, freeSubnetOctet, mustDocker,
  pingFrom, pluginCall, registerNetCleanup, runContainer, startVxnetd,
} from '../helpers/docker';

const reason = cannotRunDocker();
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(900_000);
  main();
}

const linkExists = async (name: string): Promise<boolean> => (await exec('ip', ['link', 'show', 'dev', name])).code === 0;
const dockerAllocs = async (dataDir: string, network: string): Promise<Array<Record<string, any>>> =>
  (await allocations(dataDir, network)).filter((a) => a.runtime === 'docker');

function main(): void {
  t.before(async () => { await ensureDockerImage(); });

  t.test('network create, inspect and rm: pool in the store, bridge up with the gateway, everything gone after rm', async (t) => {
    const vx = await startVxnetd(t);
    const n = freeSubnetOctet();
    const net = await createDockerNet(t, vx, { n, args: ['--gateway', `10.232.${n}.1`], opts: ['mtu=1400'] });
    const info = JSON.parse(await mustDocker(['network', 'inspect', net.name]))[0];
    t.equal(info.Driver, vx.plugin, 'network driver');
    t.equal(info.IPAM.Driver, vx.plugin, 'IPAM driver');
    t.same(info.IPAM.Config, [{ Subnet: net.subnet, Gateway: net.ip(1) }], 'pool and gateway');
    t.match(info.Options, { bridge: net.bridge, mtu: '1400', natTable: net.natTable }, 'driver options');
    // The pool is registered under the network's name once vxnetd learns it (right after creation).
    await pollUntil(async () => {
      const s = openStore({ dataDir: vx.dataDir, mustExist: true });
      try { return (await s.view((tx) => tx.getPool(net.name))) !== undefined; } finally { await s.close(); }
    }, { what: `pool ${net.name} in the store`, timeoutMs: 15_000 });

    const c = await runContainer(t, { network: net.name });
    const ep = await endpointOf(c, net.name);
    t.equal(ep?.Gateway, net.ip(1), 'container gateway');
    t.match(ep?.IPAddress, new RegExp(`^10\\.232\\.${n}\\.\\d+$`), 'container address in the subnet');
    const addr = await exec('ip', ['-j', 'addr', 'show', 'dev', net.bridge]);
    t.match(addr.stdout, `"local":"${net.ip(1)}"`, 'the bridge carries the gateway');
    t.match((await exec('ip', ['-j', 'link', 'show', 'dev', net.bridge])).stdout, '"mtu":1400', 'bridge MTU from -o mtu');
    t.match((await docker(['exec', c, 'ip', 'link', 'show', 'eth0'])).stdout, 'mtu 1400', 'container MTU from -o mtu');
    t.match((await docker(['exec', c, 'ip', 'route'])).stdout, `default via ${net.ip(1)} dev eth0`, 'default route via the gateway');
    t.equal((await exec('nft', ['list', 'set', 'ip', net.natTable, 'masq'])).stdout.includes(net.subnet), true, 'subnet masqueraded (ipMasq default true)');

    await mustDocker(['rm', '-f', c]);
    await mustDocker(['network', 'rm', net.name]);
    t.notOk(await linkExists(net.bridge), 'bridge removed with the network');
    t.not((await exec('nft', ['list', 'table', 'ip', net.natTable])).code, 0, 'nft table removed with its last subnet');
    t.same(fs.readdirSync(join(vx.dataDir, 'docker', 'networks')), [], 'no network record left');
    const s = openStore({ dataDir: vx.dataDir, mustExist: true });
    try {
      t.equal(await s.view((tx) => tx.getPool(net.name)), undefined, 'pool removed');
    } finally {
      await s.close();
    }
  });

  t.test('two containers reach each other; allocations carry runtime docker, container name and endpoint id; released on rm', async (t) => {
    const vx = await startVxnetd(t);
    const net = await createDockerNet(t, vx);
    const a = await runContainer(t, { network: net.name });
    const b = await runContainer(t, { network: net.name });
    const ipA = await containerIp(a, net.name);
    const ipB = await containerIp(b, net.name);
    t.not(ipA, ipB, 'distinct addresses');
    t.ok(await pingFrom(a, ipB), `${a} pings ${b} (${ipB})`);
    t.ok(await pingFrom(b, ipA), `${b} pings ${a} (${ipA})`);
    t.ok(await pingFrom(a, net.ip(1)), 'the gateway answers');

    const epA = await endpointOf(a, net.name);
    const allocs = await pollUntil(async () => {
      const list = await dockerAllocs(vx.dataDir, net.name);
      return list.length === 2 && list.every((x) => x.name) ? list : undefined;
    }, { what: 'two named docker allocations', timeoutMs: 15_000 });
    const mine = allocs.find((x) => x.address === ipA);
    t.match(mine, { network: net.name, runtime: 'docker', name: a, containerId: epA?.EndpointID, ifname: 'docker' }, 'allocation of A');
    t.match(mine?.netns, /^\/var\/run\/docker\/netns\//, 'sandbox recorded as the netns');

    await mustDocker(['rm', '-f', a, b]);
    t.same(await dockerAllocs(vx.dataDir, net.name), [], 'every allocation released after the containers are removed');
  });

  t.test('static --ip; a taken address is refused with a clear message', async (t) => {
    const vx = await startVxnetd(t);
    const net = await createDockerNet(t, vx);
    const a = await runContainer(t, { network: net.name, ip: net.ip(77) });
    t.equal(await containerIp(a, net.name), net.ip(77), 'the requested address');
    t.match((await dockerAllocs(vx.dataDir, net.name)).map((x) => x.address), [net.ip(77)], 'recorded in the store');
    const clash = await docker(['run', '--rm', '--network', net.name, '--ip', net.ip(77), 'local/busybox', '/bin/busybox', 'true']);
    t.not(clash.code, 0, 'a second container cannot take it');
    t.match(clash.stderr, new RegExp(`${net.ip(77).replace(/\./g, '\\.')}.*(not available|held)`), `message says the address is taken: ${clash.stderr.trim()}`);
    const gw = await docker(['run', '--rm', '--network', net.name, '--ip', net.ip(1), 'local/busybox', '/bin/busybox', 'true']);
    t.not(gw.code, 0, 'the gateway cannot be taken');
    t.match(gw.stderr, /gateway/, `message names the gateway: ${gw.stderr.trim()}`);
    t.equal((await dockerAllocs(vx.dataDir, net.name)).length, 1, 'failed runs leave no allocation behind');
  });

  t.test('docker network connect and disconnect', async (t) => {
    const vx = await startVxnetd(t);
    const red = await createDockerNet(t, vx);
    const blue = await createDockerNet(t, vx);
    const a = await runContainer(t, { network: red.name });
    const b = await runContainer(t, { network: blue.name });
    const ipB = await containerIp(b, blue.name);
    t.notOk((await docker(['exec', a, 'ip', 'link', 'show', 'eth1'])).code === 0, 'one interface before connect');
    await mustDocker(['network', 'connect', blue.name, a]);
    const ipA2 = await containerIp(a, blue.name);
    t.match(ipA2, new RegExp(`^10\\.232\\.${blue.n}\\.`), 'second address from the second network');
    t.match((await docker(['exec', a, 'ip', '-4', 'addr', 'show', 'eth1'])).stdout, ipA2, 'on eth1');
    t.ok(await pingFrom(a, ipB), 'reaches the container on the connected network');
    t.ok(await pingFrom(b, ipA2), 'and back');
    t.equal((await dockerAllocs(vx.dataDir, blue.name)).length, 2, 'two allocations on the connected network');
    await mustDocker(['network', 'disconnect', blue.name, a]);
    t.notOk((await docker(['exec', a, 'ip', 'link', 'show', 'eth1'])).code === 0, 'eth1 gone after disconnect');
    t.same((await dockerAllocs(vx.dataDir, blue.name)).map((x) => x.address), [ipB], 'the disconnected address is released');
    t.ok(await pingFrom(a, red.ip(1)), 'still on its first network');
  });

  t.test('vxnetd restarted mid-test (stop/start, kill -9/start): containers stay reachable, allocations kept, new containers attach', async (t) => {
    const vx = await startVxnetd(t);
    const net = await createDockerNet(t, vx);
    const a = await runContainer(t, { network: net.name });
    const b = await runContainer(t, { network: net.name });
    const ipB = await containerIp(b, net.name);
    const before = (await dockerAllocs(vx.dataDir, net.name)).map((x) => `${x.address} ${x.containerId}`).sort();

    await vx.stop();
    t.ok(await pingFrom(a, ipB), 'reachable while vxnetd is stopped');
    await vx.start();
    t.ok(await pingFrom(a, ipB), 'reachable after a clean restart');
    const c = await runContainer(t, { network: net.name });
    t.ok(await pingFrom(c, ipB), 'a new container attaches after the restart');

    await vx.kill9();
    t.ok(fs.existsSync(vx.socket), 'kill -9 leaves the socket file');
    t.ok(await pingFrom(a, ipB), 'reachable while vxnetd is dead');
    // Docker retries a plugin it cannot reach (for up to 30 s): a run started now completes once vxnetd is back.
    const pending = docker(['run', '-d', '--name', 'vxt-late', '--network', net.name, 'local/busybox', '/bin/busybox', 'sleep', '3600']);
    t.teardown(async () => { await docker(['rm', '-f', 'vxt-late']); });
    await vx.start();
    const late = await pending;
    t.equal(late.code, 0, `a run started while vxnetd was down succeeds: ${late.stderr.trim()}`);
    t.ok(await pingFrom('vxt-late', ipB), 'and reaches the others');
    t.ok(await pingFrom(a, ipB), 'old containers reachable after kill -9 and restart');
    const after = (await dockerAllocs(vx.dataDir, net.name)).map((x) => `${x.address} ${x.containerId}`).sort();
    t.same(after.filter((x) => before.includes(x)), before, 'every allocation made before the restarts is kept');
    t.equal(after.length, before.length + 2, 'plus the two made after');
  });

  t.test('reconcile: addresses Docker forgot to release are collected, live ones kept', async (t) => {
    const vx = await startVxnetd(t, { extraArgs: ['--reconcile-grace', '0'] });
    const net = await createDockerNet(t, vx);
    const a = await runContainer(t, { network: net.name });
    const ipA = await containerIp(a, net.name);
    // What a Docker crash between RequestAddress and CreateEndpoint, or a teardown while vxnetd
    // was down, leaves: allocations no Docker endpoint owns.
    await vx.stop();
    const s = openStore({ dataDir: vx.dataDir, mustExist: true });
    try {
      await s.withLock(async (tx) => {
        await tx.reserve({ network: net.name, containerId: 'f'.repeat(64), ifname: 'docker', runtime: 'docker', name: 'vxt-gone' }, { family: 4, value: (10n << 24n) | (232n << 16n) | (BigInt(net.n) << 8n) | 200n }, 0);
        await tx.reserve({ network: net.name, containerId: 'docker-pending-0123456789abcdef', ifname: 'docker', runtime: 'docker' }, { family: 4, value: (10n << 24n) | (232n << 16n) | (BigInt(net.n) << 8n) | 201n }, 0);
        await tx.reserve({ network: net.name, containerId: 'vxt-cni-container', ifname: 'eth0', runtime: 'cni' }, { family: 4, value: (10n << 24n) | (232n << 16n) | (BigInt(net.n) << 8n) | 202n }, 0);
      });
    } finally {
      await s.close();
    }
    await vx.start();
    await pollUntil(async () => (await allocations(vx.dataDir, net.name)).length === 2, { what: 'the forgotten docker allocations released', timeoutMs: 20_000 });
    const left = (await allocations(vx.dataDir, net.name)).map((x) => `${x.address} ${x.runtime}`).sort();
    t.same(left, [`${ipA} docker`, `${net.ip(202)} cni`].sort(), 'the live container and the CNI allocation are kept');
    t.match(vx.logs(), /released the address of an endpoint Docker no longer has/, 'logged');
  });

  t.test('one network, two runtimes: a conflicting definition is refused with what conflicts', async (t) => {
    const vx = await startVxnetd(t);
    const n = freeSubnetOctet();
    const other = freeSubnetOctet();
    const name = `vxt-${Math.random().toString(16).slice(2, 10)}`;
    // A CNI container of network NAME already holds an address of 10.232.n.0/24.
    const s = openStore({ dataDir: vx.dataDir });
    try {
      const { ipamAdd } = await import('../../ipam/core');
      const { parseIpamConf } = await import('../../ipam/config');
      await ipamAdd(s, parseIpamConf(name, { subnet: `10.232.${n}.0/24` }), { network: name, containerId: 'vxt-cni-1', ifname: 'eth0', runtime: 'cni' });
    } finally {
      await s.close();
    }
    registerNetCleanup(t, name, `vxtb${name.slice(4)}`, `vxtn${name.slice(4)}`);
    const explicit = await docker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--subnet', `10.232.${other}.0/24`,
      '-o', `network=${name}`, '-o', `bridge=vxtb${name.slice(4)}`, '-o', `natTable=vxtn${name.slice(4)}`, name]);
    t.not(explicit.code, 0, 'refused at create when -o network names the vxnet network');
    t.match(explicit.stderr, new RegExp(`10\\.232\\.${n}\\.0/24.*10\\.232\\.${other}\\.0/24`), `says which subnets conflict: ${explicit.stderr.trim()}`);
    t.equal((await docker(['network', 'inspect', name])).code === 0, false, 'no network was made');

    await mustDocker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--subnet', `10.232.${other}.0/24`,
      '-o', `bridge=vxtb${name.slice(4)}`, '-o', `natTable=vxtn${name.slice(4)}`, name]);
    const run = await docker(['run', '--rm', '--network', name, 'local/busybox', '/bin/busybox', 'true']);
    t.not(run.code, 0, 'by name alone, the first attach is refused');
    t.match(run.stderr, /conflicts with vxnet network/, `with the conflict in the message: ${run.stderr.trim()}`);
    t.match(run.stderr, new RegExp(`10\\.232\\.${n}\\.0/24`), 'naming the existing subnet');
  });

  t.test('one network, two runtimes: a podman (CNI) container and a Docker container share bridge and pool and reach each other', async (t) => {
    const vx = await startVxnetd(t);
    const hex = randomBytes(4).toString('hex');
    const name = `vxt-${hex}`;
    const n = freeSubnetOctet();
    const subnet = `10.232.${n}.0/24`;
    const bridge = `vxtb${hex}`;
    const natTable = `vxtn${hex}`;
    const cniDir = newCniConfigDir(t);
    fs.writeFileSync(join(cniDir, `${name}.conflist`), JSON.stringify({
      cniVersion: '1.0.0', name,
      plugins: [{ type: 'vxnet', bridge, natTable, ipMasq: true, ipam: { type: 'vxnet-ipam', subnet, dataDir: vx.dataDir } }],
    }));
    const pm = podmanWithBuiltPlugins(cniDir, join(vx.dataDir, 'containers.conf'));
    const image = await ensureBusyboxImage();
    const net = await createDockerNetNamed(t, vx, { name, subnet, bridge, natTable });
    const d = await runContainer(t, { network: net });
    const pname = `vxt-p${hex}`;
    t.teardown(async () => { await pm(['rm', '-f', '--ignore', '-t', '0', pname]); });
    const run = await pm(['run', '-d', '--pull', 'never', '--name', pname, '--network', name, image, 'sleep', '3600']);
    t.equal(run.code, 0, `podman run on the CNI network ${name}: ${run.stderr.trim()}`);
    const pinfo = JSON.parse((await pm(['inspect', '--format', '{{json .NetworkSettings.Networks}}', pname])).stdout || '{}') as Record<string, { IPAddress?: string }>;
    const pip = pinfo[name]?.IPAddress ?? '';
    const dip = await containerIp(d, name);
    t.match(pip, new RegExp(`^10\\.232\\.${n}\\.`), `podman container address ${pip} from the pool`);
    t.not(pip, dip, 'distinct addresses from one pool');
    t.ok(await pingFrom(d, pip), `docker container pings the podman container (${pip})`);
    t.equal((await pm(['exec', pname, 'ping', '-c', '1', '-W', '2', dip])).code, 0, `podman container pings the docker container (${dip})`);
    const links = await exec('ip', ['-j', 'link', 'show', 'master', bridge]);
    t.equal((JSON.parse(links.stdout || '[]') as unknown[]).length, 2, 'both containers hang off one bridge');
    const runtimes = (await allocations(vx.dataDir, name)).map((a) => `${a.runtime} ${a.address}`).sort();
    t.same(runtimes, [`cni ${pip}`, `docker ${dip}`].sort(), 'one allocation table holds both');
  });

  t.test('bad API bodies get {"Err": ...}, never a crash or a half-made network', async (t) => {
    const vx = await startVxnetd(t);
    const methods = ['Plugin.Activate', 'NetworkDriver.CreateNetwork', 'NetworkDriver.DeleteNetwork', 'NetworkDriver.CreateEndpoint',
      'NetworkDriver.Join', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.EndpointOperInfo',
      'NetworkDriver.ProgramExternalConnectivity', 'NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.DiscoverNew',
      'NetworkDriver.DiscoverDelete', 'NetworkDriver.AllocateNetwork', 'NetworkDriver.FreeNetwork', 'IpamDriver.RequestPool',
      'IpamDriver.ReleasePool', 'IpamDriver.RequestAddress', 'IpamDriver.ReleaseAddress'];
    for (const m of methods) {
      for (const body of ['garbage{', '[1,2]', '"text"', '{"NetworkID": 7, "PoolID": {}}']) {
        const r = await pluginCall(vx.socket, m, body);
        if (m === 'Plugin.Activate') { t.equal(r.status, 200, `${m} ignores its body`); continue; }
        t.ok(r.status >= 400 && typeof r.json?.Err === 'string' && r.json.Err.length > 0, `${m} ${body}: ${r.status} ${r.text}`);
      }
    }
    const unknown = await pluginCall(vx.socket, 'NetworkDriver.Nope', '{}');
    t.equal(unknown.status, 404, 'unknown method: 404');
    t.type(unknown.json?.Err, 'string', 'unknown method: {"Err"}');
    const big = await pluginCall(vx.socket, 'IpamDriver.RequestPool', `{"Pool":"${'x'.repeat(2_000_000)}"}`);
    t.ok(big.status >= 400 && typeof big.json?.Err === 'string', `oversized body refused: ${big.status}`);

    const nid = 'a'.repeat(64);
    const bad = await pluginCall(vx.socket, 'NetworkDriver.CreateNetwork', JSON.stringify({
      NetworkID: nid, Options: { 'com.docker.network.generic': { bridge: 'vxtbadbad', mtu: '12' } },
      IPv4Data: [{ AddressSpace: 'vxnet', Pool: '10.232.99.0/24', Gateway: '10.232.99.1/24' }], IPv6Data: [],
    }));
    t.equal(bad.status, 500, 'invalid option refused');
    t.match(bad.json?.Err, /mtu=12/, `names the option: ${bad.json?.Err}`);
    t.notOk(fs.existsSync(join(vx.dataDir, 'docker', 'networks', `${nid}.json`)), 'no record of the refused network');
    t.notOk(await linkExists('vxtbadbad'), 'no bridge');
    const noIpam = await pluginCall(vx.socket, 'NetworkDriver.CreateNetwork', JSON.stringify({
      NetworkID: nid, Options: {}, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '172.30.0.0/16', Gateway: '172.30.0.1/16' }], IPv6Data: [],
    }));
    t.match(noIpam.json?.Err, /--ipam-driver/, `driver without vxnet IPAM refused: ${noIpam.json?.Err}`);
    const v6 = await pluginCall(vx.socket, 'IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'vxnet', Pool: '10.0.0.0/24', V6: true }));
    t.match(v6.json?.Err, /not an IPv6 CIDR/, `an IPv4 subnet for an IPv6 pool refused clearly: ${v6.json?.Err}`);
    const act = await pluginCall(vx.socket, 'Plugin.Activate');
    t.same(act.json, { Implements: ['NetworkDriver', 'IpamDriver'] }, 'still serving after all that');
    t.ok(vx.pid() !== undefined && (await exec('kill', ['-0', String(vx.pid())])).code === 0, 'the daemon is alive');

    // Through Docker: the error reaches the user.
    const opt = await docker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, '--subnet', '10.232.98.0/24', '-o', 'bogus=1', 'vxt-bogus']);
    t.teardown(async () => { await docker(['network', 'rm', 'vxt-bogus']); });
    t.not(opt.code, 0, 'docker network create with an unknown -o fails');
    t.match(opt.stderr, /-o bogus: unknown option/, `docker shows vxnet's message: ${opt.stderr.trim()}`);
    const nosub = await docker(['network', 'create', '-d', vx.plugin, '--ipam-driver', vx.plugin, 'vxt-nosub']);
    t.teardown(async () => { await docker(['network', 'rm', 'vxt-nosub']); });
    t.not(nosub.code, 0, 'a network without --subnet fails');
    t.match(nosub.stderr, /--subnet/, `and says to give --subnet: ${nosub.stderr.trim()}`);
  });

  t.test('vxnetd --help documents every flag', async (t) => {
    const r = await exec(join(__dirname, '..', '..', 'dist', 'bin', 'vxnetd'), ['--help']);
    t.equal(r.code, 0);
    for (const flag of ['--socket', '--cni-socket', '--data-dir', '--docker-socket', '--no-docker', '--reconcile-interval', '--reconcile-grace', '--log-level', '--help', '--version']) {
      t.match(r.stdout, flag, `documents ${flag}`);
    }
    for (const opt of ['network=', 'bridge=', 'mtu=', 'ipMasq=', 'natTable=']) t.match(r.stdout, opt, `documents -o ${opt}`);
    const bad = await exec(join(__dirname, '..', '..', 'dist', 'bin', 'vxnetd'), ['--bogus']);
    t.equal(bad.code, 2, 'unknown flag: exit 2');
    t.match(bad.stderr, /bogus/);
  });
}
