// The edge end to end, nothing in between faked: containers ADDed by the real vxnet CNI plugin
// (handed off to the built vxnetd) with Marathon-LB labels in args.cni.labels, an HTTP server
// in each container's namespace, vxnetd's catalog stream (/v1/endpoints?watch=1) followed by the
// built vxnet-lb, Debian's HAProxy in front: the vhost routes to the container; a second
// container of the service serves shortly after its ADD returned, through the Runtime API
// (no reload); after its DEL it gets no more requests. Root only; vxt-prefixed everything.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { pollUntil } from '../helpers/netns';
import { bodies, freePort, get, startLb } from '../edge/helpers/edge';
import { attach, bare, cannotRun, DIST_BIN, newNet, runPlugin, VXNET, type Attached, type TestNet } from './helpers/cni';

const reason = cannotRun() ?? (spawnSync('haproxy', ['-v']).status !== 0 ? 'haproxy is not installed' : undefined);
if (reason) t.plan(0, reason);
else { t.setTimeout(180_000); main(); }

async function vxnetd(t: Test, dir: string, net: TestNet, httpPort: number): Promise<void> {
  const dnsPort = await freePort();
  const child = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--no-vip', '--socket', join(dir, 'vxt.sock'), '--cni-socket', join(dir, 'cni.sock'),
    '--data-dir', net.dataDir, '--overlay-dir', join(dir, 'ov'), '--dns-state', join(dir, 'dns.json'), '--dns-listen', `127.0.0.1:${dnsPort}`,
    '--dns-upstream', '127.0.0.1:9', '--http-listen', `127.0.0.1:${httpPort}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await exited; } });
  await pollUntil(async () => {
    if (child.exitCode !== null) throw new Error(`vxnetd exited: ${log}`);
    return fetch(`http://127.0.0.1:${httpPort}/v1/version`).then((r) => r.ok, () => false);
  }, { timeoutMs: 20_000, intervalMs: 20, what: 'vxnetd to answer' });
}

/** An HTTP server on :8080 inside the container's namespace answering its name; stopped by pid. */
async function serveIn(t: Test, c: Attached, name: string): Promise<void> {
  const script = `require('http').createServer((q,s)=>s.end(${JSON.stringify(name)})).listen(8080,'0.0.0.0',()=>process.stdout.write('up\\n'))`;
  const child = spawn('ip', ['netns', 'exec', c.ns.name, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; } });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the server in ${c.ns.name} exited ${code}`)));
  });
}

const labels = (pairs: Record<string, string>): Array<{ key: string; value: string }> => Object.entries(pairs).map(([key, value]) => ({ key, value }));

function main(): void {
  t.test('CNI containers with HAPROXY_* labels, through vxnetd\'s stream, to HAProxy', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-edge-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const net = await newNet(t);
    const api = await freePort();
    await vxnetd(t, dir, net, api);
    const env = { VXNET_CNI_SOCKET: join(dir, 'cni.sock') };
    const conf = { args: { cni: { labels: labels({ 'vxnet.service': 'web', 'vxnet.ports': '8080', HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'web.example' }) } } };
    const web0 = await attach(t, net, { env, args: 'K8S_POD_NAME=web-0', conf });
    await serveIn(t, web0, 'web-0');

    const http = await freePort();
    const lb = await startLb(t, { api: `http://127.0.0.1:${api}`, httpPort: http });
    await pollUntil(async () => (await get(http, 'web.example')).body === 'web-0' || undefined, { timeoutMs: 10_000, what: 'web.example to reach web-0' });
    t.pass(`web.example is routed to web-0 (${bare(web0.add.json!.ips[0].address)}:8080)`);
    const reloads = (await lb.proc())!.reloads;

    // A second container of the service: its server goes in through the Runtime API.
    const web1 = await attach(t, net, { env, args: 'K8S_POD_NAME=web-1', conf });
    await serveIn(t, web1, 'web-1');
    const t0 = performance.now();
    await pollUntil(async () => (await bodies(http, 'web.example', 2)).includes('web-1') || undefined, { timeoutMs: 10_000, intervalMs: 5, what: 'web-1 to serve' });
    t.comment(`web-1 served through the edge ${(performance.now() - t0).toFixed(0)} ms after its server was up (its ADD returned before)`);
    t.same([...new Set(await bodies(http, 'web.example', 6))].sort(), ['web-0', 'web-1'], 'both containers serve');
    t.equal((await lb.proc())!.reloads, reloads, 'without a reload');

    // DEL: the server leaves the backend.
    const del = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: web1.containerId, ifname: web1.ifname, netns: web1.ns.path, env });
    t.equal(del.code, 0, `DEL: ${del.stderr}`);
    await pollUntil(async () => !fs.readFileSync(join(lb.dir, 'haproxy.cfg'), 'utf8').includes(bare(web1.add.json!.ips[0].address)) || undefined, { timeoutMs: 10_000, what: 'web-1 to leave the config' });
    t.same(await bodies(http, 'web.example', 4), ['web-0', 'web-0', 'web-0', 'web-0'], 'only web-0 serves after web-1\'s DEL');
    t.equal((await lb.proc())!.reloads, reloads, 'still without a reload');
    await lb.stop();
  });
}
