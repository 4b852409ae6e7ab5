// A host that finds every block of an overlay network taken, with nothing but the built
// binaries (as harness.test.ts): a network whose subnet has two blocks, two hosts holding them,
// a third host's vxnetd that waits. Checked: the third host's CNI ADD fails with what is true
// (no free block: how many, who holds them, when one may be reclaimable), vxnetd logs it,
// `vxnetctl hosts` (table and --json) shows the waiting host; when a holder's vxnetd is
// SIGKILLed, the waiting host gets its block within about a second after TTL + grace (measured
// from the kill and from the lease's expiry as a peer saw it), and its ADD then works.
// Root only; every object is vxt-prefixed or inside the test's namespaces.
import t, { type Test } from 'tap';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { formatCidr } from '../../ipam/addr';
import { readLocalState } from '../../overlay/local';
import { vxlanDeviceName } from '../../overlay/plan';
import { ETCD, startEtcd } from '../helpers/etcd';
import { newNetns } from '../helpers/netns';
import { mustExec, pollUntil } from '../helpers/sh';
import { type CniCall, type CniOutcome, bare, cniEnv, describe, newContainerId, resultAddrs, runInNetns } from '../integration/helpers/cni';
import { type Host, cannotRun, newUnderlay, shown } from './helpers/hosts';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = (name: string): string => path.join(ROOT, 'dist', 'bin', name);
const NET = 'vxt-ovn';
const VNI = 4849;
const DEV = vxlanDeviceName(VNI);
const SUBNET = '10.235.0.0/23';
const TTL = 3;
const GRACE = 6;

interface Node { id: string; host: Host; dir: string; vxnetd: ChildProcess; log: () => string }

const runIn = (ns: { name: string }, bin: string, args: string[], env: NodeJS.ProcessEnv, stdin?: unknown): Promise<CniOutcome> => runInNetns(ns, bin, args, env, stdin, 30_000);

/** The time of the first log line of `log` (vxnetd's JSON lines) that matches every pattern. */
function logTime(log: string, ...patterns: RegExp[]): number | undefined {
  const line = log.split('\n').find((l) => patterns.every((p) => p.test(l)));
  if (!line) return undefined;
  return Date.parse((JSON.parse(line) as { time: string }).time);
}

