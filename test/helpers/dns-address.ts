// A DNS listen address for a test's vxnetd that containers reach through their gateway: one
// 198.51.100.<from..from+span-1> address (the range DC/OS used for its DNS) on a portless vxt
// bridge of the test's own. The address is host-global, so it goes with its link (teardown).
import { randomBytes } from 'node:crypto';
import type { TestLike } from './netns';
import { exec } from './sh';

export async function dnsTestAddress(t: TestLike, from: number, span: number): Promise<string> {
  const link = `vxt-da${randomBytes(2).toString('hex')}`;
  const addr = `198.51.100.${from + Math.floor(Math.random() * span)}`;
  t.teardown(async () => { await exec('ip', ['link', 'del', link]); });
  for (const args of [['link', 'add', link, 'type', 'bridge'], ['addr', 'add', `${addr}/32`, 'dev', link], ['link', 'set', link, 'up']]) {
    const r = await exec('ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  }
  return addr;
}
