// vxnetd's /metrics (issue 15), end to end against the built vxnetd (the plugin hands off only to
// its own build): real CNI ADD/DEL/CHECK handed off by the real vxnet plugin, real DNS queries
// with `dig` (zone names, a name forwarded to two stub upstreams of which one answers SERVFAIL),
// then a scrape of GET /metrics, read by a strict exposition parser (test/helpers/prom-text.ts),
// asserting that the figures moved by what happened: allocations and releases by network and
// runtime, CNI call latency counts by command and result code, DNS queries by type and rcode,
// forwarded latency, upstream failures by upstream, pool and block usage, process metrics.
// Root only; vxt-prefixed everything (newNet's bridge, nft table, namespaces).
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { exec, pollUntil } from '../helpers/netns';
import { startStub } from '../dns/helpers/stub';
import { type PromFamily, parsePromText, sampleSum, sampleValue } from '../helpers/prom-text';
import { attach, cannotRun, DIST_BIN, newNet, runPlugin, VXNET } from './helpers/cni';

const reason = cannotRun();
if (reason) t.plan(0, reason);
else { t.setTimeout(180_000); main(); }

const DNS_PORT = 10_000 + Math.floor(Math.random() * 20_000);
const HTTP_PORT = DNS_PORT + 1;

async function vxnetd(t: Test, dir: string, dataDir: string, upstreams: readonly number[]): Promise<void> {
  const child = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--no-vip', '--socket', join(dir, 'vxt.sock'), '--cni-socket', join(dir, 'cni.sock'),
    '--data-dir', dataDir, '--overlay-dir', join(dir, 'ov'), '--dns-state', join(dir, 'dns.json'), '--dns-listen', `127.0.0.1:${DNS_PORT}`,
    ...upstreams.flatMap((p) => ['--dns-upstream', `127.0.0.1:${p}`]), '--http-listen', `127.0.0.1:${HTTP_PORT}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await exited; } });
  await pollUntil(async () => {
    if (child.exitCode !== null) throw new Error(`vxnetd exited: ${log}`);
    return fetch(`http://127.0.0.1:${HTTP_PORT}/v1/version`).then((r) => r.ok, () => false);
  }, { timeoutMs: 20_000, intervalMs: 20, what: 'vxnetd to answer' });
}

async function scrape(t: Test): Promise<Map<string, PromFamily>> {
  const r = await fetch(`http://127.0.0.1:${HTTP_PORT}/metrics`);
  t.equal(r.status, 200, 'GET /metrics: 200');
  t.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/, 'the text format\'s content type');
  return parsePromText(await r.text()); // throws on anything malformed
}

async function dig(name: string, type: string): Promise<string> {
  const r = await exec('dig', [`@127.0.0.1`, '-p', String(DNS_PORT), name, type, '+tries=1', '+time=3', '+nocookie', '+noall', '+comments']);
  return /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? `no answer: ${r.stdout}${r.stderr}`;
}

