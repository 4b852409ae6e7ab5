// vxnetd's operator API (api/) on the built vxnetd (dist/), against real CNI ADDs and DELs by
// the built vxnet plugin: the API shows the allocations and endpoints, answers "who had this
// address at T", releases and collects through the same code as vxnetctl, takes operator
// labels, pushes change events; `vxnetctl --api URL` prints what local vxnetctl prints. Then
// safety: a non-loopback listener refused without TLS and a token, bad certificate files a
// clear start error, HTTPS with a CA made by openssl, token missing/wrong/right, an oversized
// body, a client that sends half a header: each refused, vxnetd answering on. Every answer
// checked is validated against the OpenAPI document vxnetd serves. Root only; vxt-prefixed.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as http from 'node:http';
import * as tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, linkExists, pollUntil } from '../helpers/netns';
import { type Doc, responseSchema, validate } from '../helpers/openapi';
import { attach, bare, cannotRun, DIST_BIN, hostVethName, newNet, resultAddrs, runPlugin, VXNET } from './helpers/cni';

const reason = cannotRun();
if (reason) t.plan(0, reason);
else { t.setTimeout(240_000); main(); }

const basePort = 20_000 + Math.floor(Math.random() * 20_000);
let nextPort = 0;
const port = (): number => basePort + (nextPort++);

interface Daemon { child: ChildProcess; log: () => string; stop(): Promise<void> }

function spawnVxnetd(t: Test, dir: string, dataDir: string, args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; log: () => string; exited: Promise<number | null> } {
  const child = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--no-vip', '--no-dns', '--socket', join(dir, 'vxt.sock'), '--cni-socket', '',
    '--data-dir', dataDir, '--overlay-dir', join(dir, 'ov'), '--log-level', 'warn', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH, ...env } });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; } });
  return { child, log: () => log, exited };
}

async function vxnetd(t: Test, dir: string, dataDir: string, args: string[], ready: () => Promise<boolean>, env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const d = spawnVxnetd(t, dir, dataDir, args, env);
  await pollUntil(async () => {
    if (d.child.exitCode !== null) throw new Error(`vxnetd exited: ${d.log()}`);
    return ready().catch(() => false);
  }, { timeoutMs: 20_000, intervalMs: 50, what: 'vxnetd to answer' });
  return { child: d.child, log: d.log, stop: async () => { d.child.kill('SIGTERM'); await d.exited; } };
}

