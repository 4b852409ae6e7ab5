// VIPs end to end through the built vxnetd: three containers ADDed through the real vxnet CNI
// plugin (handed off to vxnetd) with args.cni.labels VIP_0=/web:80 and vxnet.ports=8080, each
// serving its own name on 8080; a client container, the host and a backend (hairpin) resolve web.l4lb.vxnet with dig
// against the test's DNS address, connect to the VIP on port 80 and hear every backend; a DEL
// takes that backend out of the VIP (the API, vxnetctl and the traffic agree). The VIP table, its
// link and the VIP range are the test's own (--vip-table vxt..., --vip-link vxt..., a /24 of
// 198.19.0.0/16), so a real vxnet-vip table is never touched. Root only.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { dnsTestAddress } from '../helpers/dns-address';
import { exec, pollUntil } from '../helpers/netns';
import { attach, cannotRun, DIST_BIN, newNet, runPlugin, VXNET, type Attached, type TestNet } from './helpers/cni';

const reason = cannotRun();
if (reason) t.plan(0, reason);
else { t.setTimeout(240_000); main(); }

const HTTP_PORT = 30_000 + Math.floor(Math.random() * 20_000);
const hex = randomBytes(3).toString('hex');
const TABLE = `vxt-vip${hex}`;
const LINK = `vxt-vl${hex}`;
const RANGE = `198.19.${Math.floor(Math.random() * 250)}.0/24`;

interface Daemon { stop(): Promise<void>; log(): string }

async function vxnetd(t: Test, dir: string, net: TestNet, dns: string): Promise<Daemon> {
  const child = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--socket', join(dir, 'vxt.sock'), '--cni-socket', join(dir, 'cni.sock'),
    '--data-dir', net.dataDir, '--overlay-dir', join(dir, 'ov'), '--dns-state', join(dir, 'dns.json'), '--dns-listen', `${dns}:53`,
    '--dns-upstream', '127.0.0.1:9', '--dns-allow', net.v4, '--http-listen', `127.0.0.1:${HTTP_PORT}`, '--vip-table', TABLE, '--vip-link', LINK,
    '--vip-range', RANGE, '--vip-range6', '', '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; } });
  await pollUntil(async () => {
    if (child.exitCode !== null) throw new Error(`vxnetd exited: ${log}`);
    return fetch(`http://127.0.0.1:${HTTP_PORT}/v1/vips`).then((r) => r.ok, () => false);
  }, { timeoutMs: 30_000, intervalMs: 20, what: 'vxnetd to answer' });
  return { stop: async () => { child.kill('SIGTERM'); await exited; }, log: () => log };
}

interface VipJson { vip: string; name?: string; addresses: string[]; port: number; backends: Array<{ name: string; ip: string; port: number; state: string; host: string }> }

async function vips(): Promise<VipJson[]> {
  return (await fetch(`http://127.0.0.1:${HTTP_PORT}/v1/vips`)).json() as Promise<VipJson[]>;
}

/** A busybox httpd in the container's namespace answering its name on 8080; killed by pid at teardown. */
function serve(t: Test, c: Attached, name: string, dir: string): void {
  const root = join(dir, `www-${name}`);
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(join(root, 'index.html'), `${name}\n`);
  const p: ChildProcess = spawn('ip', ['netns', 'exec', c.ns.name, 'busybox', 'httpd', '-f', '-p', '8080', '-h', root], { stdio: 'ignore' });
  t.teardown(() => { if (p.exitCode === null) p.kill('SIGKILL'); });
}

