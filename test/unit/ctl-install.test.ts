// vxnetctl install: the conflist it writes (pure), then the built binary installing a private
// copy of dist/ into temp directories (never /opt/cni/bin, /etc/cni or /usr/local), and the
// installed links actually running: the CNI plugin launchers from their new home, vxnetctl
// through its symlink with the store's native addon.
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { copyDist } from '../helpers/dist';
import { checkNetwork, conflistBridge, conflistFor } from '../../ctl/install';
import { parseIpamConf } from '../../ipam/config';
import { ipamAdd } from '../../ipam/core';
import { tmpDir, tmpStore } from '../ipam/helpers/embedded';
import { type ExecResult, exec } from '../helpers/sh';


t.test('conflistFor', async (t) => {
  t.same(conflistFor('vxnet', ['10.231.0.0/16']), {
    cniVersion: '1.0.0',
    name: 'vxnet',
    plugins: [{
      type: 'vxnet', bridge: 'vx-vxnet', isGateway: true, ipMasq: true,
      ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: '10.231.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] },
    }],
  });
  const dual = conflistFor('a-network-too-long', ['fd00:1::/64', '10.1.0.0/24', '10.2.0.0/24']);
  const plugin = (dual.plugins as Array<Record<string, unknown>>)[0];
  t.notOk('bridge' in plugin, 'no bridge when vx-NAME exceeds 15 characters (the plugin derives one)');
  t.same(plugin.ipam, {
    type: 'vxnet-ipam',
    ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/24' }], [{ subnet: 'fd00:1::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  });
  t.equal(conflistBridge('twelve-chars'), 'vx-twelve-chars');
  t.equal(conflistBridge('thirteen-char'), undefined);
});

t.test('checkNetwork rejects bad names and subnets', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['bad name', ['10.0.0.0/16'], /--network "bad name" is not a valid network name/],
    ['-x', ['10.0.0.0/16'], /not a valid network name/],
    ['n', ['10.0.0.0'], /--subnet "10.0.0.0" is not a CIDR/],
    ['n', ['10.0.0.1/16'], /--subnet 10.0.0.1\/16 has host bits set; network is 10.0.0.0\/16/],
    ['n', ['10.0.0.0/31'], /too small/],
    ['n', ['10.0.0.0/16', '10.0.1.0/24'], /overlaps/],
  ];
  for (const [name, subnets, message] of cases) t.throws(() => checkNetwork(name, subnets), { name: 'UsageError', message }, `${name} ${subnets.join(' ')}`);
});


const env = (): NodeJS.ProcessEnv => {
  const e = { ...process.env };
  delete e.NODE_OPTIONS;
  delete e.VXNET_DIST;
  delete e.VXNET_DATA_DIR;
  return e;
};
const run = (file: string, args: string[], input?: string, extra: NodeJS.ProcessEnv = {}): Promise<ExecResult> =>
  exec(file, args, { env: { ...env(), ...extra }, ...(input !== undefined ? { input } : {}) });