function main(): void {
  t.test('CNI calls and DNS queries move vxnetd\'s metrics', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-metrics-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const good = await startStub(t, 'answer');
    const bad = await startStub(t, 'servfail');
    const net = await newNet(t, { dual: true });
    await vxnetd(t, dir, net.dataDir, [good.port, bad.port]);
    const env = { VXNET_CNI_SOCKET: join(dir, 'cni.sock') };

    const before = await scrape(t);
    t.equal(sampleSum(before, 'vxnet_ipam_allocations_total'), 0, 'no allocations yet');
    t.ok(sampleValue(before, 'process_resident_memory_bytes') !== undefined, 'process metrics (collectDefaultMetrics)');
    t.equal(sampleValue(before, 'vxnet_build_info'), 1, 'vxnet_build_info');

    // Two containers (IPv4 and IPv6 each), one deleted again, one CHECK without a prevResult (an error: code 7).
    const web = await attach(t, net, { env, args: 'K8S_POD_NAME=web-0' });
    const other = await attach(t, net, { env, args: 'K8S_POD_NAME=other-0' });
    const del = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: other.containerId, ifname: other.ifname, netns: other.ns.path, env });
    t.equal(del.code, 0, `DEL: ${del.stdout}${del.stderr}`);
    const check = await runPlugin(VXNET, net.conf(), { command: 'CHECK', containerId: web.containerId, ifname: web.ifname, netns: web.ns.path, env });
    t.equal(check.json?.code, 7, 'CHECK without prevResult fails with code 7');

    // DNS: zone answers (A, AAAA, SRV none: NOERROR without records is fine), NXDOMAIN, a forwarded name.
    await pollUntil(async () => (await dig('web-0.vxnet', 'A')) === 'NOERROR', { timeoutMs: 5000, intervalMs: 20, what: 'web-0 in DNS' });
    const statuses = [await dig('web-0.vxnet', 'A'), await dig('web-0.vxnet', 'AAAA'), await dig('nobody.vxnet', 'A'), await dig('nobody.vxnet', 'A'), await dig('elsewhere.example', 'A')];
    t.same(statuses, ['NOERROR', 'NOERROR', 'NXDOMAIN', 'NXDOMAIN', 'NOERROR'], 'dig answers as expected');

    const after = await scrape(t);
    const delta = (name: string, labels: Record<string, string> = {}): number => sampleSum(after, name, labels) - sampleSum(before, name, labels);
    t.equal(delta('vxnet_ipam_allocations_total', { network: net.name, runtime: 'cni' }), 4, 'allocations: 2 containers x (IPv4 + IPv6), runtime cni');
    t.equal(delta('vxnet_ipam_releases_total', { network: net.name, runtime: 'cni' }), 2, 'releases: the deleted container\'s two addresses');
    t.equal(delta('vxnet_cni_call_duration_seconds_count', { command: 'ADD', code: '0' }), 2, 'CNI latency: two ADDs, code 0');
    t.equal(delta('vxnet_cni_call_duration_seconds_count', { command: 'DEL', code: '0' }), 1, 'one DEL, code 0');
    t.equal(delta('vxnet_cni_call_duration_seconds_count', { command: 'CHECK', code: '7' }), 1, 'one CHECK, code 7');
    t.ok(delta('vxnet_cni_call_duration_seconds_sum', { command: 'ADD', code: '0' }) > 0, 'ADD took some time');
    t.ok(delta('vxnet_dns_queries_total', { type: 'A', rcode: 'NOERROR' }) >= 3, 'DNS queries: A NOERROR (web-0 twice at least, the forwarded name)');
    t.equal(delta('vxnet_dns_queries_total', { type: 'AAAA', rcode: 'NOERROR' }), 1, 'AAAA NOERROR once');
    t.equal(delta('vxnet_dns_queries_total', { type: 'A', rcode: 'NXDOMAIN' }), 2, 'A NXDOMAIN twice');
    t.equal(delta('vxnet_dns_forwarded_duration_seconds_count'), 1, 'one answer through the upstreams, timed');
    t.equal(delta('vxnet_dns_upstream_queries_total', { upstream: `127.0.0.1:${good.port}` }), 1, 'the answering upstream asked once');
    t.equal(delta('vxnet_dns_upstream_failures_total', { upstream: `127.0.0.1:${bad.port}` }), 1, 'the SERVFAIL upstream: one failure');
    t.equal(delta('vxnet_dns_upstream_failures_total', { upstream: `127.0.0.1:${good.port}` }), 0, 'the good one: none');
    const v4Size = 253; // 10.239.n.0/24 without network, gateway and broadcast
    t.equal(sampleValue(after, 'vxnet_ipam_pool_used_addresses', { network: net.name }), 2, 'pool used: the live container\'s two addresses');
    t.equal(sampleValue(after, 'vxnet_ipam_block_size_addresses', { network: net.name, block: net.v4 }), v4Size, 'the IPv4 block\'s size');
    t.equal(sampleValue(after, 'vxnet_ipam_block_used_addresses', { network: net.name, block: net.v4 }), 1, 'IPv4 block: one used');
    t.equal(sampleValue(after, 'vxnet_ipam_block_free_addresses', { network: net.name, block: net.v4 }), v4Size - 1, 'IPv4 block: the rest free');
    const size = sampleValue(after, 'vxnet_ipam_pool_size_addresses', { network: net.name }) ?? 0;
    t.equal(sampleValue(after, 'vxnet_ipam_pool_free_addresses', { network: net.name }), size - 2, 'pool free = size - used');
    t.ok(size > 2 ** 60, 'the pool\'s size counts the IPv6 range too');
    t.equal(after.get('vxnet_cni_call_duration_seconds')?.type, 'histogram');
    t.equal(after.get('vxnet_dns_queries_total')?.type, 'counter');
  });
}
