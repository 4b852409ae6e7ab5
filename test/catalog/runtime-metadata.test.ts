// catalog/runtime-metadata.ts against the real runtimes: a real dockerd (test/helpers/docker.ts)
// and podman's own API service, started here on a vxt socket and stopped by its pid. A
// container with labels and exposed ports gives those facts through the same code for both;
// an unknown id, an unknown runtime and a missing socket give undefined; a socket nothing
// listens on is a VxnetError that says so.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runtimeMetadata } from '../../catalog/runtime-metadata';
import { VxnetError } from '../../lib/errors';
import { createLogger } from '../../lib/log';
import { DOCKER, DOCKERD, DOCKER_SOCKET, cannotRunDocker, createDockerNet, docker, endpointOf, ensureDockerImage, mustDocker, runContainer, startVxnetd } from '../helpers/docker';
import { ctl } from '../helpers/ctl';
import { ensureBusyboxImage, newCniConfigDir, podman, podmanEnv, podmanRm } from '../helpers/podman';
import { execSync, pollUntil } from '../helpers/sh';

// A cold dockerd start and image import alone may take a minute.
t.setTimeout(300_000);
const log = createLogger('test', 'error', () => undefined);
const hex = (): string => randomBytes(4).toString('hex');
const UNKNOWN_ID = 'f'.repeat(64);

const notRoot = process.getuid?.() !== 0 ? 'needs root (the runtimes)' : undefined;
const noDocker = notRoot ?? (!fs.existsSync(DOCKER) || !fs.existsSync(DOCKERD) ? `${DOCKER} or ${DOCKERD} is missing` : undefined);
const noPodman = notRoot ?? (execSync('sh', ['-c', 'command -v podman']).code !== 0 ? 'podman is not installed' : undefined);

t.test('Docker: name, labels and exposed ports of a container; unknown ids are undefined', { skip: noDocker ?? false }, async (t) => {
  const image = await ensureDockerImage();
  const name = `vxt-meta-${hex()}`;
  t.teardown(async () => { await docker(['rm', '-f', name]); });
  const id = await mustDocker(['create', '--name', name, '--network', 'none',
    '--label', 'vxnet.service=web', '--label', 'tier=front end', '--expose', '8080', '--expose', '53/udp', image, '/bin/busybox', 'sleep', '3600']);

  const source = runtimeMetadata({ docker: DOCKER_SOCKET, log });
  const facts = await source.lookup('docker', id);
  t.equal(facts?.name, name, 'the name without its leading "/"');
  t.same(facts?.labels, { 'vxnet.service': 'web', tier: 'front end' }, 'the labels, exactly');
  const ports = [...(facts?.exposedPorts ?? [])].sort((a, b) => a.port - b.port);
  t.same(ports, [{ port: 53, protocol: 'udp' }, { port: 8080, protocol: 'tcp' }], '--expose 8080 --expose 53/udp');
  t.same(await source.lookup('docker', id.slice(0, 12)), facts, 'a short id is the same container');

  t.equal(await source.lookup('docker', UNKNOWN_ID), undefined, 'an unknown id: undefined (404)');
  t.equal(await source.lookup('docker', '../../info'), undefined, 'an id that is not one is not asked about');
  t.equal(await source.lookup('rkt', id), undefined, 'an unknown runtime: undefined');
  t.equal(await runtimeMetadata({ log }).lookup('docker', id), undefined, 'no Docker socket configured: undefined');
  t.equal(await runtimeMetadata({ docker: join(tmpdir(), `vxt-none-${hex()}.sock`), log }).lookup('docker', id), undefined, 'a missing socket: undefined');
});

t.test('Docker, on a vxnet network: the IPAM store\'s containerId (the endpoint id) finds the container', { skip: noDocker ?? cannotRunDocker() ?? false }, async (t) => {
  await ensureDockerImage();
  const vx = await startVxnetd(t);
  const net = await createDockerNet(t, vx);
  const name = await runContainer(t, { network: net.name, args: ['--label', 'vxnet.ports=http=8080', '--expose', '9000'] });
  const ep = await endpointOf(name, net.name);
  if (!ep) throw new Error(`${name} has no endpoint on ${net.name}`);
  const r = await ctl(['--data-dir', vx.dataDir, 'ipam', 'ls', '--json']);
  const allocs = (JSON.parse(r.stdout) as { allocations: Array<{ containerId: string; runtime: string }> }).allocations;
  const held = allocs.find((a) => a.runtime === 'docker' && a.containerId === ep.EndpointID);
  t.ok(held, 'the store holds the address under the endpoint id, runtime docker');

  const source = runtimeMetadata({ docker: DOCKER_SOCKET, log });
  const facts = await source.lookup('docker', ep.EndpointID);
  t.equal(facts?.name, name, 'the endpoint id gives its container\'s name');
  t.same(facts?.labels, { 'vxnet.ports': 'http=8080' }, 'its labels');
  t.same(facts?.exposedPorts, [{ port: 9000, protocol: 'tcp' }], 'its exposed ports');
  t.same(await source.lookup('docker', ep.EndpointID), facts, 'again, from the endpoint map');
  t.equal(await source.lookup('docker', 'e'.repeat(64)), undefined, 'an endpoint id no network has: undefined');
});

