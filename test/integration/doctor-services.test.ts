// vxnetctl doctor against a real built vxnetd, for what vxnetd serves: its VIP table and its DNS
// zone. vxnetd runs in a vxt namespace of its own (its VIP table, VIP link, DNS address and
// HTTP API are the namespace's), two containers are ADDed through the CNI plugin handed to it
// with VIP_0=/web:80, and the doctor runs in that namespace:
// - consistent: exit 0, the VIP and the five DNS names checked;
// - vxnetd's guard restores its own table within a second, so the VIP findings are made on a
//   copy of the table (`nft list table` loaded under another vxt name, then edited by hand: a
//   backend's slot deleted, a stale VIP added) named with --vip-table: the doctor reports
//   vip-backends-differ and vip-stale, not safe (exit 3 with --fix, the copy untouched); a
//   --vip-table that does not exist: vip-table-missing;
// - the DNS address taken off its link: dns-not-answering; vxnetd SIGKILLed (dns.json stays,
//   the API is gone): dns-not-answering, with a note that the VIPs were not checked.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import t from 'tap';
import { exec, newNetns, pollUntil } from '../helpers/netns';
import { DIST_BIN, VXNET, cannotRun, cniEnv, describe, newContainerId, reserveSubnet, runInNetns, type CniOutcome } from './helpers/cni';