/** The built vxnetctl, with env (no inherited VXNET_*). */
async function vxnetctl(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await exec(join(DIST_BIN, 'vxnetctl'), args, { env: { PATH: process.env.PATH ?? '', ...env } });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

function main(): void {
  t.test('real CNI attachments through the API; history; mutations; events; vxnetctl --api', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-api-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const net = await newNet(t);
    const p = port();
    const base = `http://127.0.0.1:${p}`;
    const get = async (path: string): Promise<any> => {
      const r = await fetch(base + path);
      if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
      return r.json();
    };
    await vxnetd(t, dir, net.dataDir, ['--api-listen', `127.0.0.1:${p}`], async () => (await fetch(`${base}/api/v1/summary`)).ok);
    const doc = await get('/api/openapi.json') as Doc;
    const check = (path: string, body: unknown, method = 'get'): void => {
      t.same(validate(doc, responseSchema(doc, path, method), body), [], `${method.toUpperCase()} ${path}: the answer validates against the served document`);
    };

    const web = await attach(t, net, { args: 'K8S_POD_NAME=web-0' });
    const db = await attach(t, net, { args: 'K8S_POD_NAME=db-0' });
    const webAddr = bare(resultAddrs(web.add.json)[0]);
    const dbAddr = bare(resultAddrs(db.add.json)[0]);
    let body = await get(`/api/v1/allocations?network=${net.name}`);
    check('/api/v1/allocations', body);
    t.same(body.allocations.map((a: any) => [a.address, a.name, a.containerId, a.runtime]).sort(),
      [[webAddr, 'web-0', web.containerId, 'cni'], [dbAddr, 'db-0', db.containerId, 'cni']].sort(), 'both ADDs are in /allocations at once');
    t.same((await get('/api/v1/allocations?q=web')).allocations.map((a: any) => a.address), [webAddr], 'q= finds by name');
    body = await pollUntil(async () => { const b = await get('/api/v1/endpoints'); return b.endpoints.length === 2 && b; }, { timeoutMs: 10_000, intervalMs: 100, what: 'both endpoints in the catalog' });
    check('/api/v1/endpoints', body);
    t.same(body.endpoints.map((e: any) => e.name).sort(), ['db-0', 'web-0']);
    body = await get('/api/v1/networks');
    check('/api/v1/networks', body);
    t.match(body.networks.find((n: any) => n.name === net.name), { mode: 'bridge', subnets: [net.v4], used: 2 }, 'the network with its use');
    body = await get('/api/v1/summary');
    check('/api/v1/summary', body);
    t.match(body, { store: 'embedded', allocations: 2, endpoints: 2, hosts: 1 });
    for (const path of ['/api/v1/hosts', '/api/v1/blocks', '/api/v1/dns/records', '/api/v1/vips', '/api/v1/edge/routes']) check(path, await get(path));

    // Events: an ADD is announced (allocations; endpoints once the catalog has it).
    const events: string[] = [];
    const ac = new AbortController();
    t.teardown(() => ac.abort());
    const stream = await fetch(`${base}/api/v1/events`, { signal: ac.signal });
    t.equal(stream.headers.get('content-type'), 'text/event-stream');
    void (async () => {
      try {
        const reader = stream.body!.getReader();
        for (;;) { const { value, done } = await reader.read(); if (done) break; events.push(Buffer.from(value).toString()); }
      } catch { /* aborted */ }
    })();
    await new Promise((r) => setTimeout(r, 1500)); // the poller's first fingerprint
    const t0 = Date.now();
    const tmp = await attach(t, net, { args: 'K8S_POD_NAME=tmp-0' });
    await pollUntil(async () => events.join('').includes('"resource":"allocations"') && events.join('').includes('"resource":"endpoints"'), { timeoutMs: 10_000, intervalMs: 50, what: 'change events' });
    t.pass(`change events for allocations and endpoints ${Date.now() - t0} ms after the ADD returned`);

    // History: web-0 leaves, its address goes to the next container; who had it then?
    const whileWeb = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    const del = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: web.containerId, ifname: 'eth0', netns: web.ns.path });
    t.equal(del.code, 0, 'DEL web-0');
    body = await get(`/api/v1/history?address=${webAddr}&at=${encodeURIComponent(whileWeb)}`);
    check('/api/v1/history', body);
    t.same([body.holder?.containerId, body.holder?.name], [web.containerId, 'web-0'], `who had ${webAddr} at ${whileWeb}: web-0`);
    t.same(body.events.slice(0, 2).map((e: any) => `${e.action} ${e.name} ${e.reason}`), ['release web-0 del', 'allocate web-0 null'], 'its release (reason del) and allocation, newest first');
    t.same((await get(`/api/v1/history?address=${webAddr}&at=${encodeURIComponent(new Date().toISOString())}`)).holder, null, 'nobody holds it now');

    // vxnetctl --api prints what local vxnetctl prints.
    const local = await vxnetctl(['ipam', 'ls', '--json', '--network', net.name, '--data-dir', net.dataDir]);
    const remote = await vxnetctl(['ipam', 'ls', '--json', '--network', net.name, '--api', base]);
    t.equal(remote.code, 0, remote.stderr);
    t.same(JSON.parse(remote.stdout).allocations, JSON.parse(local.stdout).allocations, 'ipam ls --json: the same allocations');
    const cols = (out: string): string[] => out.trim().split('\n').map((l) => l.split(/\s{2,}/).slice(0, 6).join('|'));
    const localTable = await vxnetctl(['ipam', 'ls', '--network', net.name, '--data-dir', net.dataDir]);
    const remoteTable = await vxnetctl(['ipam', 'ls', '--network', net.name], { VXNET_API: base });
    t.same(cols(remoteTable.stdout), cols(localTable.stdout), 'the table too ($VXNET_API), SINCE aside');
    const poolsLocal = await vxnetctl(['ipam', 'pools', '--json', '--network', net.name, '--data-dir', net.dataDir]);
    const poolsRemote = await vxnetctl(['ipam', 'pools', '--json', '--network', net.name, '--api', base]);
    t.equal(poolsRemote.code, 0, poolsRemote.stderr);
    t.same(JSON.parse(poolsRemote.stdout).pools, JSON.parse(poolsLocal.stdout).pools, 'ipam pools --json --api: the same pools, range sets and counts');
    t.equal(JSON.parse(poolsLocal.stdout).pools[0].used, 2, 'both containers counted');
    const poolsTable = await vxnetctl(['ipam', 'pools', '--network', net.name], { VXNET_API: base });
    t.equal(poolsTable.stdout, (await vxnetctl(['ipam', 'pools', '--network', net.name, '--data-dir', net.dataDir])).stdout, 'ipam pools: the same table ($VXNET_API)');
    const both = await vxnetctl(['ipam', 'pools', '--api', base, '--store', 'etcd://127.0.0.1:1']);
    t.same([both.code, both.stderr], [2, 'vxnetctl: give --store or --api, not both (see vxnetctl ipam pools --help)\n']);
    const noPool = await vxnetctl(['ipam', 'pools', '--network', 'vxt-none', '--api', base]);
    t.equal(noPool.stdout, `no network "vxt-none" in the IPAM store of ${base}\n`);
    const showLocal = JSON.parse((await vxnetctl(['ipam', 'show', webAddr, '--json', '--data-dir', net.dataDir])).stdout);
    const showRemote = JSON.parse((await vxnetctl(['ipam', 'show', webAddr, '--json', '--api', base])).stdout);
    t.same(showRemote.networks.map((n: any) => ({ ...n, hostVeth: null })), showLocal.networks.map((n: any) => ({ ...n, hostVeth: null })), 'ipam show: owner, subnets and history the same');

    // Mutations through vxnetctl --api: release db-0 by container (its host veth goes), gc.
    const dbVeth = hostVethName(db.containerId, 'eth0');
    t.ok(await linkExists(dbVeth), 'db-0\'s host veth before');
    const rel = await vxnetctl(['ipam', 'release', '--container', db.containerId.slice(0, 8), '--network', net.name, '--api', base]);
    t.equal(rel.code, 0, rel.stderr);
    t.match(rel.stdout, new RegExp(`released ${dbAddr.replace(/\./g, '\\.')} from container`), 'released, said as locally');
    t.notOk(await linkExists(dbVeth), 'and its host veth deleted by vxnetd');
    const again = await vxnetctl(['ipam', 'release', dbAddr, '--api', base]);
    t.same([again.code, again.stderr.trim()], [1, `vxnetctl: ${dbAddr} is not allocated in any network`], 'NotFound comes back as the local error');
    const gc = await vxnetctl(['ipam', 'gc', '--dry-run', '--json', '--api', base]);
    t.match(JSON.parse(gc.stdout), { dryRun: true, released: [] }, 'gc --dry-run through the API (every netns alive)');

    // Operator labels on tmp-0 through the API: the catalog picks them up.
    const lab = await vxnetctl(['endpoint', 'label', 'tmp-0', 'vxnet.service=cache', 'tier=back', '--api', base]);
    t.equal(lab.code, 0, lab.stderr);
    t.equal(lab.stdout, 'endpoint tmp-0: tier=back, vxnet.service=cache\n');
    const e = await pollUntil(async () => (await get('/api/v1/endpoints?name=tmp-0')).endpoints.find((x: any) => x.service === 'cache'), { timeoutMs: 10_000, intervalMs: 100, what: 'the label in the catalog' });
    t.same([e.labels.tier, e.containerId], ['back', tmp.containerId], 'the endpoint has them (vxnetd followed the labels file)');
  });

  t.test('safe by default: TLS, token, limits; vxnetd carries on', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-apitls-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const dataDir = join(dir, 'data');
    // Refused without TLS and a token on a non-loopback address.
    const p0 = port();
    let d = spawnVxnetd(t, dir, dataDir, ['--api-listen', `0.0.0.0:${p0}`]);
    t.equal(await d.exited, 2, 'a non-loopback listener without TLS and token: usage error');
    t.match(d.log(), /--api-listen "0\.0\.0\.0:\d+" is not a loopback address: the API then needs --api-cert FILE --api-key FILE \(TLS\) and --api-token-file FILE or \$VXNET_API_TOKEN/);

    // A CA, and a server certificate for 127.0.0.1 it signed.
    const ossl = async (args: string[]): Promise<void> => { const r = await exec('openssl', args, { cwd: dir }); if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`); };
    await ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=vxt test CA']);
    await ossl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    fs.writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    await ossl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'ext.cnf']);
    fs.writeFileSync(join(dir, 'token'), 'vxt-9f2c1e-token\n', { mode: 0o600 });
    fs.writeFileSync(join(dir, 'garbage.pem'), '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
    const tlsArgs = (cert: string, key: string): string[] => ['--api-cert', join(dir, cert), '--api-key', join(dir, key), '--api-token-file', join(dir, 'token')];

    d = spawnVxnetd(t, dir, dataDir, ['--api-listen', `0.0.0.0:${p0}`, ...tlsArgs('garbage.pem', 'server.key')]);
    t.equal(await d.exited, 1, 'a certificate that is not one: vxnetd does not start');
    t.match(d.log(), /--api-cert .*garbage\.pem \/ --api-key .*server\.key: not a usable certificate and key/, 'and says which files');
    d = spawnVxnetd(t, dir, dataDir, ['--api-listen', `0.0.0.0:${p0}`, ...tlsArgs('ca.pem', 'server.key')]);
    t.equal(await d.exited, 1, 'a certificate that does not match its key: vxnetd does not start');
    t.match(d.log(), /not a usable certificate and key.*(key values mismatch|KEY_VALUES_MISMATCH)/i);

    const p = port();
    const base = `https://127.0.0.1:${p}`;
    const ca = fs.readFileSync(join(dir, 'ca.pem'));
    const req = (path: string, o: { method?: string; token?: string; body?: Buffer; ca?: Buffer | null } = {}): Promise<{ status: number; body: any }> => new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
      if (o.body) { headers['content-type'] = 'application/json'; headers['content-length'] = String(o.body.length); }
      const r = https.request(`${base}${path}`, { method: o.method ?? 'GET', headers, ...(o.ca === null ? {} : { ca: o.ca ?? ca }) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => { try { resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }); } catch (e) { reject(e); } });
      });
      r.on('error', reject);
      r.end(o.body);
    });
    const vx = await vxnetd(t, dir, dataDir, ['--api-listen', `0.0.0.0:${p}`, ...tlsArgs('server.pem', 'server.key')],
      async () => (await req('/api/v1/summary', { token: 'vxt-9f2c1e-token' })).status === 200);
    const token = 'vxt-9f2c1e-token';
    let r = await req('/api/v1/summary');
    t.same([r.status, r.body.error?.code], [401, 'Unauthorized'], 'no token: 401');
    r = await req('/api/v1/summary', { token: 'vxt-9f2c1e-tokeN' });
    t.same([r.status, r.body.error?.message], [401, 'wrong bearer token'], 'a wrong token: 401');
    r = await req('/v1/vips', { token: 'nope' });
    t.equal(r.status, 401, 'the /v1 routes on the same listener too');
    r = await req('/api/v1/summary', { token });
    t.equal(r.status, 200, 'the right token over TLS: 200');
    await t.rejects(req('/api/v1/summary', { token, ca: null }), /self[- ]signed|unable to verify|certificate/i, 'a client not trusting the CA refuses the certificate');
    r = await req('/api/v1/gc', { method: 'POST', token, body: Buffer.alloc(100 * 1024, 0x20) });
    t.same([r.status, r.body.error?.code], [413, 'PayloadTooLarge'], '100 KiB body: 413');
    r = await req('/api/v1/gc', { method: 'POST', token, body: Buffer.from('{"dryRun": true}') });
    t.equal(r.status, 200, 'a mutation with the token');

    // A slow client: half a request head, then silence. The server closes it; others are served meanwhile.
    const slowStart = Date.now();
    const sock = tls.connect({ host: '127.0.0.1', port: p, ca, servername: undefined });
    await new Promise<void>((resolve, reject) => { sock.once('secureConnect', () => resolve()); sock.once('error', reject); });
    sock.write('GET /api/v1/summary HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz');
    let reply = '';
    sock.on('data', (b: Buffer) => { reply += b.toString(); });
    const closed = new Promise<number>((resolve) => sock.once('close', () => resolve(Date.now() - slowStart)));
    sock.on('error', () => undefined);
    r = await req('/api/v1/summary', { token });
    t.equal(r.status, 200, 'served while a slow client hangs on');
    const ms = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 25_000))]);
    t.ok(ms > 0 && ms < 20_000, `the slow client was cut off after ${ms} ms (headers timeout 10 s)`);
    t.match(reply, /^HTTP\/1\.1 408 /, 'with a 408');
    sock.destroy();

    // vxnetctl --api https with the CA and the token.
    const ctlOk = await vxnetctl(['ipam', 'ls', '--api', base, '--api-ca', join(dir, 'ca.pem'), '--api-token-file', join(dir, 'token')]);
    t.same([ctlOk.code, ctlOk.stdout], [0, 'no addresses allocated\n'], 'vxnetctl --api https with --api-ca and --api-token-file');
    const ctlEnv = await vxnetctl(['ipam', 'ls', '--json', '--api-ca', join(dir, 'ca.pem')], { VXNET_API: base, VXNET_API_TOKEN: token });
    t.equal(ctlEnv.code, 0, `$VXNET_API and $VXNET_API_TOKEN: ${ctlEnv.stderr}`);
    const noToken = await vxnetctl(['ipam', 'ls', '--api', base, '--api-ca', join(dir, 'ca.pem')]);
    t.same(noToken.code, 1);
    t.match(noToken.stderr, /this API needs a bearer token.*--api-token-file FILE or \$VXNET_API_TOKEN/, 'without a token: says how to give one');
    const noCa = await vxnetctl(['ipam', 'ls', '--api', base, '--api-token-file', join(dir, 'token')]);
    t.same(noCa.code, 1);
    t.match(noCa.stderr, /cannot reach vxnetd's API at https:.*--api-ca FILE trusts the operator's CA/, 'without the CA: says so');

    t.equal(vx.child.exitCode, null, 'vxnetd is still running after all of it');
    t.equal((await req('/api/v1/summary', { token })).status, 200, 'and answers');
    await vx.stop();
    t.equal(vx.child.exitCode, 0, 'and stops cleanly');
  });

  t.test('loopback without a token: reads open, mutations from loopback only', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-apilo-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const p = port();
    await vxnetd(t, dir, join(dir, 'data'), ['--api-listen', `127.0.0.1:${p}`], async () => (await fetch(`http://127.0.0.1:${p}/api/v1/summary`)).ok);
    const r = await fetch(`http://127.0.0.1:${p}/api/v1/gc`, { method: 'POST', body: '{}' });
    t.equal(r.status, 200, 'a mutation from loopback, no token configured');
    const stillHttp = await new Promise<number>((resolve) => http.get(`http://127.0.0.1:${p}/api/v1/summary`, (res) => { res.resume(); resolve(res.statusCode ?? 0); }));
    t.equal(stillHttp, 200);
  });
}