async function main(t: Test): Promise<void> {
  t.setTimeout(120_000);
  const root = t;
  const underlay = await newUnderlay(t, 1500);
  await mustExec('ip', ['-n', underlay.ns.name, 'addr', 'add', '10.238.0.1/24', 'dev', 'vxtul']);
  const etcd = await startEtcd(t, { netns: [underlay.ns.name], hosts: ['10.238.0.1'] });
  const tmp = mkdtempSync(path.join(tmpdir(), 'vxt-noblock-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const ctlEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  const ctl = (args: string[]): Promise<CniOutcome> => runIn(underlay.ns, BIN('vxnetctl'), [...args, '--store', etcd.storeUrl], ctlEnv);

  const def = await ctl(['network', 'create', NET, '--vni', String(VNI), '--subnet', SUBNET, '--block-prefix', '24']);
  t.equal(def.code, 0, `vxnetctl network create: ${def.stderr}`);

  const stateOf = (n: Node): ReturnType<typeof readLocalState> => readLocalState(path.join(n.dir, 'overlay'), NET);
  const startHost = async (i: number): Promise<Node> => {
    const host = await underlay.addHost(i);
    await mustExec('ip', ['-n', host.ns.name, 'route', 'add', 'default', 'via', '10.238.0.1']);
    const id = `vxt-n${i}`;
    const dir = path.join(tmp, id);
    const socket = `/run/docker/plugins/vxt${randomBytes(4).toString('hex')}.sock`;
    root.teardown(() => rmSync(socket, { force: true }));
    const vxnetd = spawn('ip', ['netns', 'exec', host.ns.name, BIN('vxnetd'), '--no-docker', '--no-dns', '--socket', socket, '--data-dir', path.join(dir, 'data'),
      '--store', etcd.storeUrl, '--overlay-network', NET, '--host-id', id, '--lease-ttl', String(TTL), '--block-grace', String(GRACE),
      '--overlay-dir', path.join(dir, 'overlay'), '--cni-socket', path.join(dir, 'cni.sock'), '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'], env: ctlEnv });
    root.teardown(() => { if (vxnetd.exitCode === null && vxnetd.signalCode === null) vxnetd.kill('SIGKILL'); });
    let log = '';
    vxnetd.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
    return { id, host, dir, vxnetd, log: () => log };
  };

  const add = (n: Node): Promise<CniOutcome> => newNetns(root).then((c) => {
    const conf = {
      cniVersion: '1.1.0', name: NET, type: 'vxnet', mode: 'overlay', natTable: 'vxtnat',
      overlayStateDir: path.join(n.dir, 'overlay'), ipam: { dataDir: path.join(n.dir, 'data') },
    };
    const call: CniCall = { command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: c.path };
    return runIn(n.host.ns, BIN('vxnet'), [], cniEnv({ ...call, env: { VXNET_CNI_SOCKET: path.join(n.dir, 'cni.sock') } }), conf);
  });

  const [n1, n2] = [await startHost(1), await startHost(2)];
  for (const n of [n1, n2]) {
    await pollUntil(() => stateOf(n)?.blocks.length === 1, { timeoutMs: 20_000, what: `${n.id}: a block` });
  }
  const held = new Map([n1, n2].map((n) => [n.id, formatCidr(stateOf(n)!.blocks[0])]));
  // The two vxnetds race for the blocks: holders are listed lowest block first, whoever got it.
  const byBlock = [...held].sort((a, b) => a[1].localeCompare(b[1])).map(([hostId, block]) => ({ hostId, block }));
  const esc = (x: string): string => x.replace(/[.()/]/g, (c) => `\\${c}`);
  const heldText = byBlock.map((h) => `${h.hostId} (${h.block}, alive)`).join(', ');
  const n3 = await startHost(3);

  await t.test('the third host: its ADD, its vxnetd\'s log and vxnetctl hosts say the subnet has no free block, and who holds it', async (t) => {
    const state = await pollUntil(() => stateOf(n3), { timeoutMs: 20_000, what: 'vxt-n3: overlay state written (no block)' });
    t.same(state.blocks, [], 'no block');
    t.same(state.noBlock && [formatCidr(state.noBlock.subnet), state.noBlock.blockPrefix, state.noBlock.blocks, state.noBlock.holders.map((h) => h.hostId)],
      [SUBNET, 24, 2, byBlock.map((h) => h.hostId)], 'the state says why');
    const r = await add(n3);
    t.equal(r.code, 1, 'ADD fails');
    const err = r.json as { code: number; msg: string } | undefined;
    t.equal(err?.code, 100, `PoolExhausted: both holders are alive (${describe(r)})`);
    t.match(err?.msg, new RegExp(`^network ${NET}: no free /24 block in 10\\.235\\.0\\.0/23 for host vxt-n3: both blocks are held \\(${esc(heldText)}\\); none becomes free`), 'says what is true, holders lowest block first');
    t.notMatch(err?.msg, /is vxnetd running/, 'not the "is vxnetd running" guess');
    t.match(n3.log(), /"level":"warn".*"msg":"no free block; waiting for one".*"no free \/24 block in 10\.235\.0\.0\/23 for host vxt-n3/, 'vxnetd logs it');

    const j = await ctl(['hosts', '--json', '--block-grace', String(GRACE)]);
    t.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as { waiting: Array<Record<string, unknown>> };
    t.match(doc.waiting, [{
      hostId: 'vxt-n3', network: NET, subnet: SUBNET, blockPrefix: 24, blocks: 2, nextReclaimableAt: null,
      holders: byBlock.map((h) => ({ ...h, state: 'held', reclaimableAt: null })),
    }], 'hosts --json: the waiting host');
    const text = await ctl(['hosts', '--block-grace', String(GRACE)]);
    t.equal(text.code, 0, text.stderr);
    t.match(text.stdout, /^vxt-n3\s+10\.238\.0\.13\s+vxt-ovn\s+-\s+-\s+none \(subnet full\)\s+alive \(ttl \d+s\)$/m, 'a row for the waiting host');
    t.match(text.stdout, new RegExp(`\\nvxt-n3 waits for a block of vxt-ovn: no free /24 block in 10\\.235\\.0\\.0/23: both blocks are held \\(${esc(heldText)}\\); `), 'and what it waits for');
  });

  await t.test(`a holder SIGKILLed: the waiting host gets its block within about a second after TTL (${TTL} s) + grace (${GRACE} s)`, async (t) => {
    const killed = Date.now();
    n2.vxnetd.kill('SIGKILL');
    // While the grace period runs, the ADD says when the block may be reclaimed (code 11: retry).
    await pollUntil(() => stateOf(n3)?.noBlock?.nextReclaimableAt !== undefined, { timeoutMs: TTL * 1000 + 3000, intervalMs: 20, what: 'vxt-n3: vxt-n2\'s block orphaned' });
    const during = await add(n3);
    const err = during.json as { code: number; msg: string } | undefined;
    t.equal(err?.code, 11, `TryAgainLater while a block's grace period runs (${describe(during)})`);
    t.match(err?.msg, /vxt-n2 \(10\.235\.\d\.0\/24, expired, reclaimable in \d+ s at \d{2}:\d{2}:\d{2}Z\)/, 'names the block that will be reclaimable, and when');

    await pollUntil(() => stateOf(n3)?.blocks.length === 1, { timeoutMs: (TTL + GRACE) * 1000 + 10_000, intervalMs: 20, what: 'vxt-n3: a block' });
    const claimed = Date.now();
    t.equal(formatCidr(stateOf(n3)!.blocks[0]), held.get('vxt-n2'), 'vxt-n2\'s block');
    const fromKill = claimed - killed;
    t.ok(fromKill <= (TTL + GRACE) * 1000 + 1500, `claimed ${fromKill} ms after the kill (TTL + grace = ${(TTL + GRACE) * 1000} ms)`);
    t.ok(fromKill >= GRACE * 1000, 'not before the grace period ran out');
    const left = logTime(n1.log(), /"msg":"peer leave"/, /"peer":"vxt-n2"/);
    t.ok(left !== undefined, 'vxt-n1 saw vxt-n2\'s lease expire');
    const fromExpiry = claimed - (left ?? 0);
    const renewals = n2.log().split('\n').filter((l) => /lease|registered/.test(l)).slice(-3);
    t.comment(`vxt-n2 killed at ${new Date(killed).toISOString()}, seen gone by vxt-n1 at ${new Date(left ?? 0).toISOString()}; vxt-n2's last lease lines: ${renewals.join(' | ')}`);
    t.ok(fromExpiry <= GRACE * 1000 + 1000, `claimed ${fromExpiry} ms after vxt-n1 saw vxt-n2's lease expire (grace ${GRACE * 1000} ms)`);
    t.match(n3.log(), /"msg":"reclaimed an expired host's block"/);

    const r = await add(n3);
    t.equal(r.code, 0, `ADD on vxt-n3 works now: ${describe(r)}`);
    t.match(bare(resultAddrs(r.json)[0]), new RegExp(`^${held.get('vxt-n2')!.replace(/0\/24$/, '').replace(/\./g, '\\.')}\\d+$`), 'an address from the reclaimed block');
    await pollUntil(async () => (await shown(n1.host.ns, ['-4', 'route', 'show', 'dev', DEV])).some((l) => l.startsWith(`${held.get('vxt-n2')} via ${held.get('vxt-n2')!.replace(/\/24$/, '')}`)),
      { timeoutMs: 5000, what: 'vxt-n1 routes the block' });
    await pollUntil(async () => (await shown(n1.host.ns, ['fdb', 'show', 'dev', DEV])).some((l) => l.includes(`dst ${n3.host.underlay}`)),
      { timeoutMs: 5000, what: 'vxt-n1 sends it to vxt-n3 (FDB)' });
    const j = JSON.parse((await ctl(['hosts', '--json'])).stdout) as { waiting: unknown[] };
    t.same(j.waiting, [], 'nobody waits any more');
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`)
    ?? (['vxnetd', 'vxnetctl', 'vxnet'].every((b) => existsSync(BIN(b))) ? undefined : 'needs a build (npm run build)');
  if (reason) t.plan(0, reason);
  else await t.test('a host that finds no free block of an overlay network', main);
})();
