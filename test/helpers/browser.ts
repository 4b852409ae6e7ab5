// Debian's chromium, headless, driven by playwright-core, for the web view's tests
// (test/integration/ui-browser.test.ts, test/overlay/api-cluster.test.ts): the launcher, a page
// that records what should never happen (page errors, failed requests, a request off the page's
// origin), and screenshots under .tap/screenshots/. With `netns`, chromium runs inside that
// network namespace (`ip netns exec` execs it in place, so playwright's pipe to it is kept): a
// vxnetd listening on a namespace's loopback is reached as a person on that host would.
import type { Test } from 'tap';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const SHOTS = resolve(__dirname, '..', '..', '.tap', 'screenshots');

/** Why the browser tests cannot run here, or undefined. */
export const missingChromium = (): string | undefined =>
  (fs.existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (Debian package chromium)`);

export interface OpenPage {
  readonly browser: Browser;
  readonly page: Page;
  /** Page errors, failed requests (but the event stream's, cut when the page closes), requests off `origin`. */
  readonly problems: string[];
}

/** A headless chromium (closed by a teardown) and a 1440x900 page in UTC; in `netns` when given. */
export async function openPage(t: Test, origin: string, o: { netns?: string } = {}): Promise<OpenPage> {
  let executablePath = CHROMIUM;
  if (o.netns !== undefined) {
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-chromium-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    executablePath = join(dir, 'chromium');
    fs.writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${o.netns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  }
  const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, timezoneId: 'UTC', locale: 'en-US' });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => { if (!r.url().endsWith('/api/v1/events')) problems.push(`request failed: ${r.url()} (${r.failure()?.errorText ?? '?'})`); });
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) problems.push(`a request off this origin: ${r.url()}`); });
  return { browser, page, problems };
}

/** A full-page screenshot as SHOTS/NAME (for review; failures only commented). */
export async function screenshot(t: Test, page: Page, name: string): Promise<string> {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true }).catch((e: Error) => t.comment(`no screenshot: ${e.message}`));
  t.comment(`screenshot: ${file}`);
  return file;
}
