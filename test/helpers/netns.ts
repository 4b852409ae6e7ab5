// Network namespaces and links for root integration tests. Everything created here is named
// with the `vxt` prefix, which scripts/test.sh sweeps before each run (leftovers of crashed
// runs), and is removed again by a t.teardown registered at creation.
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { exec, execSync, type ExecResult } from './sh';

export { exec, inNetns, pollUntil, sh } from './sh';

/** Prefix of every namespace, link, bridge and nft table a test creates. */
export const TEST_PREFIX = 'vxt';

/** The part of a tap Test these helpers use (a subtest `t` or the root `t`). */
export type TestLike = Pick<Test, 'teardown' | 'comment'>;

export interface Netns {
  name: string;
  /** The bind mount `ip netns add` creates: what CNI_NETNS and setns() take. */
  path: string;
}

/** `vxt-` + 8 random hex digits: 12 chars, short enough for a link name (<= 15). */
export function testName(prefix = `${TEST_PREFIX}-`): string {
  const name = `${prefix}${randomBytes(4).toString('hex')}`;
  assertTestName(name);
  if (name.length > 15) throw new Error(`test name ${name} is longer than 15 characters`);
  return name;
}

/** Throws unless `name` carries the test prefix: guards every destructive helper. */
export function assertTestName(name: string): void {
  if (!name.startsWith(TEST_PREFIX)) throw new Error(`refusing to touch "${name}": test objects must start with "${TEST_PREFIX}"`);
}

// Namespaces this process created and has not deleted yet; removed on exit if a teardown
// never ran (uncaught error). A SIGKILLed test leaves them to scripts/test.sh's sweep.
const live = new Set<string>();
process.once('exit', () => {
  for (const name of live) execSync('ip', ['netns', 'delete', name], { timeoutMs: 5000 });
});

/**
 * Creates network namespace `vxt-<8 hex>` (loopback up unless `lo: false`) and registers a
 * teardown on `t` that deletes it. Rejects if `ip netns add` fails.
 */
export async function newNetns(t: TestLike, opts: { name?: string; lo?: boolean } = {}): Promise<Netns> {
  const name = opts.name ?? testName();
  assertTestName(name);
  const add = await exec('ip', ['netns', 'add', name]);
  if (add.code !== 0) throw new Error(`ip netns add ${name}: ${add.stderr.trim()}`);
  live.add(name);
  // Teardowns must not throw: tap drops the remaining ones when one does.
  t.teardown(async () => {
    const r = await deleteNetns(name);
    if (r.code !== 0 && (await netnsExists(name))) t.comment(`teardown: ip netns delete ${name}: ${r.stderr.trim()}`);
  });
  if (opts.lo !== false) {
    const lo = await exec('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    if (lo.code !== 0) throw new Error(`ip -n ${name} link set lo up: ${lo.stderr.trim()}`);
  }
  return { name, path: `/run/netns/${name}` };
}

/** Deletes a test namespace (only `vxt*` names). Resolves with the `ip` result. */
export async function deleteNetns(name: string): Promise<ExecResult> {
  assertTestName(name);
  const r = await exec('ip', ['netns', 'delete', name]);
  live.delete(name);
  return r;
}

export async function netnsExists(name: string): Promise<boolean> {
  const r = await exec('ip', ['netns', 'list']);
  return r.stdout.split('\n').some((l) => l.split(' ')[0] === name);
}

/** True if link `name` exists in the host namespace, or in namespace `netns` if given. */
export async function linkExists(name: string, netns?: string): Promise<boolean> {
  const r = await exec('ip', [...(netns ? ['-n', netns] : []), 'link', 'show', 'dev', name]);
  return r.code === 0;
}

/**
 * Registers a teardown on `t` that deletes host link `name` if it still exists (for links a
 * test or the code under test creates in the host namespace). Only `vxt*` names.
 */
export function cleanupLink(t: TestLike, name: string): void {
  assertTestName(name);
  t.teardown(async () => {
    if (!(await linkExists(name))) return;
    const r = await exec('ip', ['link', 'delete', 'dev', name]);
    if (r.code !== 0 && (await linkExists(name))) t.comment(`teardown: ip link delete ${name}: ${r.stderr.trim()}`);
  });
}

/** `ip -j ... addr show dev NAME` addresses (CIDR strings) of a link, in a namespace or not. */
export async function linkAddrs(name: string, netns?: string): Promise<string[]> {
  const r = await exec('ip', [...(netns ? ['-n', netns] : []), '-j', 'addr', 'show', 'dev', name]);
  if (r.code !== 0) return [];
  const parsed: unknown = JSON.parse(r.stdout || '[]');
  const out: string[] = [];
  if (!Array.isArray(parsed)) return out;
  for (const link of parsed as Array<{ addr_info?: Array<{ local?: string; prefixlen?: number }> }>) {
    for (const a of link.addr_info ?? []) if (a.local !== undefined) out.push(`${a.local}/${a.prefixlen ?? ''}`);
  }
  return out;
}