t.test('install into temp directories', async (t) => {
  const dist = await copyDist(t);
  const ctl = path.join(dist, 'bin', 'vxnetctl');
  const dir = await tmpDir(t, 'vxnetctl-install-');
  const prefix = path.join(dir, 'lib', 'vxnet');
  const cniBin = path.join(dir, 'opt', 'cni', 'bin');
  const binDir = path.join(dir, 'usr', 'local', 'bin');
  const confDir = path.join(dir, 'etc', 'cni', 'net.d');
  const dirs = ['--prefix', prefix, '--cni-bin-dir', cniBin, '--bin-dir', binDir];

  // A stale plugin file is replaced by the link.
  mkdirSync(cniBin, { recursive: true });
  writeFileSync(path.join(cniBin, 'vxnet'), 'old plugin\n');

  let r = await run(ctl, ['install', ...dirs, '--conflist', '--conf-dir', confDir, '--network', 'testnet', '--subnet', '10.240.0.0/16']);
  t.equal(r.code, 0, r.stderr);
  const snapshotted = ['vxnet', 'vxnet-ipam'].filter((n) => readFileSync(path.join(dist, 'bin', n), 'utf8').startsWith('#!/bin/sh'));
  t.equal(r.stdout, [
    `installed ${dist} to ${prefix}`,
    ...(snapshotted.length ? [`pointed the launchers ${snapshotted.join(', ')} at ${prefix}`] : []),
    `linked ${cniBin}/vxnet -> ${prefix}/bin/vxnet (replaced file)`,
    `linked ${cniBin}/vxnet-ipam -> ${prefix}/bin/vxnet-ipam`,
    `linked ${binDir}/vxnetctl -> ${prefix}/bin/vxnetctl`,
    `linked ${binDir}/vxnetd -> ${prefix}/bin/vxnetd`,
    `linked ${binDir}/vxnet-lb -> ${prefix}/bin/vxnet-lb`,
    `wrote ${confDir}/10-testnet.conflist (network testnet, subnet 10.240.0.0/16, bridge vx-testnet)`,
    '',
  ].join('\n'));
  t.same(readdirSync(prefix).sort(), readdirSync(dist).sort(), 'the whole dist/ is copied');
  t.same(readdirSync(path.dirname(prefix)), ['vxnet'], 'no .new or .old left behind');
  for (const [link, target] of [[`${cniBin}/vxnet`, 'vxnet'], [`${cniBin}/vxnet-ipam`, 'vxnet-ipam'], [`${binDir}/vxnetctl`, 'vxnetctl'], [`${binDir}/vxnetd`, 'vxnetd'], [`${binDir}/vxnet-lb`, 'vxnet-lb']]) {
    t.ok(lstatSync(link).isSymbolicLink(), `${link} is a link`);
    t.equal(readlinkSync(link), `${prefix}/bin/${target}`);
  }
  t.same(JSON.parse(readFileSync(path.join(confDir, '10-testnet.conflist'), 'utf8')), conflistFor('testnet', ['10.240.0.0/16']));
  t.equal(lstatSync(path.join(confDir, '10-testnet.conflist')).mode & 0o777, 0o644);

  // Launchers name their new home only.
  for (const name of snapshotted) {
    const text = readFileSync(path.join(prefix, 'bin', name), 'utf8');
    t.match(text, `VXNET_DIST='${prefix}'`, `${name} runs from the prefix`);
    t.notMatch(text, dist, `${name} no longer names the source`);
  }

  // The installed things run: the CNI plugins from the CNI directory, with the source gone.
  rmSync(dist, { recursive: true, force: true });
  for (const name of ['vxnet', 'vxnet-ipam']) {
    const v = await run(path.join(cniBin, name), [], '{"cniVersion":"1.0.0"}', { CNI_COMMAND: 'VERSION' });
    t.equal(v.code, 0, `${name} VERSION: ${v.stderr}`);
    t.match(JSON.parse(v.stdout || '{}'), { cniVersion: '1.0.0', supportedVersions: Array }, `${name} answers VERSION`);
  }
  const installedCtl = path.join(binDir, 'vxnetctl');
  r = await run(installedCtl, ['--version']);
  t.match(r.stdout, /^vxnetctl \d+\.\d+\.\d+\n$/);
  const { store, dataDir } = await tmpStore(t);
  await ipamAdd(store, parseIpamConf('testnet', { ranges: [[{ subnet: '10.240.0.0/16' }]] }), { network: 'testnet', containerId: 'c'.repeat(64), ifname: 'eth0', runtime: 'cni' });
  r = await run(installedCtl, ['ipam', 'ls', '--json', '--data-dir', dataDir]);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { allocations: [{ address: '10.240.0.2', containerId: 'c'.repeat(64) }] }, 'the installed vxnetctl loads the store');

  // Again, from the installed copy: everything replaced, the conflist kept.
  r = await run(installedCtl, ['install', ...dirs, '--conflist', '--conf-dir', confDir, '--network', 'testnet', '--json']);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Record<string, unknown>;
  t.match(report, {
    source: prefix, prefix, replaced: true, relocated: [],
    links: [
      { path: `${cniBin}/vxnet`, target: `${prefix}/bin/vxnet`, replaced: `link to ${prefix}/bin/vxnet` },
      { path: `${cniBin}/vxnet-ipam` }, { path: `${binDir}/vxnetctl` }, { path: `${binDir}/vxnetd` },
    ],
    conflist: { path: `${confDir}/10-testnet.conflist`, written: false, network: 'testnet', subnets: ['10.231.0.0/16'], bridge: 'vx-testnet' },
  });
  t.same(Object.keys(report).sort(), ['conflist', 'dockerDns', 'links', 'prefix', 'relocated', 'replaced', 'source', 'systemdUnit']);
  t.equal(report.systemdUnit, null, 'no systemd unit unless asked');
  r = await run(installedCtl, ['install', ...dirs, '--conflist', '--conf-dir', confDir, '--network', 'testnet']);
  t.match(r.stdout, `kept the existing ${confDir}/10-testnet.conflist (not overwritten`);
  t.match(r.stdout, `linked ${binDir}/vxnetd -> ${prefix}/bin/vxnetd (unchanged)`);
  t.same(JSON.parse(readFileSync(path.join(confDir, '10-testnet.conflist'), 'utf8')), conflistFor('testnet', ['10.240.0.0/16']), 'the conflist is untouched');
  r = await run(path.join(cniBin, 'vxnet-ipam'), [], '{"cniVersion":"1.0.0"}', { CNI_COMMAND: 'VERSION' });
  t.equal(r.code, 0, 'the plugin still runs after a reinstall over itself');

  // --systemd writes vxnetd.service pointing at the linked vxnetd.
  const systemdDir = path.join(path.dirname(binDir), 'systemd');
  r = await run(installedCtl, ['install', ...dirs, '--systemd', '--systemd-dir', systemdDir]);
  t.equal(r.code, 0, r.stderr);
  const unit = readFileSync(path.join(systemdDir, 'vxnetd.service'), 'utf8');
  t.match(unit, new RegExp(`^ExecStart=${binDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/vxnetd `, 'm'), 'the unit starts the installed vxnetd');
  t.match(r.stdout, 'systemctl daemon-reload && systemctl enable --now vxnetd');
  t.match(readFileSync(path.join(systemdDir, 'vxnet-lb.service'), 'utf8'), new RegExp(`^ExecStart=${binDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/vxnet-lb `, 'm'), 'and vxnet-lb.service the installed vxnet-lb');
  r = await run(installedCtl, ['install', ...dirs, '--systemd-dir', systemdDir]);
  t.equal(r.code, 2, '--systemd-dir without --systemd is a usage error');
});

