// Operator labels across processes: the built vxnetctl run concurrently on one data directory
// keeps every run's labels (the lock), vxnetd's OperatorLabelsFile sees a change within a
// bounded poll and says which names changed, keeps the last good labels when the file is
// malformed, and the lock gives up with a bound and breaks a dead holder's lock.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseLabelEdit } from '../../catalog/label-rules';
import { OperatorLabelsFile, editLabelsFile, readLabelsFile } from '../../catalog/operator-labels';
import { TryAgainLater } from '../../lib/errors';
import { withFileLock } from '../../lib/file-lock';
import { createLogger } from '../../lib/log';
import { exec, pollUntil } from '../helpers/sh';

// Some forty vxnetctl processes: about 0.4 s each on a loaded machine.
t.setTimeout(180_000);
const VXNETCTL = resolve(__dirname, '..', '..', 'dist', 'bin', 'vxnetctl');
// The built program, without the loader options tap gives its own children.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !/^_?TAP/.test(k)));
const vxnetctl = (args: readonly string[]) => exec(VXNETCTL, args, { env, timeoutMs: 30_000 });

const newDir = (t: Test): string => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-labels-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};

t.test('the built vxnetctl, run concurrently on one file, keeps every run\'s labels', { skip: fs.existsSync(VXNETCTL) ? false : `${VXNETCTL} is missing: run npm run build first` }, async (t) => {
  const dataDir = newDir(t);
  const file = join(dataDir, 'endpoint-labels.json');
  // Two at once, ten times: each round's two labels must both be there.
  for (let round = 0; round < 10; round++) {
    const [a, b] = await Promise.all([
      vxnetctl(['--data-dir', dataDir, 'endpoint', 'label', 'web', `a${round}=x`]),
      vxnetctl(['--data-dir', dataDir, 'endpoint', 'label', 'web', `b${round}=y`]),
    ]);
    t.same([a.code, a.stderr, b.code, b.stderr], [0, '', 0, ''], `round ${round}: both succeed`);
    const web = readLabelsFile(file).web ?? {};
    if (web[`a${round}`] !== 'x' || web[`b${round}`] !== 'y') {
      t.fail(`round ${round}: a label was lost: ${JSON.stringify(web)}`);
      return;
    }
  }
  t.equal(Object.keys(readLabelsFile(file).web ?? {}).length, 20, 'all 20 labels of the 10 rounds');
  // Eight at once on eight names.
  const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => vxnetctl(['--data-dir', dataDir, 'endpoint', 'label', `n${i}`, `k=${i}`])));
  t.same(runs.map((r) => r.code), Array(8).fill(0), 'eight concurrent runs succeed');
  const all = readLabelsFile(file);
  t.same(Array.from({ length: 8 }, (_, i) => all[`n${i}`]), Array.from({ length: 8 }, (_, i) => ({ k: String(i) })), 'and none is lost');
  t.same(fs.readdirSync(dataDir).sort(), ['endpoint-labels.json'], 'no lock or temp file left behind');
  const listed = await vxnetctl(['--data-dir', dataDir, 'endpoint', 'labels', '--json']);
  t.equal(Object.keys((JSON.parse(listed.stdout) as { endpoints: object }).endpoints).length, 9, 'labels --json lists the nine names');
});

