// The edge tests' pieces: a catalog feed served through the real stream handler
// (catalog/stream.ts, as vxnetd mounts it), HTTP and TCP backends on loopback, the built
// vxnet-lb started against them (and stopped, with its HAProxy, by pid), HTTP requests with a
// Host header, and HAProxy's master CLI.
import * as http from 'node:http';
import * as net from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Test } from 'tap';
import { EndpointCatalog } from '../../../catalog/catalog';
import type { Endpoint } from '../../../catalog/endpoint';
import { watchHandler } from '../../../catalog/stream';
import { cliCommand, parseShowProc, type ProcInfo } from '../../../edge/haproxy';
import { pollUntil } from '../../helpers/sh';
import { copyDist } from '../../helpers/dist';

export const listen = (s: net.Server, host = '127.0.0.1'): Promise<number> =>
  new Promise((resolve, reject) => { s.once('error', reject); s.listen(0, host, () => resolve((s.address() as net.AddressInfo).port)); });

/** A port free now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  const p = await listen(s);
  await new Promise((r) => s.close(r));
  return p;
}

/** An in-test catalog served as vxnetd serves its own: GET /v1/endpoints?watch=1. */
export async function feedServer(t: Test): Promise<{ catalog: EndpointCatalog; url: string }> {
  const catalog = new EndpointCatalog();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const app = express();
  app.get('/v1/endpoints', watchHandler(catalog, 500));
  app.get('/v1/version', (_req, res) => { res.json({ Service: 'test feed' }); });
  const s = http.createServer(app);
  const port = await listen(s);
  t.teardown(() => { s.closeAllConnections(); s.close(); });
  return { catalog, url: `http://127.0.0.1:${port}` };
}

export interface Backend { name: string; port: number; hits: number; delayMs: number }

/** An HTTP server on 127.0.0.1 answering `NAME PATH`, after delayMs. */
export async function httpBackend(t: Test, name: string): Promise<Backend> {
  const b: Backend = { name, port: 0, hits: 0, delayMs: 0 };
  const s = http.createServer((req, res) => {
    b.hits++;
    setTimeout(() => res.end(`${name} ${req.url}`), b.delayMs);
  });
  b.port = await listen(s);
  t.teardown(() => { s.closeAllConnections(); s.close(); });
  return b;
}

/** A TCP server that answers `NAME:` + what it got, per chunk. */
export async function tcpBackend(t: Test, name: string): Promise<number> {
  const socks = new Set<net.Socket>();
  const s = net.createServer((c) => { socks.add(c); c.on('data', (d) => c.write(`${name}:${d.toString()}`)); c.on('close', () => socks.delete(c)); c.on('error', () => {}); });
  const port = await listen(s);
  t.teardown(() => { for (const c of socks) c.destroy(); s.close(); });
  return port;
}

export const endpoint = (c: string, port: number, labels: Record<string, string>, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `h1/blue/${c}`, host: 'h1', runtime: 'cni', containerId: c, network: 'blue', name: c, aliases: [],
  addresses: ['127.0.0.1'], labels, ports: [{ port, protocol: 'tcp' }], ...more,
});

/** GET http://127.0.0.1:PORT/PATH with a Host header: status and body (status 0: no answer). */
export function get(port: number, host: string, path = '/', timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
  });
}

/** One TCP exchange: connect, send, first answer. */
export function tcpAsk(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(text));
    c.setTimeout(3000, () => { c.destroy(); resolve(''); });
    c.once('data', (d) => { resolve(d.toString()); c.destroy(); });
    c.on('error', () => resolve(''));
  });
}

export interface Lb {
  dir: string;
  child: ChildProcess;
  log(): string;
  proc(): Promise<ProcInfo | undefined>;
  masterPid(): number | undefined;
  /** SIGKILL vxnet-lb alone (its HAProxy keeps running). */
  kill(): Promise<void>;
  /** SIGTERM: vxnet-lb stops, and HAProxy with it. */
  stop(): Promise<void>;
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

/** The built vxnet-lb (a private copy of dist/), started on `api`; waits for its HAProxy. */
export async function startLb(t: Test, o: { api: string | undefined; httpPort: number; dir?: string; args?: string[] }): Promise<Lb> {
  const dist = await copyDist(t, ['bin/vxnet-lb']);
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'vxt-lb-'));
  if (!o.dir) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn(join(dist, 'bin', 'vxnet-lb'), [...(o.api ? ['--api', o.api] : []), '--dir', dir, '--http-port', String(o.httpPort), '--http-bind', '127.0.0.1',
    // No listener on the default 127.0.0.1:9091 unless a test asks (o.args come last and win).
    '--min-slots', '4', '--drain-timeout', '5', '--log-level', 'info', '--metrics-listen', 'none', ...(o.args ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => { log += d; });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const masterPid = (): number | undefined => {
    try { return Number(readFileSync(join(dir, 'haproxy.pid'), 'utf8').trim()) || undefined; } catch { return undefined; }
  };
  // Whatever happens: vxnet-lb and the HAProxy it started end with the test (by pid).
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; }
    const pid = masterPid();
    if (pid && alive(pid)) {
      process.kill(pid, 'SIGKILL');
      await pollUntil(() => !alive(pid), { timeoutMs: 5000, what: 'HAProxy to end' }).catch(() => undefined);
    }
  });
  const lb: Lb = {
    dir, child, log: () => log, masterPid,
    // The master CLI is away for a moment while the master re-executes itself for a reload.
    proc: () => pollUntil(async () => parseShowProc(await cliCommand(join(dir, 'master.sock'), 'show proc', 2000)), { timeoutMs: 5000, intervalMs: 20, what: 'HAProxy\'s master CLI' }),
    kill: async () => { child.kill('SIGKILL'); await exited; },
    stop: async () => { child.kill('SIGTERM'); await exited; },
  };
  await pollUntil(async () => {
    if (child.exitCode !== null) throw new Error(`vxnet-lb exited ${child.exitCode}: ${log}`);
    return existsSync(join(dir, 'master.sock')) && parseShowProc(await cliCommand(join(dir, 'master.sock'), 'show proc', 2000))?.workers.length ? true : undefined;
  }, { timeoutMs: 20_000, intervalMs: 50, what: 'vxnet-lb and its HAProxy to run' });
  return lb;
}

/** The bodies of n requests (each on a new connection). */
export async function bodies(port: number, host: string, n: number, path = '/'): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await get(port, host, path)).body);
  return out;
}
