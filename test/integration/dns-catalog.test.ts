// Names follow the truth, end to end: vxnetd (its catalog fed by its own IPAM store)
// takes the real vxnet CNI plugin's calls through its hand-off socket; a container ADDed with
// K8S_POD_NAME resolves as soon as the ADD returns and stops resolving once its DEL returns
// (both measured: p50/p99 over the samples, bound asserted generously, the figures in the
// comments); runtimeConfig.aliases, args.cni.labels (vxnet.service, vxnet.ports) and
// portMappings reach DNS (SRV) and the HTTP API (/v1/hosts, /v1/services, /v1/endpoints);
// `vxnetctl dns query` and `vxnetctl dns ls` answer from the same vxnetd; a restarted vxnetd
// answers for the live containers from its first query. vxnetd is the built one (dist/), as the
// plugin hands off only to its own build. Root only; vxt-prefixed everything.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { query } from '../../dns/client';
import { parseIp } from '../../ipam/addr';
import { exec, pollUntil } from '../helpers/netns';
import { attach, bare, cannotRun, DIST_BIN, newNet, runPlugin, VXNET, type Attached, type TestNet } from './helpers/cni';

const reason = cannotRun();
if (reason) t.plan(0, reason);
else { t.setTimeout(240_000); main(); }

const DNS_PORT = 10_000 + Math.floor(Math.random() * 20_000);
const HTTP_PORT = DNS_PORT + 1;
const server = { ip: parseIp('127.0.0.1')!, port: DNS_PORT };

interface Daemon { stop(): Promise<void> }

/** The built vxnetd (the plugin hands off only to a vxnetd of its own build), answering once its HTTP API does. */
async function vxnetd(t: Test, dir: string, net: TestNet): Promise<Daemon> {
  const child = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--no-vip', '--socket', join(dir, 'vxt.sock'), '--cni-socket', join(dir, 'cni.sock'),
    '--data-dir', net.dataDir, '--overlay-dir', join(dir, 'ov'), '--dns-state', join(dir, 'dns.json'), '--dns-listen', `127.0.0.1:${DNS_PORT}`,
    '--dns-upstream', '127.0.0.1:9', '--http-listen', `127.0.0.1:${HTTP_PORT}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; } });
  await pollUntil(async () => {
    if (child.exitCode !== null) throw new Error(`vxnetd exited: ${log}`);
    return fetch(`http://127.0.0.1:${HTTP_PORT}/v1/version`).then((r) => r.ok, () => false);
  }, { timeoutMs: 20_000, intervalMs: 20, what: 'vxnetd to answer' });
  return { stop: async () => { child.kill('SIGTERM'); await exited; } };
}

const a = async (name: string): Promise<{ rcode: string; addresses: string[] }> => {
  const r = await query(server, name, 'A', { timeoutMs: 1000 });
  return { rcode: r.rcode, addresses: r.answers.map((x) => String((x as { data?: unknown }).data)).sort() };
};

/** Milliseconds until check() holds, polling every 2 ms (bounded by 5 s). */
async function msUntil(check: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  await pollUntil(check, { timeoutMs: 5000, intervalMs: 2, what: 'the name to follow' });
  return performance.now() - t0;
}

const pct = (xs: number[], q: number): number => { const s = [...xs].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number; };

async function getJson(path: string): Promise<unknown> {
  const r = await fetch(`http://127.0.0.1:${HTTP_PORT}${path}`);
  return r.json();
}

