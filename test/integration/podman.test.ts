// vxnet under a real runtime: podman 4 with its CNI backend reads a conflist of type vxnet from
// a test directory and execs dist/bin/vxnet (cni_plugin_dirs of a project-owned
// containers.conf; the global /etc/containers config is never touched). Two busybox
// containers get addresses from vxnet's store, reach each other, and `podman rm` (which runs
// CNI DEL) releases both addresses. Root only; containers, network, bridge and nft table are
// vxt-prefixed.
import t from 'tap';
import * as fs from 'node:fs';
import { linkExists, testName } from '../helpers/netns';
import { execSync } from '../helpers/sh';
import { ensureBusyboxImage } from '../helpers/podman';
import { podmanFor } from './helpers/podman-net';
import { cannotRun, hostVethName, newNet } from './helpers/cni';

const podmanMissing = execSync('podman', ['--version']).code !== 0;
const reason = cannotRun() ?? (podmanMissing ? 'podman is not installed (apt-get install podman runc)' : undefined);
if (reason) {
  t.plan(0, reason);
} else {
  t.setTimeout(180_000);
  main();
}

function main(): void {
  t.test('two podman containers on a vxnet network reach each other; podman rm releases their addresses', async (t) => {
    const image = await ensureBusyboxImage();
    const net = await newNet(t);
    const pm = podmanFor(net);

    const info = await pm.run(['info', '--format', '{{.Host.NetworkBackend}}']);
    t.equal(info.stdout.trim(), 'cni', 'podman uses the CNI backend with this containers.conf', { stderr: info.stderr });
    const ls = await pm.run(['network', 'inspect', net.name, '--format', '{{.Driver}}']);
    t.equal(ls.stdout.trim(), 'vxnet', 'podman sees the vxnet network', { stderr: ls.stderr });

    const names = [testName(), testName()];
    // Registered after newNet: runs before the network's teardown (tap runs teardowns last-first).
    t.teardown(async () => {
      const r = await pm.run(['rm', '-f', '--ignore', '-t', '0', ...names]);
      if (r.code !== 0) t.comment(`teardown: podman rm: ${r.stderr.trim()}`);
    });
    const ids: string[] = [];
    for (const name of names) {
      const r = await pm.run(['run', '-d', '--pull', 'never', '--name', name, '--network', net.name, image, 'sleep', '3600']);
      t.equal(r.code, 0, `podman run ${name}`, { stderr: r.stderr });
      if (r.code !== 0) return;
      ids.push(r.stdout.trim());
    }

    const addrs: string[] = [];
    for (const name of names) {
      const r = await pm.run(['inspect', '--format', '{{json .NetworkSettings.Networks}}', name]);
      const nets = JSON.parse(r.stdout || '{}') as Record<string, { IPAddress?: string; Gateway?: string }>;
      const mine = nets[net.name];
      t.match(mine?.IPAddress, new RegExp(`^10\\.239\\.${net.n}\\.\\d+$`), `${name} has an address of the network`);
      t.equal(mine?.Gateway, net.ip4(1), `${name} has the network's gateway`);
      addrs.push(mine?.IPAddress ?? '');
    }
    t.not(addrs[0], addrs[1], 'distinct addresses');

    const allocs = await net.allocations();
    t.same(allocs.map((a) => [a.containerId, a.ifname, a.address]).sort(), ids.map((id, i) => [id, 'eth0', addrs[i]]).sort(),
      'vxnet\'s store holds exactly these addresses for these container ids');
    t.same(allocs.map((a) => a.name).sort(), [...names].sort(), 'podman\'s K8S_POD_NAME (the container name) is recorded');
    for (const id of ids) t.ok(await linkExists(hostVethName(id, 'eth0')), `host veth of ${id.slice(0, 12)} exists`);

    const p1 = await pm.run(['exec', names[0], 'ping', '-c1', '-W2', addrs[1]]);
    t.equal(p1.code, 0, `${names[0]} pings ${names[1]} (${addrs[1]})`, { out: p1.stdout + p1.stderr });
    const p2 = await pm.run(['exec', names[1], 'ping', '-c1', '-W2', addrs[0]]);
    t.equal(p2.code, 0, `${names[1]} pings ${names[0]} (${addrs[0]})`, { out: p2.stdout + p2.stderr });

    const rm = await pm.run(['rm', '-f', '-t', '0', ...names]);
    t.equal(rm.code, 0, 'podman rm -f both', { stderr: rm.stderr });
    t.same(await net.allocations(), [], 'podman\'s CNI DEL released both addresses');
    for (const id of ids) t.notOk(await linkExists(hostVethName(id, 'eth0')), `host veth of ${id.slice(0, 12)} is gone`);
    for (const id of ids) t.notOk(fs.existsSync(`/var/lib/cni/results/${net.name}-${id}-eth0`), `libcni's cached result for ${id.slice(0, 12)} is gone`);
  });
}
