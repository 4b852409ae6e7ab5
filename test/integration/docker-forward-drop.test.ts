// Containers on a vxnet network reach each other on a host where Docker runs: Docker sets the
// iptables FORWARD policy to DROP, and br_netfilter sends bridged traffic through FORWARD.
// The "Docker host" here is a namespace of the test's own (iptables policy, br_netfilter
// sysctls and the bridge all live inside it), so the machine's firewall is never touched.
import t, { Test } from 'tap';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, newNetns } from '../helpers/netns';
import { VXNET, cannotRun } from './helpers/cni';

const reason = cannotRun();
if (reason) t.plan(0, reason);
else t.test('containers reach each other through a Docker-style FORWARD DROP policy', main);

function hostCni(hostNs: string, command: string, containerId: string, netns: string, conf: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec('ip', ['netns', 'exec', hostNs, VXNET], {
    input: conf,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
}

async function main(t: Test): Promise<void> {
  t.setTimeout(90_000);
  const host = await newNetns(t);
  const c1 = await newNetns(t);
  const c2 = await newNetns(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'vxt-dockerhost-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

  // What dockerd does to a host, inside the fake host only.
  const policy = await exec('ip', ['netns', 'exec', host.name, 'iptables', '-w', '-P', 'FORWARD', 'DROP']);
  t.equal(policy.code, 0, 'FORWARD policy set to DROP inside the fake Docker host');
  const nfCall = await exec('ip', ['netns', 'exec', host.name, 'sysctl', '-n', 'net.bridge.bridge-nf-call-iptables']);
  t.equal(nfCall.stdout.trim(), '1', 'br_netfilter passes bridged traffic to iptables in that namespace');

  const conf = JSON.stringify({
    cniVersion: '1.0.0', name: 'vxtdocker', type: 'vxnet', bridge: 'vxtdk0', isGateway: true, ipMasq: true, natTable: 'vxtdk',
    ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: '10.239.250.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir },
  });
  const a = await hostCni(host.name, 'ADD', 'vxt-dk-1', c1.path, conf);
  const b = await hostCni(host.name, 'ADD', 'vxt-dk-2', c2.path, conf);
  t.equal(a.code, 0, `ADD c1: ${a.stdout}${a.stderr}`);
  t.equal(b.code, 0, `ADD c2: ${b.stdout}${b.stderr}`);
  if (a.code !== 0 || b.code !== 0) return;
  const ipOf = (out: string): string => (JSON.parse(out) as { ips: Array<{ address: string }> }).ips[0].address.split('/')[0];
  const [ip1, ip2] = [ipOf(a.stdout), ipOf(b.stdout)];

  const rules = await exec('ip', ['netns', 'exec', host.name, 'iptables', '-w', '-S', 'FORWARD']);
  t.match(rules.stdout, /-P FORWARD DROP/, 'the policy is still DROP');
  t.match(rules.stdout, /-i vxtdk0 .*-j ACCEPT/, 'vxnet accepted forwarding from its bridge');

  const ping12 = await exec('ip', ['netns', 'exec', c1.name, 'busybox', 'ping', '-c', '2', '-W', '2', ip2]);
  t.equal(ping12.code, 0, `c1 (${ip1}) reaches c2 (${ip2}) through FORWARD DROP: ${ping12.stdout}`);
  const ping21 = await exec('ip', ['netns', 'exec', c2.name, 'busybox', 'ping', '-c', '2', '-W', '2', ip1]);
  t.equal(ping21.code, 0, 'c2 reaches c1');
  // The gateway (the bridge inside the fake host) answers too: the host side is reachable.
  const gw = await exec('ip', ['netns', 'exec', c1.name, 'busybox', 'ping', '-c', '1', '-W', '2', '10.239.250.1']);
  t.equal(gw.code, 0, 'c1 reaches its gateway');

  // Control: without vxnet's accept rules the same ping is dropped, so the test can fail.
  await exec('ip', ['netns', 'exec', host.name, 'iptables', '-w', '-D', 'FORWARD', '-i', 'vxtdk0', '-m', 'comment', '--comment', 'vxnet:vxtdk0', '-j', 'ACCEPT']);
  const dropped = await exec('ip', ['netns', 'exec', c1.name, 'busybox', 'ping', '-c', '1', '-W', '1', ip2]);
  t.not(dropped.code, 0, 'without the accept rule, FORWARD DROP blocks c1 -> c2');

  for (const [id, ns] of [['vxt-dk-1', c1.path], ['vxt-dk-2', c2.path]]) {
    const del = await hostCni(host.name, 'DEL', id, ns, conf);
    t.equal(del.code, 0, `DEL ${id}`);
  }
  t.ok(fs.existsSync(join(dataDir, 'ipam.db')), 'the store was used');
  // Deleting the fake host namespace (teardown) removes its bridge, tables and rules.
}
