// Service discovery with a real runtime: two podman containers on one vxnet network (CNI
// backend, the built plugins) find each other by name through the built vxnetd's DNS. podman
// writes the containers' resolv.conf from the CNI result's `dns` (vxnetd's servers and search
// list, through dns.json); busybox nslookup asks it; a removed container stops resolving.
// Labels end to end: podman passes no labels to CNI, so vxnetd reads a container's labels
// through podman's Docker-compatible API socket (`podman system service` on a test socket,
// vxnetd --podman-socket); its vxnet.service label makes SERVICE.vxnet answer.
// vxnetd listens on one 198.51.100.2xx address on a vxt bridge of the test's own (host-global:
// it goes with the link). Root only; vxt-prefixed everything, removed by teardowns.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { query } from '../../dns/client';
import { parseIp } from '../../ipam/addr';
import { execSync } from '../helpers/sh';
import { pollUntil, testName } from '../helpers/netns';
import { dnsTestAddress } from '../helpers/dns-address';
import { ensureBusyboxImage } from '../helpers/podman';
import { DIST_BIN, cannotRun, newNet, type TestNet } from './helpers/cni';
import { podmanFor } from './helpers/podman-net';

const podmanMissing = execSync('podman', ['--version']).code !== 0;
const reason = cannotRun() ?? (podmanMissing ? 'podman is not installed (apt-get install podman runc)' : undefined);
if (reason) t.plan(0, reason);
else { t.setTimeout(240_000); main(); }


interface Setup {
  dir: string;
  server: string;
  net: TestNet;
  cniSocket: string;
}

/** A test dir, a DNS address, a vxnet CNI network whose results carry dns.json, and the built vxnetd serving it (plus `args(dir)`). */
async function withVxnetd(t: Test, args: (dir: string) => readonly string[] = () => []): Promise<Setup> {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-dnspm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const server = await dnsTestAddress(t, 200, 50);
  const stateFile = join(dir, 'dns.json');
  const net = await newNet(t, { extra: { dnsState: stateFile } });
  const cniSocket = join(dir, 'cni.sock');
  const vxnetd = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--no-vip', '--socket', join(dir, 'vxt.sock'), '--cni-socket', cniSocket,
    '--data-dir', net.dataDir, '--overlay-dir', join(dir, 'ov'), '--dns-state', stateFile, '--dns-listen', `${server}:53`,
    '--dns-upstream', '127.0.0.1:9', '--http-listen', '', '--log-level', 'warn', ...args(dir)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  vxnetd.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((resolve) => vxnetd.once('exit', () => resolve()));
  t.teardown(async () => { if (vxnetd.exitCode === null && vxnetd.signalCode === null) { vxnetd.kill('SIGTERM'); await exited; } });
  await pollUntil(async () => {
    if (vxnetd.exitCode !== null) throw new Error(`vxnetd exited: ${log}`);
    return fs.existsSync(stateFile);
  }, { timeoutMs: 20_000, intervalMs: 20, what: 'vxnetd to write dns.json' });
  return { dir, server, net, cniSocket };
}

