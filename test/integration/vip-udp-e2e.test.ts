// VIPs end to end through the built vxnetd, the parts vip-e2e.test.ts does not cover: a UDP VIP
// (VIP_0=udp:///dnsx:53 over the backends' port 5353/udp) answered by every backend, from a
// container over IPv4 and IPv6 and from the host; the host reaching an IPv6 VIP (TCP, through
// the route of --vip-range6 to --vip-link); and a UDP flow whose backend's endpoint is deleted
// (CNI DEL) being balanced again on its next datagram (vxnetd deletes the conntrack entries of
// VIP flows towards addresses that are gone: vip/forget.ts). A dual-stack bridge network, three
// backends ADDed through the real vxnet plugin handed off to vxnetd. The table, link and ranges
// are the test's own (vxt names, a /24 of 198.19.0.0/16, a /112 of a ULA). Root only.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { exec, pollUntil } from '../helpers/netns';
import { serveEcho, udpClient } from '../helpers/vip-traffic';
import { attach, cannotRun, DIST_BIN, newNet, runPlugin, VXNET, type Attached, type TestNet } from './helpers/cni';

const reason = cannotRun() ?? (fs.existsSync('/usr/sbin/conntrack') ? undefined : 'needs conntrack (apt-get install conntrack)');
if (reason) t.plan(0, reason);
else { t.setTimeout(240_000); main(); }

const HTTP_PORT = 30_000 + Math.floor(Math.random() * 20_000);
const hex = randomBytes(3).toString('hex');
const TABLE = `vxt-vip${hex}`;
const LINK = `vxt-vl${hex}`;
const RANGE = `198.19.${Math.floor(Math.random() * 250)}.0/24`;
const RANGE6 = `fd7a:${hex.slice(0, 4)}::/112`;

interface Daemon { stop(): Promise<void>; log(): string }

