// A real Docker health check driving a VIP: two busybox containers on a vxnet Docker network,
// labelled VIP_0=/hweb:80 and vxnet.ports=8080, serving their names with httpd on 8080, with a
// HEALTHCHECK `test -f /tmp/healthy` every second. Both healthy -> both in the VIP's kernel
// entry and answering through it; the test removes one's file -> Docker marks it unhealthy ->
// vxnetd (the health_status event) takes it out of the kernel entry (`nft list table` no longer
// names its address; every connection goes to the other), `vxnetctl vip show` lists it
// unhealthy; the file back -> healthy -> back in. vxnetd's VIP table, link and range are the
// test's own (vxt names, a /24 of 198.19.0.0/16). Root, a real dockerd, the local busybox image.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { exec, pollUntil } from '../helpers/sh';
import { cannotRunDocker, containerIp, createDockerNet, ensureDockerImage, mustDocker, runContainer, startVxnetd, VXNETCTL } from '../helpers/docker';

const reason = cannotRunDocker();
if (reason) t.plan(0, reason);
else { t.setTimeout(300_000); main(); }

const HTTP_PORT = 30_000 + Math.floor(Math.random() * 20_000);
const hex = randomBytes(3).toString('hex');
const TABLE = `vxt-vip${hex}`;
const LINK = `vxt-vl${hex}`;
const RANGE = `198.19.${Math.floor(Math.random() * 250)}.0/24`;
const API = `http://127.0.0.1:${HTTP_PORT}`;

interface VipJson { vip: string; addresses: string[]; backends: Array<{ name: string; ip: string; state: string }> }
const vips = async (): Promise<VipJson[]> => (await fetch(`${API}/v1/vips`)).json() as Promise<VipJson[]>;
const states = async (): Promise<Record<string, string>> => Object.fromEntries(((await vips())[0]?.backends ?? []).map((b) => [b.name, b.state]));

function hostGet(ip: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: ip, port: 80, path: '/', agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(`error: ${e.message}`));
  });
}

/** The kernel's VIP table as nft lists it. */
const table = async (): Promise<string> => (await exec('nft', ['list', 'table', 'inet', TABLE])).stdout;

function main(): void {
  t.test('a Docker health check takes a backend out of the VIP and back', async (t) => {
    await ensureDockerImage();
    t.teardown(async () => {
      await exec('nft', ['delete', 'table', 'inet', TABLE]);
      await exec('ip', ['link', 'del', LINK]);
    });
    const vx = await startVxnetd(t, { extraArgs: ['--no-dns', '--http-listen', `127.0.0.1:${HTTP_PORT}`, '--vip-table', TABLE, '--vip-link', LINK, '--vip-range', RANGE, '--vip-range6', ''] });
    await pollUntil(() => fetch(`${API}/v1/vips`).then((r) => r.ok, () => false), { timeoutMs: 20_000, intervalMs: 50, what: 'vxnetd\'s HTTP API' });
    const net = await createDockerNet(t, vx);
    const names = [`vxt-h0${hex}`, `vxt-h1${hex}`];
    for (const name of names) {
      await runContainer(t, {
        network: net.name, name,
        args: ['--label', 'VIP_0=/hweb:80', '--label', 'vxnet.ports=8080', '--health-cmd', 'test -f /tmp/healthy', '--health-interval', '1s', '--health-timeout', '1s', '--health-retries', '1'],
        cmd: ['/bin/sh', '-c', `mkdir -p /www && echo ${name} > /www/index.html && touch /tmp/healthy && exec httpd -f -p 8080 -h /www`],
      });
    }
    const [sick, well] = names as [string, string];
    const sickIp = await containerIp(sick, net.name);
    // The address as a whole in nft's listing (10.0.0.2 must not match 10.0.0.20).
    const inTable = new RegExp(`(^|[^\\d.])${sickIp.replace(/\./g, '\\.')}(?![\\d])`);

    await pollUntil(async () => { const s = await states(); return s[sick] === 'up' && s[well] === 'up'; },
      { timeoutMs: 30_000, intervalMs: 100, what: 'both backends healthy (up) in /v1/vips' });
    const vip = (await vips())[0]!.addresses[0]!;
    t.match(await table(), inTable, `both healthy: ${sick}'s address ${sickIp} is in the kernel's table`);
    const both = new Set<string>();
    for (let i = 0; i < 40 && both.size < 2; i++) both.add(await hostGet(vip));
    t.same([...both].sort(), [...names].sort(), `the host reaches both through ${vip}:80`);

    // The health check starts failing: Docker says unhealthy, vxnetd takes it out of the kernel.
    await mustDocker(['exec', sick, 'rm', '/tmp/healthy']);
    const t0 = performance.now();
    await pollUntil(async () => (await states())[sick] === 'unhealthy', { timeoutMs: 30_000, intervalMs: 50, what: `${sick} unhealthy in /v1/vips` });
    t.comment(`file removed -> unhealthy in the VIP model after ${(performance.now() - t0).toFixed(0)} ms (Docker's 1 s interval included)`);
    t.notMatch(await table(), inTable, `${sick}'s address left the kernel's table`);
    const show = await exec(VXNETCTL, ['vip', 'show', 'hweb', '--api', API]);
    t.equal(show.code, 0, `vxnetctl vip show hweb: ${show.stderr}`);
    t.match(show.stdout, new RegExp(`${sick}\\s.*unhealthy`), 'vxnetctl vip show lists it unhealthy');
    const only = new Set<string>();
    for (let i = 0; i < 20; i++) only.add(await hostGet(vip));
    t.same([...only], [well], '20 connections: all to the healthy one');

    // Healthy again: back in.
    await mustDocker(['exec', sick, 'touch', '/tmp/healthy']);
    const t1 = performance.now();
    await pollUntil(async () => (await states())[sick] === 'up', { timeoutMs: 30_000, intervalMs: 50, what: `${sick} up again` });
    t.comment(`file back -> up in the VIP model after ${(performance.now() - t1).toFixed(0)} ms`);
    t.match(await table(), inTable, 'its address is back in the kernel\'s table');
    const again = new Set<string>();
    for (let i = 0; i < 40 && again.size < 2; i++) again.add(await hostGet(vip));
    t.same([...again].sort(), [...names].sort(), 'both answer through the VIP again');
  });
}