const skip = cannotRun();
if (skip) {
  t.plan(0, skip);
} else {
  t.test('vxnetctl doctor checks vxnetd\'s VIP table and DNS zone', async (t) => {
    t.setTimeout(180_000);
    const host = await newNetns(t);
    const hex = randomBytes(3).toString('hex');
    const name = `vxt${hex}`;
    const table = `vxtvip${hex}`;
    const copy = `vxtcp${hex}`;
    const dnsLink = `vxt-dl${hex}`;
    const dnsAddr = '198.51.100.7';
    const port = 30_000 + Math.floor(Math.random() * 20_000);
    const range = `198.19.${Math.floor(Math.random() * 250)}.0/24`;
    const { n, release } = await reserveSubnet();
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-docsvc-'));
    t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }); release(); });
    const dataDir = join(dir, 'store');
    const dnsJson = join(dir, 'dns.json');
    const api = `http://127.0.0.1:${port}`;
    const inHost = async (...args: string[]): Promise<void> => {
      const r = await exec('ip', ['-n', host.name, ...args]);
      if (r.code !== 0) throw new Error(`ip -n ${host.name} ${args.join(' ')}: ${r.stderr}`);
    };
    // The DNS address on a portless link of the namespace's own.
    await inHost('link', 'add', dnsLink, 'type', 'bridge');
    await inHost('addr', 'add', `${dnsAddr}/32`, 'dev', dnsLink);
    await inHost('link', 'set', dnsLink, 'up');

    const vxnetd = spawn('ip', ['netns', 'exec', host.name, join(DIST_BIN, 'vxnetd'), '--no-docker', '--socket', join(dir, 'vxt.sock'),
      '--cni-socket', join(dir, 'cni.sock'), '--data-dir', dataDir, '--overlay-dir', join(dir, 'ov'), '--dns-state', dnsJson,
      '--dns-listen', `${dnsAddr}:53`, '--dns-upstream', '127.0.0.1:9', '--http-listen', `127.0.0.1:${port}`, '--vip-table', table,
      '--vip-link', `vxt-vl${hex}`, '--vip-range', range, '--vip-range6', '', '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    vxnetd.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
    const exited = new Promise<void>((resolve) => vxnetd.once('exit', () => resolve()));
    t.teardown(async () => { if (vxnetd.exitCode === null && vxnetd.signalCode === null) { vxnetd.kill('SIGKILL'); await exited; } });

    const ctl = (...args: string[]): Promise<CniOutcome> => runInNetns(host, join(DIST_BIN, 'vxnetctl'), args,
      { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', VXNET_DNS_JSON: dnsJson }, undefined, 30_000);
    const vips = async (): Promise<Array<{ addresses: string[]; backends: unknown[] }>> => {
      const r = await ctl('vip', 'ls', '--json', '--api', api);
      if (vxnetd.exitCode !== null) throw new Error(`vxnetd exited: ${log}`);
      return r.code === 0 ? (r.json?.vips ?? []) : [];
    };
    await pollUntil(async () => (await ctl('vip', 'ls', '--json', '--api', api)).code === 0 || (vxnetd.exitCode !== null ? Promise.reject(new Error(`vxnetd exited: ${log}`)) : false),
      { timeoutMs: 30_000, intervalMs: 200, what: 'vxnetd\'s API' });

    const conf = {
      cniVersion: '1.0.0', name, type: 'vxnet', bridge: name, natTable: name, isGateway: true,
      ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: `10.239.${n}.0/24` }]], dataDir },
      args: { cni: { labels: [{ key: 'VIP_0', value: '/web:80' }, { key: 'vxnet.ports', value: '8080' }] } },
    };
    for (const pod of ['web-0', 'web-1']) {
      const c = await newNetns(t);
      const r = await runInNetns(host, VXNET, [], cniEnv({
        command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: c.path, args: `K8S_POD_NAME=${pod}`,
        env: { VXNET_CNI_SOCKET: join(dir, 'cni.sock') },
      }), conf);
      t.equal(r.code, 0, `ADD ${pod}: ${describe(r)}`);
    }
    await pollUntil(async () => (await vips())[0]?.backends.length === 2, { timeoutMs: 15_000, intervalMs: 100, what: 'two backends in /v1/vips' });

    const base = ['doctor', '--json', '--data-dir', dataDir, '--overlay-dir', join(dir, 'ov'), '--api', api];
    const serviceKinds = (r: CniOutcome): string[] => ((r.json?.findings ?? []) as Array<{ kind: string }>)
      .map((f) => f.kind).filter((k) => k.startsWith('vip-') || k.startsWith('dns-')).sort();

    const clean = await ctl(...base, '--vip-table', table);
    t.equal(clean.code, 0, `consistent: exit 0 (${describe(clean)})`);
    t.match(clean.json?.checked, { vips: 1, dnsNames: 5 }, 'web-0, web-1 (each NAME and NAME.NETWORK) and web.l4lb');

    // A copy of vxnetd's table under a vxt name of the test's, broken by hand: vxnetd's guard
    // watches only its own table.
    const listed = await exec('ip', ['netns', 'exec', host.name, 'nft', 'list', 'table', 'inet', table]);
    t.equal(listed.code, 0, listed.stderr);
    const script = join(dir, 'copy.nft');
    fs.writeFileSync(script, listed.stdout.replace(`table inet ${table} {`, `table inet ${copy} {`));
    const load = await exec('ip', ['netns', 'exec', host.name, 'nft', '-f', script]);
    t.equal(load.code, 0, `the copy loads: ${load.stderr}`);
    const [vip] = await vips();
    const vipIp = vip!.addresses[0]!;
    const stale = range.replace(/0\/24$/, '250');
    const edit = await exec('ip', ['netns', 'exec', host.name, 'nft', '-f', '-'], {
      input: `delete element inet ${copy} slot0_4 { ${vipIp} . tcp . 80 }\n`
        + `add element inet ${copy} services4 { ${stale} . tcp . 99 : goto pick1 }\n`
        + `add element inet ${copy} slot0_4 { ${stale} . tcp . 99 : 10.239.${n}.2 . 8080 }\n`,
    });
    t.equal(edit.code, 0, `the copy edited: ${edit.stderr}`);

    const broken = await ctl(...base, '--vip-table', copy, '--fix');
    t.equal(broken.code, 3, `found, not safe to fix: exit 3 (${describe(broken)})`);
    t.same(serviceKinds(broken), ['vip-backends-differ', 'vip-stale']);
    const findings = broken.json?.findings as Array<{ kind: string; subject: string; what: string; fix: string; safe: boolean; fixed: boolean }>;
    const differ = findings.find((f) => f.kind === 'vip-backends-differ');
    t.match(differ, { subject: `VIP /web:80/tcp at ${vipIp}`, safe: false, fixed: false, fix: /restart vxnetd/ });
    t.match(differ?.what, /1 of its 2 slots is empty \(slot 0\)/);
    t.match(findings.find((f) => f.kind === 'vip-stale'), { subject: `VIP ${stale} . tcp . 99 in table inet ${copy}`, safe: false });
    const still = await exec('ip', ['netns', 'exec', host.name, 'nft', 'list', 'map', 'inet', copy, 'services4']);
    t.match(still.stdout, stale, '--fix leaves the table alone');

    const text = await ctl(...base.filter((a) => a !== '--json'), '--vip-table', copy);
    t.equal(text.code, 3);
    t.match(text.stdout, new RegExp(`vip-stale: VIP ${stale.replace(/\./g, '\\.')} \\. tcp \\. 99 in table inet ${copy}\\n  what: .*\\n  why: .*\\n  fix:   restart vxnetd`));
    t.match(text.stdout, /checked .*, 1 VIP, 5 DNS names(, \d+ masquerade tables?)?(, \d+ vxnet FORWARD rules?)?\)/);

    const none = await ctl(...base, '--vip-table', `vxtno${hex}`);
    t.equal(none.code, 3, describe(none));
    t.same(serviceKinds(none), ['vip-table-missing']);

    // The DNS address taken off its link: the server no longer answers there.
    await inHost('addr', 'del', `${dnsAddr}/32`, 'dev', dnsLink);
    const t0 = performance.now();
    const silent = await ctl(...base, '--vip-table', table);
    const ms = performance.now() - t0;
    t.equal(silent.code, 3, describe(silent));
    t.same(serviceKinds(silent), ['dns-not-answering']);
    t.match(silent.json?.findings.find((f: { kind: string }) => f.kind === 'dns-not-answering'), { subject: `DNS server ${dnsAddr}:53`, safe: false });
    t.comment(`doctor with a silent DNS server: ${ms.toFixed(0)} ms`);
    await inHost('addr', 'add', `${dnsAddr}/32`, 'dev', dnsLink);
    await pollUntil(async () => (await ctl(...base, '--vip-table', table)).code === 0, { timeoutMs: 10_000, intervalMs: 200, what: 'clean again with the address back' });

    // vxnetd killed: dns.json stays behind, nothing answers.
    vxnetd.kill('SIGKILL');
    await exited;
    t.ok(fs.existsSync(dnsJson), 'a killed vxnetd leaves dns.json');
    const dead = await ctl(...base, '--vip-table', table);
    t.equal(dead.code, 3, describe(dead));
    t.same(serviceKinds(dead), ['dns-not-answering']);
    t.match(dead.json?.findings.find((f: { kind: string }) => f.kind === 'dns-not-answering')?.why, /vxnetd is not running/);
    t.ok((dead.json?.notes as string[]).some((x) => /API did not answer .*VIP table and the DNS names were not checked/.test(x)), 'a note says what was not checked');
  });
}