async function vxnetd(t: Test, dir: string, net: TestNet): Promise<Daemon> {
  const child = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--no-dns', '--socket', join(dir, 'vxt.sock'), '--cni-socket', join(dir, 'cni.sock'),
    '--data-dir', net.dataDir, '--overlay-dir', join(dir, 'ov'), '--http-listen', `127.0.0.1:${HTTP_PORT}`, '--vip-table', TABLE, '--vip-link', LINK,
    '--vip-range', RANGE, '--vip-range6', RANGE6, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
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

interface VipJson { vip: string; name?: string; addresses: string[]; protocol: string; port: number; backends: Array<{ name: string; ip: string; port: number; state: string }> }

async function vips(): Promise<VipJson[]> {
  return (await fetch(`http://127.0.0.1:${HTTP_PORT}/v1/vips`)).json() as Promise<VipJson[]>;
}

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
  t.test('UDP VIP and IPv6 VIP through vxnetd; a deleted backend\'s UDP flow is balanced again', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-vipudp-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    t.teardown(async () => {
      await exec('nft', ['delete', 'table', 'inet', TABLE]);
      await exec('ip', ['link', 'del', LINK]);
    });
    const net = await newNet(t, {
      dual: true, extra: { isGateway: true },
      ipam: ({ tmp, v4, v6 }) => ({ type: 'vxnet-ipam', ranges: [[{ subnet: v4 }], [{ subnet: v6 }]], dataDir: join(tmp, 'store'), routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] }),
    });
    const vx = await vxnetd(t, dir, net);
    const env = { VXNET_CNI_SOCKET: join(dir, 'cni.sock') };
    const labels = [{ key: 'VIP_0', value: 'udp:///dnsx:53' }, { key: 'VIP_1', value: '/web6:80' }, { key: 'vxnet.ports', value: '5353/udp,8080' }];
    const names = ['echo-0', 'echo-1', 'echo-2'];
    const backends: Attached[] = [];
    for (const name of names) {
      const c = await attach(t, net, { env, args: `K8S_POD_NAME=${name}`, conf: { args: { cni: { labels } } } });
      serveEcho(t, c.ns.name, name, 5353, 8080);
      backends.push(c);
    }
    const client = await attach(t, net, { env, args: 'K8S_POD_NAME=client' });

    // Two dual-stack VIPs, each backed by the three endpoints' IPv4 and IPv6 addresses.
    await pollUntil(async () => { const v = await vips(); return v.length === 2 && v.every((x) => x.backends.length === 6); },
      { timeoutMs: 10_000, intervalMs: 20, what: 'two VIPs with six backends each in /v1/vips' });
    const all = await vips();
    const udp = all.find((v) => v.name === 'dnsx')!;
    const web = all.find((v) => v.name === 'web6')!;
    t.match(udp, { vip: '/dnsx:53/udp', protocol: 'udp', port: 53 }, 'VIP_0=udp:///dnsx:53 is a UDP VIP');
    t.same(new Set(udp.backends.map((b) => `${b.port}`)), new Set(['5353']), 'at the endpoints\' port 0 (5353/udp)');
    const [udp4, udp6] = [udp.addresses.find((a) => !a.includes(':'))!, udp.addresses.find((a) => a.includes(':'))!];
    const web6 = web.addresses.find((a) => a.includes(':'))!;
    t.ok(udp4 && udp6 && web6, `addresses: ${udp.addresses.join(' ')}, ${web.addresses.join(' ')}`);

    // UDP from the client container, IPv4 and IPv6, and from the host: a new flow per datagram.
    const c = udpClient(t, client.ns.name);
    for (const [what, ip] of [['IPv4', udp4], ['IPv6', udp6]] as const) {
      const h = await heard(() => c.fresh(ip, 53), names, 60);
      t.same([...h.seen].sort(), names, `UDP over ${what}: the client container heard every backend (${h.tries} datagrams)`);
    }
    const host = udpClient(t, 'host');
    const fromHost = await heard(() => host.fresh(udp4, 53), names, 60);
    t.same([...fromHost.seen].sort(), names, `UDP from the host: every backend (${fromHost.tries} datagrams)`);

    // The host reaching an IPv6 VIP (TCP).
    const host6 = await heard(() => hostGet(web6, 80), names, 60);
    t.same([...host6.seen].sort(), names, `the host reached every backend through the IPv6 VIP [${web6}]:80 (${host6.tries} connections)`);

    // One UDP flow (a fixed source port) sticks to its backend X while X lives...
    const x = await c.sticky(udp4, 53);
    t.ok(names.includes(x), `the flow went to ${x}`);
    const again = new Set<string>();
    for (let i = 0; i < 5; i++) again.add(await c.sticky(udp4, 53));
    t.same([...again], [x], 'conntrack keeps the flow on its backend');
    // ... and X's endpoint deleted, its next datagram goes to another backend.
    const gone = backends[names.indexOf(x)]!;
    const del = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: gone.containerId, ifname: gone.ifname, netns: gone.ns.path, env });
    t.equal(del.code, 0, `DEL ${x}: ${del.stderr}`);
    const t0 = performance.now();
    await pollUntil(() => /flows to gone VIP backends forgotten/.test(vx.log()), { timeoutMs: 10_000, intervalMs: 5, what: 'vxnetd to forget the flows' });
    t.comment(`DEL returned -> the flows of ${x} forgotten: ${(performance.now() - t0).toFixed(0)} ms`);
    const next = await c.sticky(udp4, 53);
    t.ok(names.includes(next) && next !== x, `the same flow's next datagram reached ${next}, not the deleted ${x}`);
    const ct = await exec('conntrack', ['-L', '-p', 'udp', '--orig-dst', udp4]);
    t.notMatch(ct.stdout, new RegExp(`src=${gone.add.json!.ips[0].address.split('/')[0].replace(/\./g, '\\.')} `), 'no conntrack entry to the VIP answered by the deleted address');
    await vx.stop();
  });
}
