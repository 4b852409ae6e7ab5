// The web view in a real browser: the built vxnetd (with a token, VIPs and DNS on the test's own
// vxt table, link, range and port), containers ADDed by the real vxnet CNI plugin (handed off
// to vxnetd) with a name and a VIP label, one of them DELeted and its address ADDed again to
// another container; then Debian's chromium (headless, driven by playwright-core) opens /ui/
// and the test asserts what a person sees: the token form, then the network's usage numbers,
// the allocation rows, the search narrowing the table, the address's history timeline, the DNS
// names, the VIP with its backends; a container ADDed while the page is open shows up within the
// live-update bound without a reload. Screenshots go to .tap/screenshots/ (web-view.png; also
// written also when an assertion fails). Root only; everything vxt-prefixed.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { Page } from 'playwright-core';
import { missingChromium, openPage, screenshot } from '../helpers/browser';
import { exec, pollUntil } from '../helpers/netns';
import { freePort } from '../edge/helpers/edge';
import { attach, bare, cannotRun, DIST_BIN, newNet, runPlugin, VXNET, type Attached, type TestNet } from './helpers/cni';

const reason = cannotRun() ?? missingChromium();
if (reason) t.plan(0, reason);
else { t.setTimeout(240_000); main(); }

const hex = randomBytes(3).toString('hex');
const TABLE = `vxt-vip${hex}`;
const LINK = `vxt-vl${hex}`;
const RANGE = `198.19.${Math.floor(Math.random() * 250)}.0/24`;
const TOKEN = randomBytes(16).toString('hex');
/** The page's live-update bound: server-sent events (or its 2 s polling), plus a fetch and a redraw. */
const LIVE_BOUND_MS = 3500;

async function vxnetd(t: Test, dir: string, net: TestNet): Promise<string> {
  const http = await freePort();
  const dns = await freePort();
  fs.writeFileSync(join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  const child = spawn(join(DIST_BIN, 'vxnetd'), ['--no-docker', '--socket', join(dir, 'vxt.sock'), '--cni-socket', join(dir, 'cni.sock'),
    '--data-dir', net.dataDir, '--overlay-dir', join(dir, 'ov'), '--dns-state', join(dir, 'dns.json'), '--dns-listen', `127.0.0.1:${dns}`,
    '--dns-upstream', '127.0.0.1:9', '--http-listen', `127.0.0.1:${http}`, '--api-token-file', join(dir, 'token'),
    '--vip-table', TABLE, '--vip-link', LINK, '--vip-range', RANGE, '--vip-range6', '', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await exited; } });
  const base = `http://127.0.0.1:${http}`;
  await pollUntil(async () => {
    if (child.exitCode !== null) throw new Error(`vxnetd exited: ${log}`);
    return fetch(`${base}/api/v1/summary`, { headers: { Authorization: `Bearer ${TOKEN}` } }).then((r) => r.ok, () => false);
  }, { timeoutMs: 30_000, intervalMs: 50, what: 'vxnetd to answer' });
  return base;
}

