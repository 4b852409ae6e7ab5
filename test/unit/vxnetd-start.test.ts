// bin/vxnetd/compose.ts: vxnetd's services started from typed flags, in a temp dir (no Docker, no
// etcd): both sockets answer once started; stop() takes them down in reverse; a service that
// cannot start (its socket served by another process) stops the ones started before it, so
// vxnetd leaves no socket behind.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type VxnetdConfig, parseVxnetdArgs } from '../../bin/vxnetd/flags';
import { startVxnetd } from '../../bin/vxnetd/compose';
import { createLogger } from '../../lib/log';

interface Line { msg: string; service?: string }

function setup(t: Test): { dir: string; lines: Line[]; log: ReturnType<typeof createLogger>; argv: string[] } {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-vxnetd-start-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const lines: Line[] = [];
  const log = createLogger('vxnetd', 'info', (l) => { lines.push(JSON.parse(l) as Line); });
  const argv = ['--no-docker', '--no-dns', '--no-vip', '--http-listen', '', '--socket', join(dir, 'p', 'vxt.sock'), '--cni-socket', join(dir, 'cni.sock'), '--data-dir', join(dir, 'data'), '--overlay-dir', join(dir, 'ov')];
  return { dir, lines, log, argv };
}

function config(argv: string[]): VxnetdConfig {
  const inv = parseVxnetdArgs(argv, {});
  if (inv.action !== 'run') throw new Error(inv.action);
  return inv.config;
}

const activate = (socketPath: string): Promise<number> => new Promise((resolve, reject) => {
  const req = http.request({ socketPath, path: '/Plugin.Activate', method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
  req.on('error', reject);
  req.end();
});

const connects = (socketPath: string): Promise<boolean> => new Promise((resolve) => {
  const c = net.connect(socketPath);
  c.once('connect', () => { c.destroy(); resolve(true); });
  c.once('error', () => resolve(false));
});

t.test('starts the services in order, stops them in reverse', async (t) => {
  const { dir, lines, log, argv } = setup(t);
  const vxnetd = await startVxnetd(config(argv), { log });
  t.teardown(() => vxnetd.stop());
  t.equal(await activate(join(dir, 'p', 'vxt.sock')), 200, 'the Docker plugin answers');
  t.ok(await connects(join(dir, 'cni.sock')), 'the CNI hand-off listens');
  t.equal(vxnetd.overlay, undefined, 'no --store: no overlay agent');
  await vxnetd.stop();
  const events = lines.filter((l) => l.msg === 'started' || l.msg === 'stopped').map((l) => `${l.msg} ${l.service}`);
  t.same(events, ['started ipam store', 'started docker plugin', 'started cni hand-off', 'started operator labels', 'started endpoints',
    'stopped endpoints', 'stopped operator labels', 'stopped cni hand-off', 'stopped docker plugin', 'stopped ipam store']);
  t.ok(lines.findIndex((l) => l.msg === 'vxnetd listening') > lines.findIndex((l) => l.msg === 'started' && l.service === 'cni hand-off'), '"vxnetd listening" once all have started');
  t.notOk(fs.existsSync(join(dir, 'p', 'vxt.sock')) || fs.existsSync(join(dir, 'cni.sock')), 'both sockets gone');
});

t.test('a service that cannot start: the ones before it are stopped, its error thrown', async (t) => {
  const { dir, lines, log, argv } = setup(t);
  const other = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => other.listen(join(dir, 'cni.sock'), r));
  t.teardown(() => new Promise<void>((r) => other.close(() => r())));
  await t.rejects(startVxnetd(config(argv), { log }), { name: 'IoFailure', message: /another process serves .*cni\.sock/ });
  const events = lines.filter((l) => /^(started|stopped|start failed)$/.test(l.msg)).map((l) => `${l.msg} ${l.service}`);
  t.same(events, ['started ipam store', 'started docker plugin', 'start failed cni hand-off', 'stopped docker plugin', 'stopped ipam store']);
  t.notOk(fs.existsSync(join(dir, 'p', 'vxt.sock')), 'the Docker plugin socket is gone');
  t.notOk(lines.some((l) => l.msg === 'vxnetd listening'));
});
