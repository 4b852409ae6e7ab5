// net/nft.ts NftSession (a long-running `nft -i`) against the kernel, inside a test namespace:
// a line is one transaction (a failing statement undoes the whole line, reported as a typed
// error), the session sees tables changed by other processes, comes back after its process is
// killed, and its pid counts as the runner's own (the VIP table's guard relies on it).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import t from 'tap';
import { DatapathFailure } from '../../lib/errors';
import { NftRunner } from '../../net/nft';
import { exec, newNetns } from '../helpers/netns';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
} else {
  void main();
}

async function main(): Promise<void> {
  const ns = await newNetns(t);
  const nft = async (...args: string[]): Promise<string> => {
    const r = await exec('ip', ['netns', 'exec', ns.name, 'nft', ...args]);
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout;
  };
  const runner = new NftRunner({ netns: ns.name });
  await runner.run('add table inet vxtsess\nadd set inet vxtsess s { type ipv4_addr; }\n', 'setup');
  const session = runner.session();
  t.teardown(() => session.close());

  t.test('statements run as one transaction; a failure undoes the line and is a DatapathFailure', async (t) => {
    await session.run('add element inet vxtsess s { 10.0.0.1 }\nadd element inet vxtsess s { 10.0.0.2 }\n', 'add');
    t.match(await nft('list', 'set', 'inet', 'vxtsess', 's'), /10\.0\.0\.1, 10\.0\.0\.2/);
    const err = await session.run('add element inet vxtsess s { 10.0.0.3 }\ndelete element inet vxtsess s { 10.9.9.9 }\n', 'mixed').catch((e: unknown) => e);
    t.ok(err instanceof DatapathFailure, 'typed error');
    t.match(String((err as Error).message), /mixed: nft failed: .*No such file or directory/);
    t.notMatch(await nft('list', 'set', 'inet', 'vxtsess', 's'), /10\.0\.0\.3/, 'the whole line was undone');
    await session.run('add element inet vxtsess s { 10.0.0.4 }\n', 'after an error');
    t.match(await nft('list', 'set', 'inet', 'vxtsess', 's'), /10\.0\.0\.4/, 'the session goes on after an error');
  });

  t.test('a table replaced by another process is seen by the session', async (t) => {
    await runner.run('delete table inet vxtsess\nadd table inet vxtsess\nadd set inet vxtsess s { type ipv4_addr; }\n', 'replace');
    await session.run('add element inet vxtsess s { 10.0.1.1 }\n', 'after replace');
    t.match(await nft('list', 'set', 'inet', 'vxtsess', 's'), /10\.0\.1\.1/);
  });

  t.test('killed: the next call starts a new process; its pid is the runner\'s own', async (t) => {
    const pid = session.pid as number;
    t.ok(pid > 0, 'a process');
    t.match((await exec('ps', ['-o', 'args=', '-p', String(pid)])).stdout, /nft -i/, 'it is nft -i');
    t.ok(runner.isOwn(pid), 'own pid');
    process.kill(pid, 'SIGKILL');
    await session.run('add element inet vxtsess s { 10.0.1.2 }\n', 'after kill').catch(() => session.run('add element inet vxtsess s { 10.0.1.2 }\n', 'retry'));
    t.match(await nft('list', 'set', 'inet', 'vxtsess', 's'), /10\.0\.1\.2/);
    t.not(session.pid, pid, 'a new process');
    t.notOk(runner.isOwn(pid), 'the dead one no longer counts as own');
  });

  t.test('nft monitor ends with its owner, even when the owner is SIGKILLed', async (t) => {
    const owner = spawn(process.execPath, [...process.execArgv, path.join(__dirname, 'helpers', 'nft-monitor-owner.ts'), ns.name], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => { if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL'); });
    const pid = await new Promise<number>((resolve, reject) => {
      owner.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
      owner.once('exit', () => reject(new Error('the owner exited before printing the monitor pid')));
    });
    t.teardown(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone, as it should be */ } });
    t.match((await exec('ps', ['-o', 'args=', '-p', String(pid)])).stdout, /nft monitor/, 'the monitor runs');
    owner.kill('SIGKILL');
    const alive = (): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };
    const deadline = Date.now() + 5000;
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    t.notOk(alive(), 'the monitor is gone after its owner was killed');
  });
}
