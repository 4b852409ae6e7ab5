// The built dist/bin/vxnetd with --store: the overlay agent runs next to the Docker driver.
// vxnetd runs inside a host namespace of the multi-host harness (`ip netns exec`, which execs it
// in place, so the pid we hold is vxnetd's), with --no-docker, a vxt-prefixed plugin socket
// and temp data and overlay directories; etcd runs on the underlay. Checked: etcd down at start
// is not fatal (the Docker driver answers, the agent retries), the host registers once etcd is
// back (seen by the built vxnetctl hosts, run on the underlay), the local overlay state appears,
// the VXLAN device exists in the host namespace, and SIGTERM revokes the lease. Root only.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { readLocalState } from '../../overlay/local';
import { vxlanDeviceName } from '../../overlay/plan';
import { ETCD, startEtcd } from '../helpers/etcd';
import { exec, mustExec, pollUntil } from '../helpers/sh';
import { cannotRun, newUnderlay, shown } from './helpers/hosts';

const root = path.resolve(__dirname, '..', '..');
const VXNETD = path.join(root, 'dist', 'bin', 'vxnetd');
const VXNETCTL = path.join(root, 'dist', 'bin', 'vxnetctl');
const VNI = 4747;

/** POST /Plugin.Activate on the plugin socket: what Docker asks first. */
function activate(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: '/Plugin.Activate', method: 'POST', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { body += b.toString(); });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end('{}');
  });
}

interface HostsDoc { hosts: Array<{ id: string; underlay: string; networks: Array<{ network: string; blocks: string[] }> }> }

async function main(t: Test): Promise<void> {
  t.setTimeout(90_000);
  const underlay = await newUnderlay(t, 1500);
  await mustExec('ip', ['-n', underlay.ns.name, 'addr', 'add', '10.238.0.1/24', 'dev', 'vxtul']);
  const etcd = await startEtcd(t, { netns: [underlay.ns.name], hosts: ['10.238.0.1'] });
  const host = await underlay.addHost(1);
  await mustExec('ip', ['-n', host.ns.name, 'route', 'add', 'default', 'via', '10.238.0.1']);
  const dir = mkdtempSync(path.join(tmpdir(), 'vxt-vxnetd-overlay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = `/run/docker/plugins/vxt${randomBytes(4).toString('hex')}.sock`;
  t.teardown(() => rmSync(socket, { force: true }));
  const overlayDir = path.join(dir, 'overlay');

  // etcd down when vxnetd starts.
  await etcd.kill(0);
  const child = spawn('ip', ['netns', 'exec', host.ns.name, VXNETD, '--no-docker', '--no-dns', '--no-vip', '--socket', socket, '--cni-socket', '', '--data-dir', path.join(dir, 'data'),
    '--store', etcd.storeUrl, '--overlay-network', `vxt-ovd,vni=${VNI},subnet=10.232.0.0/16,block=24`, '--host-id', 'vxt-d1',
    '--lease-ttl', '5', '--overlay-dir', overlayDir, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const alive = (): void => { if (child.exitCode !== null) throw new Error(`vxnetd exited ${child.exitCode}: ${log}`); };

  const hosts = async (): Promise<HostsDoc | undefined> => {
    const r = await exec('ip', ['netns', 'exec', underlay.ns.name, VXNETCTL, 'hosts', '--json', '--store', etcd.storeUrl]);
    return r.code === 0 ? JSON.parse(r.stdout) as HostsDoc : undefined;
  };

  await t.test('etcd down at start: the Docker driver serves, the agent retries', async (t) => {
    await pollUntil(() => { alive(); return log.includes('"vxnetd listening"'); }, { timeoutMs: 10_000, what: 'vxnetd listening' });
    t.match(JSON.parse(await activate(socket)), { Implements: ['NetworkDriver', 'IpamDriver'] }, 'Plugin.Activate answers');
    await pollUntil(() => { alive(); return log.includes('overlay agent cannot start; retrying'); }, { timeoutMs: 20_000, what: 'a failed start logged' });
    t.pass('the failed start is logged, vxnetd runs on');
  });

  await t.test('etcd back: the host registers, its overlay state and device appear', async (t) => {
    await etcd.restart(0);
    const doc = await pollUntil(async () => {
      alive();
      const d = await hosts();
      return d && d.hosts.length === 1 ? d : undefined;
    }, { timeoutMs: 40_000, intervalMs: 200, what: 'vxt-d1 listed by vxnetctl hosts' });
    t.match(doc.hosts[0], { id: 'vxt-d1', underlay: host.underlay, networks: [{ network: 'vxt-ovd', blocks: ['10.232.0.0/24'] }] },
      'underlay from the default route, the first block');
    t.match(readLocalState(overlayDir, 'vxt-ovd'), { hostId: 'vxt-d1', vni: VNI, device: vxlanDeviceName(VNI) }, 'local state in --overlay-dir');
    t.ok((await shown(host.ns, ['link', 'show', vxlanDeviceName(VNI)])).length > 0, 'the VXLAN device exists in the host namespace');
    t.match(log, /"overlay agent running"/);
  });

  await t.test('SIGTERM: the lease is revoked and vxnetd exits 0', async (t) => {
    child.kill('SIGTERM');
    await pollUntil(() => child.exitCode !== null || child.signalCode !== null, { timeoutMs: 15_000, what: 'vxnetd exits' });
    t.equal(child.exitCode, 0, 'clean exit');
    t.match(log, /"overlay agent stopped; lease revoked"/);
    const doc = await hosts();
    t.same(doc?.hosts, [], 'gone from the store at once, not after the TTL');
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`)
    ?? (existsSync(VXNETD) && existsSync(VXNETCTL) ? undefined : 'needs a build (npm run build)');
  if (reason) t.plan(0, reason);
  else await t.test('vxnetd --store runs the overlay agent beside the Docker driver', main);
})();