t.test('OperatorLabelsFile follows the file: changes within a bounded poll, malformed kept, removal', async (t) => {
  const dataDir = newDir(t);
  const file = join(dataDir, 'endpoint-labels.json');
  const lines: string[] = [];
  const labels = new OperatorLabelsFile({ dataDir, log: createLogger('test', 'info', (l) => lines.push(l)) });
  const changes: string[][] = [];
  labels.onChange((names) => changes.push([...names]));
  t.teardown(() => labels.stop());
  await labels.start();
  t.equal(labels.labelsFor('web'), undefined, 'no file: no labels');

  await editLabelsFile(file, 'web', parseLabelEdit(['vxnet.service=api']));
  const t0 = Date.now();
  await pollUntil(() => labels.labelsFor('web')?.['vxnet.service'] === 'api', { timeoutMs: 2000, intervalMs: 5, what: 'the new label seen' });
  t.comment(`label seen ${Date.now() - t0} ms after the write`);
  t.same(labels.labelsFor('WEB'), { 'vxnet.service': 'api' }, 'looked up case-insensitively');
  t.same(changes, [['web']], 'onChange named the endpoint');

  await editLabelsFile(file, 'db', parseLabelEdit(['x=1']));
  await editLabelsFile(file, 'web', parseLabelEdit(['tier=front']));
  await pollUntil(() => labels.labelsFor('web')?.tier === 'front' && labels.labelsFor('db'), { timeoutMs: 2000, intervalMs: 5, what: 'two more edits seen' });
  t.same(changes.flat().sort(), ['db', 'web', 'web'], 'each changed name reported; the two edits may be one reload');

  // A hand edit gone wrong: logged, the last good labels kept, no change reported.
  changes.length = 0;
  fs.writeFileSync(file, '{"version": 1, "endpoints": {"web": ');
  await pollUntil(() => lines.some((l) => l.includes('operator labels file unusable')), { timeoutMs: 2000, intervalMs: 5, what: 'the malformed file logged' });
  t.same(labels.labelsFor('web'), { 'vxnet.service': 'api', tier: 'front' }, 'the last good labels kept');
  t.same(changes, [], 'no change reported');

  fs.writeFileSync(file, JSON.stringify({ version: 1, endpoints: { web: { tier: 'back' } } }));
  await pollUntil(() => labels.labelsFor('web')?.tier === 'back', { timeoutMs: 2000, intervalMs: 5, what: 'the repaired file read' });
  t.same(labels.labelsFor('web'), { tier: 'back' });
  t.equal(labels.labelsFor('db'), undefined, 'db gone with the repair');
  t.same(changes.flat().sort(), ['db', 'web']);

  fs.rmSync(file);
  await pollUntil(() => labels.labelsFor('web') === undefined, { timeoutMs: 2000, intervalMs: 5, what: 'the removal seen' });
  t.same(labels.all(), {}, 'a removed file: no labels');

  await labels.stop();
  await editLabelsFile(file, 'late', parseLabelEdit(['a=b']));
  t.equal(labels.reload().length, 1, 'reload() still reads on demand');
});

t.test('the lock: bounded wait on a live holder, a dead holder\'s lock broken', async (t) => {
  const dir = newDir(t);
  const file = join(dir, 'endpoint-labels.json');
  // This process holds the lock (alive): an edit gives up after its bound.
  let release: () => void = () => undefined;
  const held = withFileLock(`${file}.lock`, () => new Promise<void>((r) => { release = r; }));
  const t0 = Date.now();
  const err = await editLabelsFile(file, 'web', parseLabelEdit(['a=b']), 300).then(() => undefined, (e: unknown) => e);
  const waited = Date.now() - t0;
  t.ok(err instanceof TryAgainLater, 'TryAgainLater');
  t.match((err as Error).message, `${file}.lock is still locked after 300 ms (by pid ${process.pid}); try again`);
  t.ok(waited >= 290 && waited < 2000, `gave up after its bound (${waited} ms)`);
  release();
  await held;
  t.notOk(fs.existsSync(`${file}.lock`), 'released');

  // A lock left by a process that is gone (a pid no process has).
  const dead = await exec('sh', ['-c', 'echo $$']);
  const deadPid = Number(dead.stdout.trim());
  await pollUntil(async () => (await exec('kill', ['-0', String(deadPid)])).code !== 0, { timeoutMs: 2000, what: 'the short-lived pid gone' });
  fs.writeFileSync(`${file}.lock`, `${deadPid}\n`);
  t.same(await editLabelsFile(file, 'web', parseLabelEdit(['a=b']), 1000), { a: 'b' }, 'the dead holder\'s lock is broken');
  t.notOk(fs.existsSync(`${file}.lock`));

  // A live holder's lock older than staleMs (30 s): broken too (a holder keeps it for milliseconds).
  fs.writeFileSync(`${file}.lock`, `${process.pid}\n`);
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(`${file}.lock`, old, old);
  t.same(await editLabelsFile(file, 'web', parseLabelEdit(['c=d']), 1000), { a: 'b', c: 'd' }, 'a lock a minute old is broken');
  t.notOk(fs.existsSync(`${file}.lock`));
});