async function api<T>(base: string, path: string): Promise<T> {
  const r = await fetch(`${base}/api/v1${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

const addr = (c: Attached): string => bare(c.add.json!.ips[0].address);
const count = (n: number | string): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

function main(): void {
  t.test('the web view shows the cluster as the API has it, live, behind the token', async (t) => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-ui-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    t.teardown(async () => {
      await exec('nft', ['delete', 'table', 'inet', TABLE]);
      await exec('ip', ['link', 'del', LINK]);
    });
    const net = await newNet(t);
    const base = await vxnetd(t, dir, net);
    const env = { VXNET_CNI_SOCKET: join(dir, 'cni.sock') };
    const conf = { args: { cni: { labels: [{ key: 'VIP_0', value: '/web:80' }, { key: 'vxnet.ports', value: '8080' }] } } };
    const reused = net.ip4(10);

    // web-0 on .10; DEL; web-0b gets .10 again: the address's history has three events.
    const web0 = await attach(t, net, { env, args: `K8S_POD_NAME=web-0;IP=${reused}`, conf });
    t.equal(addr(web0), reused, `web-0 got ${reused}`);
    const del = await runPlugin(VXNET, net.conf(), { command: 'DEL', containerId: web0.containerId, ifname: web0.ifname, netns: web0.ns.path, env });
    t.equal(del.code, 0, `DEL web-0: ${del.stderr}`);
    const web0b = await attach(t, net, { env, args: `K8S_POD_NAME=web-0b;IP=${reused}`, conf });
    t.equal(addr(web0b), reused, `web-0b got ${reused} again`);
    const web1 = await attach(t, net, { env, args: 'K8S_POD_NAME=web-1', conf });
    await pollUntil(async () => (await api<{ vips: Array<{ backends: unknown[] }> }>(base, '/vips')).vips[0]?.backends.length === 2 || undefined,
      { timeoutMs: 10_000, what: 'the VIP with two backends in the API' });

    const { page, problems } = await openPage(t, base);
    try {
      await look(t, page, base, net, { env, conf, web0b, web1, reused });
    } finally {
      // The screenshot for review, also when something failed (README's docs/web-view.png is a copy).
      await screenshot(t, page, 'web-view.png');
    }
    t.same(problems, [], 'no page errors, no failed requests, nothing fetched from elsewhere');
  });
}

interface Scene { env: Record<string, string>; conf: Record<string, unknown>; web0b: Attached; web1: Attached; reused: string }

/** What a person sees, step by step. */
async function look(t: Test, page: Page, base: string, net: TestNet, { env, conf, web0b, web1, reused }: Scene): Promise<void> {
  // Opening /ui (no slash): redirected; the API refuses the page without the token, so it asks.
  const res = await page.goto(`${base}/ui`);
  t.equal(new URL(page.url()).pathname, '/ui/', '/ui redirects to /ui/');
  t.equal(res?.status(), 200, 'the page itself needs no token (it holds no data)');
  const dialog = page.locator('dialog#login');
  await dialog.waitFor({ state: 'visible', timeout: 10_000 });
  t.match(await dialog.innerText(), /asks for its API token/, 'the page asks for the token');
  await page.fill('#token', 'wrong-token');
  await page.click('dialog#login button[type=submit]');
  await page.locator('dialog#login .error').waitFor({ state: 'visible', timeout: 10_000 });
  t.match(await page.locator('dialog#login .error').innerText(), /wrong bearer token/, 'a wrong token: asked again, with the API\'s reason');
  await page.fill('#token', TOKEN);
  await page.click('dialog#login button[type=submit]');
  await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
  t.pass('the right token: the form closes');
  await page.evaluate('window.vxtNoReload = true');

  // The network's pool usage, as the API counts it: two addresses used.
  const nets = await api<{ networks: Array<{ name: string; size: string; used: number; free: string }> }>(base, '/networks');
  const mine = nets.networks.find((n) => n.name === net.name)!;
  t.equal(mine.used, 2, 'the API counts two addresses used');
  const netRow = page.locator(`#networks tr[data-network="${net.name}"]`);
  await netRow.waitFor({ timeout: 10_000 });
  await page.locator(`#networks tr[data-network="${net.name}"] .usage-text`, { hasText: `2 / ${count(mine.size)} used` }).waitFor({ timeout: 5000 });
  const netText = await netRow.innerText();
  t.match(netText, `2 / ${count(mine.size)} used`, `the network's row: ${netText.replace(/\s+/g, ' ')}`);
  t.match(netText, `${count(mine.free)}`, 'and its free count');
  t.match(netText, net.v4, 'and its subnet');
  t.match(await page.locator('#hosts').innerText(), /this host/, 'the host list has this host');

  // The allocation table: both containers, by address and name.
  const rows = page.locator('#allocations tr.allocation');
  await pollUntil(async () => (await rows.count()) === 2 || undefined, { timeoutMs: 5000, what: 'two allocation rows' });
  const row10 = page.locator(`#allocations tr.allocation[data-address="${reused}"]`);
  t.match(await row10.innerText(), 'web-0b', `${reused}'s row names web-0b`);
  t.match(await page.locator(`#allocations tr.allocation[data-address="${addr(web1)}"]`).innerText(), 'web-1', `${addr(web1)}'s row names web-1`);

  // Search: an address narrows the table to its row (and opens its history); a name likewise.
  await page.fill('#search', addr(web1));
  await pollUntil(async () => (await rows.count()) === 1 || undefined, { timeoutMs: 2000, what: 'the search to narrow the table' });
  t.equal(await rows.first().getAttribute('data-address'), addr(web1), `searching ${addr(web1)}: its row alone`);
  await page.fill('#search', 'web-0b');
  await pollUntil(async () => ((await rows.count()) === 1 && (await rows.first().getAttribute('data-address')) === reused) || undefined, { timeoutMs: 2000, what: 'search by name' });
  t.pass('searching web-0b: its row alone');
  await page.fill('#search', 'no-such-thing');
  await page.locator('#allocations', { hasText: 'Nothing matches.' }).waitFor({ timeout: 2000 });
  t.equal(await rows.count(), 0, 'a search matching nothing: no rows, said so');
  await page.fill('#search', '');
  await pollUntil(async () => (await rows.count()) === 2 || undefined, { timeoutMs: 2000, what: 'the cleared search' });

  // History: the address's button opens its timeline, newest first.
  await row10.locator('button').click();
  const events = page.locator('#history ol.timeline li');
  await pollUntil(async () => (await events.count()) === 3 || undefined, { timeoutMs: 5000, what: `three events in ${reused}'s timeline` });
  const lines = (await events.allInnerTexts()).map((s) => s.replace(/\s+/g, ' '));
  t.match(lines[0], /allocated to web-0b/i, `newest: ${lines[0]}`);
  t.match(lines[1], /released by web-0 .*del/i, `then: ${lines[1]}`);
  t.match(lines[2], /allocated to web-0 /i, `oldest: ${lines[2]}`);

  // DNS names and the VIP with its two backends.
  const dnsText = await page.locator('#dns').innerText();
  for (const name of ['web-0b.', 'web-1.']) t.match(dnsText, name, `DNS names list ${name}`);
  t.notMatch(dnsText, /\bweb-0\.vxnet/, 'and not the DELeted web-0');
  const vip = page.locator('#vips .vip');
  t.equal(await vip.count(), 1, 'one VIP');
  const vipText = (await vip.innerText()).replace(/\s+/g, ' ');
  t.match(vipText, /web .*:80\/tcp/, `the VIP web on port 80: ${vipText}`);
  t.match(vipText, '2/2 healthy', 'both backends up');
  for (const c of [web0b, web1]) t.match(vipText, `${addr(c)}:8080`, `backend ${addr(c)}:8080`);

  // Live: a container ADDed while the page is open appears without a reload.
  const t0 = Date.now();
  const web2 = await attach(t, net, { env, args: 'K8S_POD_NAME=web-2', conf });
  const added = Date.now();
  await page.locator(`#allocations tr.allocation[data-address="${addr(web2)}"]`).waitFor({ timeout: 15_000 });
  const ms = Date.now() - added;
  t.comment(`ADD took ${added - t0} ms; the row appeared ${ms} ms after the ADD returned (live state: ${await page.locator('#live-state').innerText()})`);
  t.ok(ms <= LIVE_BOUND_MS, `web-2's row appeared ${ms} ms after its ADD (bound ${LIVE_BOUND_MS} ms)`);
  await page.locator(`#networks tr[data-network="${net.name}"] .usage-text`, { hasText: `3 / ${count(mine.size)} used` }).waitFor({ timeout: LIVE_BOUND_MS });
  t.pass('the network\'s usage went to 3 as well');
  t.equal(await page.evaluate('window.vxtNoReload === true'), true, 'without a reload');
  t.equal(await page.locator('#live-state').innerText(), 'live', 'the event stream is open (with the token)');
}