function main(): void {
  t.test('two podman containers resolve each other by name through vxnetd', async (t) => {
    const image = await ensureBusyboxImage();
    const { server, net, cniSocket } = await withVxnetd(t);
    const pm = podmanFor(net, { ...process.env, VXNET_CNI_SOCKET: cniSocket });
    const names = [testName(), testName()];
    t.teardown(async () => { await pm.run(['rm', '-f', '--ignore', '-t', '0', ...names]); });
    const ips: string[] = [];
    for (const name of names) {
      const r = await pm.run(['run', '-d', '--pull', 'never', '--name', name, '--network', net.name, image, 'sleep', '3600']);
      t.equal(r.code, 0, `podman run ${name}`, { stderr: r.stderr });
      if (r.code !== 0) return;
      const i = await pm.run(['inspect', '--format', '{{json .NetworkSettings.Networks}}', name]);
      ips.push((JSON.parse(i.stdout || '{}') as Record<string, { IPAddress?: string }>)[net.name]?.IPAddress ?? '');
    }

    const resolv = await pm.run(['exec', names[0]!, 'cat', '/etc/resolv.conf']);
    t.match(resolv.stdout, new RegExp(`nameserver ${server.replace(/\./g, '\\.')}`), 'podman wrote vxnetd\'s server from the CNI result');
    t.match(resolv.stdout, new RegExp(`search ${net.name}\\.vxnet vxnet`), 'and the search list NETWORK.vxnet vxnet');

    const lookup = async (from: string, name: string): Promise<string> => (await pm.run(['exec', from, 'nslookup', name, server])).stdout;
    // Bounded: the network's subnet joins the allow-list within vxnetd's 5 s refresh after its first ADD.
    const seen = await pollUntil(async () => { const o = await lookup(names[0]!, `${names[1]}.vxnet`); return o.includes(ips[1]!) && o; },
      { timeoutMs: 20_000, intervalMs: 250, what: `${names[0]} resolving ${names[1]}` });
    t.ok(seen, `${names[0]} resolves ${names[1]}.vxnet to ${ips[1]} with busybox nslookup`);
    t.match(await lookup(names[1]!, `${names[0]}.${net.name}.vxnet`), ips[0]!, `${names[1]} resolves ${names[0]}.NETWORK.vxnet`);

    const rm = await pm.run(['rm', '-f', '-t', '0', names[1]!]);
    t.equal(rm.code, 0, `podman rm ${names[1]}`, { stderr: rm.stderr });
    const gone = await pollUntil(async () => { const o = await lookup(names[0]!, `${names[1]}.vxnet`); return !o.includes(ips[1]!) && o; },
      { timeoutMs: 10_000, intervalMs: 100, what: `${names[1]} to stop resolving` });
    t.match(gone, /NXDOMAIN|can't find/i, `${names[1]} no longer resolves after podman rm`);
  });
  t.test('a podman container\'s labels reach DNS through podman\'s API socket (vxnet.service -> SERVICE.vxnet)', async (t) => {
    const image = await ensureBusyboxImage();
    const { dir, server, net, cniSocket } = await withVxnetd(t, (d) => ['--podman-socket', join(d, 'podman.sock')]);
    const socket = join(dir, 'podman.sock');
    const pm = podmanFor(net, { ...process.env, VXNET_CNI_SOCKET: cniSocket });
    const service = spawn('podman', ['--network-config-dir', pm.cniDir, 'system', 'service', '--time=0', `unix://${socket}`],
      { env: { ...process.env, CONTAINERS_CONF: join(net.tmp, 'containers.conf') }, stdio: ['ignore', 'ignore', 'pipe'] });
    let serviceErr = '';
    service.stderr!.on('data', (b: Buffer) => { serviceErr += b.toString(); });
    const serviceExited = new Promise<void>((r) => service.once('exit', () => r()));
    t.teardown(async () => {
      if (service.exitCode === null && service.signalCode === null) service.kill('SIGTERM');
      await Promise.race([serviceExited, new Promise((r) => setTimeout(r, 10_000).unref())]);
      if (service.exitCode === null && service.signalCode === null) service.kill('SIGKILL');
    });
    await pollUntil(() => {
      if (service.exitCode !== null) throw new Error(`podman system service exited ${service.exitCode}: ${serviceErr}`);
      return fs.existsSync(socket);
    }, { timeoutMs: 20_000, intervalMs: 50, what: `podman's API socket ${socket}` });

    const svc = `vxtsvc${randomBytes(3).toString('hex')}`;
    const name = testName();
    t.teardown(async () => { await pm.run(['rm', '-f', '--ignore', '-t', '0', name]); });
    const r = await pm.run(['run', '-d', '--pull', 'never', '--name', name, '--network', net.name, '--label', `vxnet.service=${svc}`, image, 'sleep', '3600']);
    const returned = performance.now();
    t.equal(r.code, 0, `podman run ${name} --label vxnet.service=${svc}`, { stderr: r.stderr });
    if (r.code !== 0) return;
    const i = await pm.run(['inspect', '--format', '{{json .NetworkSettings.Networks}}', name]);
    const ip = (JSON.parse(i.stdout || '{}') as Record<string, { IPAddress?: string }>)[net.name]?.IPAddress ?? '';
    const at = { ip: parseIp(server)!, port: 53 };
    const addresses = async (qname: string): Promise<string[]> =>
      (await query(at, qname, 'A', { timeoutMs: 1000 })).answers.map((a) => String((a as { data?: unknown }).data));
    t.same(await addresses(`${name}.vxnet`), [ip], `${name}.vxnet answers at once (the name comes with the CNI call)`);
    // Bounded: the labels are read from podman's API after the ADD's reply (a podman lock may hold it until then).
    await pollUntil(async () => (await addresses(`${svc}.vxnet`))[0] === ip, { timeoutMs: 10_000, intervalMs: 50, what: `${svc}.vxnet to answer ${ip}` });
    t.pass(`${svc}.vxnet answers ${ip}: the label came through podman's API socket`);
    t.comment(`podman run returned -> ${svc}.vxnet answers: ${(performance.now() - returned).toFixed(0)} ms (a podman inspect included)`);
  });
}
