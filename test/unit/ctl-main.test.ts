// ctl/main.ts in-process, with the host veth operations faked: the paths the built binary
// cannot reach without a real link (deleted, failed to delete, would delete), exit statuses,
// and the one-line error contract for failures that are not vxnet's (internal errors).
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { main } from '../../ctl/main';
import type { Io } from '../../ctl/context';
import type { VethOps } from '../../ctl/veth';
import { hostVethName } from '../../datapath/names';
import { parseIpamConf } from '../../ipam/config';
import { ipamAdd } from '../../ipam/core';
import { DatapathFailure } from '../../lib/errors';
import { tmpDir, tmpStore } from '../ipam/helpers/embedded';

interface Run { code: number; stdout: string; stderr: string }

async function ctl(argv: string[], over: Partial<Io> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (s) => { stdout += s; },
    stderr: (s) => { stderr += s; },
    env: {},
    now: Date.now,
    distDir: '/nonexistent',
    ...over,
  });
  return { code, stdout, stderr };
}

const fakeVeth = (present: Set<string>, fail?: string): VethOps & { removed: string[] } => {
  const removed: string[] = [];
  return {
    removed,
    exists: (name) => present.has(name),
    remove: async (name) => {
      if (fail) throw new DatapathFailure(`cannot delete host veth ${name}: ${fail}`);
      removed.push(name);
      return present.delete(name) ? 'deleted' : 'absent';
    },
  };
};

const ID = { a: 'a'.repeat(64), b: 'b'.repeat(64) };

async function fixture(t: Test): Promise<string> {
  const { store, dataDir } = await tmpStore(t);
  const dir = await tmpDir(t);
  const conf = parseIpamConf('n', { ranges: [[{ subnet: '10.9.0.0/24' }]] });
  await ipamAdd(store, conf, { network: 'n', containerId: ID.a, ifname: 'eth0', runtime: 'cni', name: 'evil\u001b[2Jname' });
  await ipamAdd(store, conf, { network: 'n', containerId: ID.b, ifname: 'eth0', runtime: 'cni', netns: path.join(dir, 'gone') });
  return dataDir;
}

t.test('release deletes the host veth, and reports a failure as one line after its output', async (t) => {
  const dataDir = await fixture(t);
  const vethA = hostVethName(ID.a, 'eth0');
  const ok = fakeVeth(new Set([vethA]));
  let r = await ctl(['ipam', 'release', '10.9.0.2', '--data-dir', dataDir], { veth: ok });
  t.same(r, { code: 0, stdout: `released 10.9.0.2 from container aaaaaaaaaaaa eth0 (network n)\ndeleted host veth ${vethA}\n`, stderr: '' });
  t.same(ok.removed, [vethA]);

  const vethB = hostVethName(ID.b, 'eth0');
  r = await ctl(['ipam', 'release', '--container', ID.b, '--network', 'n', '--data-dir', dataDir, '--json'], { veth: fakeVeth(new Set([vethB]), 'Operation not permitted') });
  t.equal(r.code, 1);
  t.match(JSON.parse(r.stdout), { released: [{ address: '10.9.0.3' }], veths: [{ name: vethB, result: 'error', error: `cannot delete host veth ${vethB}: Operation not permitted` }] });
  t.equal(r.stderr, `vxnetctl: released, but cannot delete host veth ${vethB}: Operation not permitted\n`);
});

t.test('gc --dry-run says which veths it would delete; gc deletes them', async (t) => {
  const dataDir = await fixture(t);
  const vethB = hostVethName(ID.b, 'eth0');
  const veth = fakeVeth(new Set([vethB]));
  let r = await ctl(['ipam', 'gc', '--dry-run', '--json'], { veth, env: { VXNET_DATA_DIR: dataDir } });
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { dryRun: true, checked: 2, released: [{ containerId: ID.b }], kept: { noNetns: 1 }, veths: [{ name: vethB, result: 'would-delete' }] });
  t.same(veth.removed, []);
  r = await ctl(['ipam', 'gc', '--data-dir', dataDir], { veth });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`${vethB} \\(deleted\\)\n`));
  t.same(veth.removed, [vethB]);
});

t.test('names with control characters are shown defanged', async (t) => {
  const dataDir = await fixture(t);
  const r = await ctl(['ipam', 'ls', '--data-dir', dataDir], { veth: fakeVeth(new Set()) });
  t.match(r.stdout, / evil\?\[2Jname /);
  t.notMatch(r.stdout, /\u001b/);
  const j = await ctl(['ipam', 'ls', '--data-dir', dataDir, '--json'], { veth: fakeVeth(new Set()) });
  t.equal((JSON.parse(j.stdout) as { allocations: Array<{ name: string }> }).allocations[0].name, 'evil\u001b[2Jname', '--json keeps the data as stored');
});

t.test('exit statuses and single-line errors', async (t) => {
  const dataDir = await fixture(t);
  let r = await ctl(['ipam', 'ls', '--data-dir', dataDir], { now: () => { throw new TypeError('clock broke'); } });
  t.same(r, { code: 1, stdout: '', stderr: 'vxnetctl: internal error: clock broke\n' });
  r = await ctl(['ipam', 'ls', '--data-dir', dataDir], { now: () => { throw new TypeError('clock broke'); }, env: { VXNETCTL_DEBUG: '1' } });
  t.match(r.stderr, /^vxnetctl: internal error: clock broke\nTypeError: clock broke\n\s+at /, 'VXNETCTL_DEBUG adds the stack');
  const empty = await tmpDir(t);
  r = await ctl(['install', '--prefix', path.join(empty, 'p')], { distDir: empty });
  t.equal(r.code, 1);
  t.equal(r.stderr, `vxnetctl: ${empty}/bin/vxnet is missing: install copies a built dist/ directory (run npm run build, then dist/bin/vxnetctl install)\n`);
  r = await ctl(['nope']);
  t.same(r, { code: 2, stdout: '', stderr: 'vxnetctl: unknown command "nope" (see vxnetctl --help)\n' });
  r = await ctl(['--version']);
  t.match(r, { code: 0, stdout: /^vxnetctl \d/ });
  r = await ctl(['ipam', 'pools', '--data-dir', path.join(empty, 'none')]);
  t.same(r, { code: 0, stdout: `no IPAM store at ${empty}/none/ipam.db (nothing allocated yet)\n`, stderr: '' });
});