t.test('a socket nothing answers on is a VxnetError naming the socket', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-meta-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // A listener that accepts and never answers: the call must end by its timeout.
  const silent = join(dir, 'silent.sock');
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => { sockets.push(s); });
  await new Promise<void>((r) => server.listen(silent, r));
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  const err = await runtimeMetadata({ docker: silent, timeoutMs: 200, log }).lookup('docker', 'abc123').then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof VxnetError, 'a VxnetError');
  t.match((err as Error).message, new RegExp(`cannot inspect Docker container abc123 through ${silent}: no answer within 200 ms`));

  // A socket file whose listener is gone: connection refused.
  const stale = join(dir, 'stale.sock');
  const gone = net.createServer();
  await new Promise<void>((r) => gone.listen(stale, r));
  // Closing unlinks the file; link it back first so a stale socket file stays.
  fs.linkSync(stale, join(dir, 'keep.sock'));
  await new Promise<void>((r) => gone.close(() => r()));
  const refused = await runtimeMetadata({ podman: join(dir, 'keep.sock'), log }).lookup('cni', 'abc123').then(() => undefined, (e: unknown) => e);
  t.ok(refused instanceof VxnetError, 'a VxnetError');
  t.match((refused as Error).message, /nothing listens on the socket \(is the podman API service running\?\)/);
});

t.test('podman: the same facts through its API socket, for runtime "cni"', { skip: noPodman ?? false }, async (t) => {
  const cniDir = newCniConfigDir(t);
  const env = podmanEnv(cniDir);
  const socket = join(tmpdir(), `vxt-podman-${hex()}.sock`);
  const service = spawn('podman', ['--network-config-dir', cniDir, 'system', 'service', '--time=0', `unix://${socket}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let serviceErr = '';
  service.stderr.on('data', (b: Buffer) => { serviceErr += b.toString(); });
  const exited = new Promise<void>((r) => service.once('exit', () => r()));
  t.teardown(async () => {
    if (service.exitCode === null && service.signalCode === null && service.pid) process.kill(service.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (service.exitCode === null && service.signalCode === null && service.pid) process.kill(service.pid, 'SIGKILL');
    fs.rmSync(socket, { force: true });
  });
  await pollUntil(() => {
    if (service.exitCode !== null) throw new Error(`podman system service exited ${service.exitCode}: ${serviceErr}`);
    return fs.existsSync(socket);
  }, { timeoutMs: 20_000, what: `podman's API socket ${socket}` });

  const image = await ensureBusyboxImage();
  const name = `vxt-meta-${hex()}`;
  t.teardown(async () => { await podmanRm(cniDir, name); });
  // On podman's default network (created, never started: no CNI runs); with --network none
  // podman 4.3 keeps no exposed ports.
  const r = await podman(cniDir, ['create', '--pull', 'never', '--name', name,
    '--label', 'vxnet.service=db', '--label', 'owner=ops', '--expose', '8080', '--expose', '53/udp', image, 'sleep', '3600']);
  if (r.code !== 0) throw new Error(`podman create: ${r.stderr.trim()}`);
  const id = r.stdout.trim();

  const source = runtimeMetadata({ podman: socket, log });
  const facts = await source.lookup('cni', id);
  t.equal(facts?.name, name, 'the name');
  t.match(facts?.labels, { 'vxnet.service': 'db', owner: 'ops' }, 'the labels');
  const ports = [...(facts?.exposedPorts ?? [])].sort((a, b) => a.port - b.port);
  t.same(ports, [{ port: 53, protocol: 'udp' }, { port: 8080, protocol: 'tcp' }], '--expose 8080 --expose 53/udp');
  t.equal(await source.lookup('cni', UNKNOWN_ID), undefined, 'an unknown id: undefined (404)');
  t.equal(await runtimeMetadata({ podman: join(tmpdir(), `vxt-none-${hex()}.sock`), log }).lookup('cni', id), undefined, 'no podman socket: undefined');
});