/** One HTTP GET from the host's own network namespace. */
function hostGet(ip: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ip, port, path: '/', agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function nsGet(c: Attached, ip: string, port: number): Promise<string> {
  // curl, not busybox wget: the static busybox's wget segfaults on this machine.
  const r = await exec('ip', ['netns', 'exec', c.ns.name, 'curl', '-s', '-m', '3', `http://${ip}:${port}/`]);
  if (r.code !== 0) throw new Error(`curl from ${c.ns.name}: exit ${r.code} ${r.stderr}`);
  return r.stdout.trim();
}

/** The set of answers over up to `max` connections, stopping once `want` are all heard. */
async function heard(get: () => Promise<string>, want: readonly string[], max: number): Promise<{ seen: Set<string>; tries: number }> {
  const seen = new Set<string>();
  let tries = 0;
  while (tries < max && !want.every((w) => seen.has(w))) {
    tries++;
    seen.add(await get());
  }
  return { seen, tries };
}

function main(): void {
  t.test('named VIP through vxnetd: labels -> kernel -> DNS; container and host reach every backend; DEL takes one out', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-vipe2e-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    t.teardown(async () => {
      await exec('nft', ['delete', 'table', 'inet', TABLE]);
      await exec('ip', ['link', 'del', LINK]);
    });
    // Containers reach the VIP (and the DNS address) through their default route to the gateway.
    const net = await newNet(t, {
      extra: { isGateway: true },
      ipam: ({ tmp, v4 }) => ({ type: 'vxnet-ipam', ranges: [[{ subnet: v4 }]], dataDir: join(tmp, 'store'), routes: [{ dst: '0.0.0.0/0' }] }),
    });
    const dns = await dnsTestAddress(t, 200, 50);
    const vx = await vxnetd(t, dir, net, dns);
    const env = { VXNET_CNI_SOCKET: join(dir, 'cni.sock') };
    const labels = [{ key: 'VIP_0', value: '/web:80' }, { key: 'vxnet.ports', value: '8080' }];
    const names = ['web-0', 'web-1', 'web-2'];
    const backends: Attached[] = [];
    for (const name of names) {
      const c = await attach(t, net, { env, args: `K8S_POD_NAME=${name}`, conf: { args: { cni: { labels } } } });
      serve(t, c, name, dir);
      backends.push(c);
    }
    const client = await attach(t, net, { env, args: 'K8S_POD_NAME=client' });

    // The model: one VIP with the three backends, at port 8080, up.
    await pollUntil(async () => (await vips())[0]?.backends.length === 3, { timeoutMs: 10_000, intervalMs: 20, what: 'three backends in /v1/vips' });
    const [v] = await vips();
    t.match(v, { vip: '/web:80/tcp', name: 'web', port: 80 });
    t.same(v!.backends.map((b) => `${b.name} ${b.port} ${b.state}`).sort(), names.map((n) => `${n} 8080 up`));
    t.equal(v!.addresses.length, 1, 'IPv4 only (--vip-range6 "")');
    const vipIp = v!.addresses[0]!;
    t.ok(vipIp.startsWith(RANGE.split('.').slice(0, 3).join('.') + '.'), `the address ${vipIp} is in --vip-range ${RANGE}`);

    // DNS: dig against the test's DNS address, from the host and from the client container.
    const dig = await exec('dig', [`@${dns}`, '+short', '+time=2', '+tries=2', 'web.l4lb.vxnet', 'A']);
    t.equal(dig.stdout.trim(), vipIp, 'web.l4lb.vxnet A is the VIP');
    const srv = await exec('dig', [`@${dns}`, '+short', '+time=2', '+tries=2', '_web._tcp.l4lb.vxnet', 'SRV']);
    t.equal(srv.stdout.trim(), '0 1 80 web.l4lb.vxnet.', 'SRV _web._tcp.l4lb.vxnet');
    const digNs = await exec('ip', ['netns', 'exec', client.ns.name, 'dig', `@${dns}`, '+short', '+time=2', '+tries=2', 'web.l4lb.vxnet', 'A']);
    t.equal(digNs.stdout.trim(), vipIp, 'the client container resolves it through its gateway');

    // Traffic: the client container and the host each hear all three backends through VIP:80.
    const fromClient = await heard(() => nsGet(client, vipIp, 80), names, 90);
    t.same([...fromClient.seen].sort(), names, `the client container reached every backend (${fromClient.tries} connections)`);
    const fromHost = await heard(() => hostGet(vipIp, 80), names, 90);
    t.same([...fromHost.seen].sort(), names, `the host reached every backend (${fromHost.tries} connections)`);
    // Hairpin: a backend reaching the VIP is sometimes sent to itself (its bridge port in
    // hairpin mode, masqueraded so its reply comes back through the host).
    const fromBackend = await heard(() => nsGet(backends[0]!, vipIp, 80), names, 90);
    t.same([...fromBackend.seen].sort(), names, `a backend reached every backend, itself included (${fromBackend.tries} connections)`);

    // vxnetctl vip ls / show against the same vxnetd.
    const ls = await exec(join(DIST_BIN, 'vxnetctl'), ['vip', 'ls', '--api', `http://127.0.0.1:${HTTP_PORT}`]);
    t.equal(ls.code, 0, `vxnetctl vip ls: ${ls.stderr}`);
    t.match(ls.stdout, /\/web\s+tcp\s+80\s+198\.19\.\d+\.\d+\s+web-\d \d+\.\d+\.\d+\.\d+:8080\s+\S+\s+up\s+1/);
    const show = await exec(join(DIST_BIN, 'vxnetctl'), ['vip', 'show', 'web', '--json', '--api', `http://127.0.0.1:${HTTP_PORT}`]);
    t.equal(JSON.parse(show.stdout).vips[0].backends.length, 3, 'vxnetctl vip show web --json');

    // DEL web-1: it leaves the VIP; the remaining two answer every connection.
    const gone = backends[1]!;
    const del = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: gone.containerId, ifname: gone.ifname, netns: gone.ns.path, env });
    t.equal(del.code, 0, `DEL: ${del.stderr}`);
    const t0 = performance.now();
    await pollUntil(async () => (await vips())[0]?.backends.length === 2, { timeoutMs: 5000, intervalMs: 5, what: 'web-1 out of /v1/vips' });
    t.comment(`DEL returned -> backend out of the VIP model: ${(performance.now() - t0).toFixed(1)} ms`);
    const after = new Set<string>();
    for (let i = 0; i < 30; i++) after.add(await nsGet(client, vipIp, 80));
    t.same([...after].sort(), ['web-0', 'web-2'], '30 connections after the DEL: only the two left answer');

    // The last backends gone: the VIP goes, and so does its name.
    for (const c of [backends[0]!, backends[2]!]) {
      const r = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: c.containerId, ifname: c.ifname, netns: c.ns.path, env });
      t.equal(r.code, 0);
    }
    await pollUntil(async () => (await vips()).length === 0, { timeoutMs: 5000, intervalMs: 10, what: 'the VIP gone' });
    const nx = await exec('dig', [`@${dns}`, '+time=2', '+tries=2', 'web.l4lb.vxnet', 'A']);
    t.match(nx.stdout, /status: NXDOMAIN/, 'its name is gone from DNS');
    await vx.stop();
    t.match(vx.log(), /VIP \/web:80\/tcp added at/, 'the log says what changed');
  });
}