t.test('install refuses what it must not replace, with one line', async (t) => {
  const dist = await copyDist(t);
  const ctl = path.join(dist, 'bin', 'vxnetctl');
  const dir = await tmpDir(t, 'vxnetctl-install-');
  const dirs = ['--cni-bin-dir', path.join(dir, 'cni'), '--bin-dir', path.join(dir, 'bin')];
  const oneLine = (r: ExecResult, code: number, message: RegExp): void => {
    t.equal(r.code, code);
    t.equal(r.stdout, '');
    t.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
    t.match(r.stderr, message);
  };

  // A directory that is not a vxnet installation (an operator's typo such as --prefix /usr/local).
  const other = path.join(dir, 'usr-local');
  mkdirSync(path.join(other, 'share'), { recursive: true });
  writeFileSync(path.join(other, 'share', 'keep'), 'x');
  oneLine(await run(ctl, ['install', '--prefix', other, ...dirs]), 1, /^vxnetctl: .*usr-local exists and is not a vxnet installation \(no bin\/vxnetctl in it\); refusing to replace it/);
  t.ok(existsSync(path.join(other, 'share', 'keep')), 'left alone');
  t.notOk(existsSync(path.join(dir, 'cni')), 'nothing linked');

  oneLine(await run(ctl, ['install', '--prefix', path.join(dist, 'sub'), ...dirs]), 2, /overlaps the directory being installed/);
  oneLine(await run(ctl, ['install', '--prefix', path.join(dir, 'p'), ...dirs, '--conflist', '--subnet', '10.0.0.1/8']), 2, /--subnet 10.0.0.1\/8 has host bits set/);
  oneLine(await run(ctl, ['install', '--prefix', path.join(dir, 'p'), ...dirs, '--conflist', '--network', 'no/slash']), 2, /not a valid network name/);
  oneLine(await run(ctl, ['install', '--prefix', path.join(dir, 'p'), ...dirs, '--network', 'n']), 2, /--network goes with --conflist/);
  oneLine(await run(ctl, ['install', '--prefix', path.join(dir, "it's")]), 2, /must not contain quotes/);
  t.notOk(existsSync(path.join(dir, 'p')), 'validation happens before anything is copied');

  // A directory where a link goes.
  mkdirSync(path.join(dir, 'cni', 'vxnet'), { recursive: true });
  oneLine(await run(ctl, ['install', '--prefix', path.join(dir, 'p'), ...dirs]), 1, /cannot link .*cni\/vxnet: it is a directory/);
  t.notOk(existsSync(path.join(dir, 'p')), 'checked before anything is copied');
});