function main(): void {
  t.test('CNI ADD/DEL through vxnetd: names, aliases, labels, ports, freshness, restart', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-dnscat-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const net = await newNet(t, { extra: { capabilities: { portMappings: true, aliases: true } } });
    let vx = await vxnetd(t, dir, net);
    const env = { VXNET_CNI_SOCKET: join(dir, 'cni.sock') };
    const del = async (c: Attached): Promise<void> => {
      const r = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: c.containerId, ifname: c.ifname, netns: c.ns.path, env });
      if (r.code !== 0) throw new Error(`DEL failed: ${r.stdout}${r.stderr}`);
    };

    // One named container with aliases, labels and port mappings.
    const web = await attach(t, net, {
      env, args: 'K8S_POD_NAME=web-0',
      conf: {
        runtimeConfig: { aliases: ['www'], portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }] },
        args: { cni: { labels: [{ key: 'vxnet.service', value: 'shop' }, { key: 'vxnet.ports', value: 'http=8080,9000/udp' }] } },
      },
    });
    const webIp = bare(web.add.json!.ips[0].address);
    t.same(await a(`web-0.vxnet`), { rcode: 'NOERROR', addresses: [webIp] }, 'the name resolves when the ADD has returned (after at most one refresh)');
    t.same((await a(`web-0.${net.name}.vxnet`)).addresses, [webIp], 'NAME.NETWORK.DOMAIN');
    t.same((await a('www.vxnet')).addresses, [webIp], 'an alias from runtimeConfig.aliases');
    t.same((await a('shop.vxnet')).addresses, [webIp], 'the service from args.cni.labels vxnet.service');
    const srv = await query(server, '_shop._tcp.vxnet', 'SRV', { timeoutMs: 1000 });
    t.same(srv.answers.map((x) => (x as { data?: unknown }).data), [{ priority: 0, weight: 1, port: 8080, target: 'web-0.vxnet' }], 'SRV from vxnet.ports');
    const named = await query(server, '_http._tcp.shop.vxnet', 'SRV', { timeoutMs: 1000 });
    t.equal(named.answers.length, 1, 'the named port has its own SRV');
    t.same(await getJson('/v1/hosts/web-0'), [{ host: 'web-0.vxnet.', ip: webIp }], 'the Mesos-DNS API answers the same');
    const eps = await getJson('/v1/endpoints') as Array<Record<string, unknown>>;
    t.match(eps.find((e) => e.name === 'web-0'), { network: net.name, runtime: 'cni', service: 'shop', labels: { 'vxnet.service': 'shop' } }, '/v1/endpoints lists it');

    // The built vxnetctl against the same vxnetd.
    const ctl = await exec(join(DIST_BIN, 'vxnetctl'), ['dns', 'query', 'web-0.vxnet', '--server', `127.0.0.1:${DNS_PORT}`, '--json']);
    t.equal(ctl.code, 0, `vxnetctl dns query: ${ctl.stderr}`);
    t.match(ctl.stdout, webIp, 'vxnetctl dns query answers the address');
    const ls = await exec(join(DIST_BIN, 'vxnetctl'), ['dns', 'ls', '--api', `http://127.0.0.1:${HTTP_PORT}`]);
    t.equal(ls.code, 0, `vxnetctl dns ls: ${ls.stderr}`);
    t.match(ls.stdout, /web-0/, 'vxnetctl dns ls lists it');

    // Freshness: ADD returned -> resolvable; DEL returned -> NXDOMAIN.
    const up: number[] = [];
    const down: number[] = [];
    const N = Number(process.env.VXT_N ?? 30);
    for (let i = 0; i < N; i++) {
      const name = `f-${i}`;
      const c = await attach(t, net, { env, args: `K8S_POD_NAME=${name}` });
      const ip = bare(c.add.json!.ips[0].address);
      up.push(await msUntil(async () => (await a(`${name}.vxnet`)).addresses[0] === ip));
      await del(c);
      down.push(await msUntil(async () => (await a(`${name}.vxnet`)).rcode === 'NXDOMAIN'));
    }
    t.comment(`ADD returned -> name resolves, ${N} containers: p50 ${pct(up, 0.5).toFixed(1)} ms, p99 ${pct(up, 0.99).toFixed(1)} ms`);
    t.comment(`DEL returned -> NXDOMAIN, ${N} containers: p50 ${pct(down, 0.5).toFixed(1)} ms, p99 ${pct(down, 0.99).toFixed(1)} ms`);
    // A bound, not a performance target (bench/ has the target): well under the 2 s rescan, so the hand-off's refresh did it.
    t.ok(pct(up, 0.99) < 1000, `resolvable well before the 2 s rescan (p99 ${pct(up, 0.99).toFixed(1)} ms)`);
    t.ok(pct(down, 0.99) < 1000, `gone well before the 2 s rescan (p99 ${pct(down, 0.99).toFixed(1)} ms)`);

    // Restart: the zone is rebuilt from the store before the port opens.
    await vx.stop();
    vx = await vxnetd(t, dir, net);
    t.same(await a('web-0.vxnet'), { rcode: 'NOERROR', addresses: [webIp] }, 'after a restart, the first query answers for the live container');

    await del(web);
    await pollUntil(async () => (await a('web-0.vxnet')).rcode === 'NXDOMAIN', { timeoutMs: 5000, intervalMs: 10, what: 'web-0 gone after DEL' });
    t.equal((await a('www.vxnet')).rcode, 'NXDOMAIN', 'its alias goes with it');
    t.equal((await a('shop.vxnet')).rcode, 'NXDOMAIN', 'and its service');
  });
}
