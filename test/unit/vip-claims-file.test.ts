// vip/claims-file.ts: one host's named-VIP claims in a JSON file, so colliding names keep their
// addresses across a vxnetd restart (with claims in memory they were placed again in the
// catalog's order and could trade addresses).
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIp, parseCidr, type Cidr } from '../../ipam/addr';
import { InvalidVip } from '../../lib/errors';
import { MemoryClaims, VipAddresses, candidate } from '../../vip/address';
import { FileClaims, formatClaimsFile, parseClaimsFile } from '../../vip/claims-file';

const small = parseCidr('10.99.0.0/29') as Cidr;

/** Two names whose first candidates in `r` collide, the alphabetically later one first. */
function colliding(r: Cidr): [string, string] {
  const first = new Map<string, string>();
  for (let i = 0; ; i++) {
    const n = `svc${i}`;
    const a = formatIp(candidate(r, n, 0));
    const other = first.get(a);
    if (other !== undefined) return other < n ? [n, other] : [other, n];
    first.set(a, n);
  }
}

function tmpFile(t: Test): string {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-claims-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'vip-claims.json');
}

t.test('two colliding names keep their addresses across a restart (claims in a file)', async (t) => {
  const file = tmpFile(t);
  const [late, early] = colliding(small); // `late` sorts after `early` but claims first
  const before = new VipAddresses(new FileClaims(file), small, undefined);
  const a = formatIp((await before.assign(late)).v4);
  const b = formatIp((await before.assign(early)).v4);
  t.equal(a, formatIp(candidate(small, late, 0)), `${late} claimed first: its first candidate`);
  t.equal(b, formatIp(candidate(small, early, 1)), `${early} collided and probed on`);

  // A restart: a new store on the same file, names met in alphabetical order (the catalog's at start).
  const after = new VipAddresses(new FileClaims(file), small, undefined);
  t.equal(await after.load(), 2, 'both claims read back');
  t.equal(formatIp((await after.assign(early)).v4), b, `${early} keeps its address though it is placed first`);
  t.equal(formatIp((await after.assign(late)).v4), a, `${late} keeps its address`);

  // What the memory store did (the behaviour the file fixes): the same restart trades them.
  const mem = new VipAddresses(new MemoryClaims(), small, undefined);
  t.equal(formatIp((await mem.assign(early)).v4), a, 'in memory, a restart would give the earlier name the other one\'s address');
});

t.test('the file: atomic, sorted, mode 0600; missing is empty; a bad file is an InvalidVip', async (t) => {
  const file = tmpFile(t);
  const c = new FileClaims(file);
  t.same([...await c.list()], [], 'no file: no claims');
  t.equal(await c.claim('10.99.0.3', 'web'), 'web');
  t.equal(await c.claim('10.99.0.3', 'api'), 'web', 'first claim wins');
  t.equal(await c.claim('10.99.0.1', 'api'), 'api');
  t.same(JSON.parse(fs.readFileSync(file, 'utf8')), { version: 1, claims: { '10.99.0.1': 'api', '10.99.0.3': 'web' } });
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  t.same(fs.readdirSync(join(file, '..')), ['vip-claims.json'], 'no temp file left beside it');
  t.same([...parseClaimsFile(formatClaimsFile(new Map([['a', 'x']])), 'f')], [['a', 'x']], 'round trip');
  for (const bad of ['{', '[]', '{"version":2,"claims":{}}', '{"version":1,"claims":{"10.0.0.1":3}}']) {
    fs.writeFileSync(file, bad);
    await t.rejects(new FileClaims(file).list(), InvalidVip, `refused: ${bad}`);
  }
  const over = new FileClaims(file);
  await t.rejects(over.list(), InvalidVip);
  t.equal(await over.claim('10.99.0.2', 'db'), 'db', 'after the refusal (logged by the service) claims start empty');
  t.same(JSON.parse(fs.readFileSync(file, 'utf8')).claims, { '10.99.0.2': 'db' });
});

t.test('claims made together are written together: all kept, first claim wins, a failed write takes them back', async (t) => {
  const file = tmpFile(t);
  const c = new FileClaims(file);
  const names = Array.from({ length: 2000 }, (_, i) => `s${i}`);
  // Every name its own address, and a second name racing for each tenth address.
  const got = await Promise.all(names.flatMap((n, i) => [c.claim(`10.98.${i >> 8}.${i & 255}`, n), ...(i % 10 ? [] : [c.claim(`10.98.${i >> 8}.${i & 255}`, `late${i}`)])]));
  t.equal(got.filter((h) => h.startsWith('late')).length, 0, 'the first claim of an address wins, also within one batch');
  const written = JSON.parse(fs.readFileSync(file, 'utf8')).claims as Record<string, string>;
  t.equal(Object.keys(written).length, 2000, 'every claim in the file');
  t.equal(written['10.98.7.207'], 's1999');
  // A file that cannot be written (its directory became a file after it was read): the claim fails and is not kept.
  const blocked = join(file, '..', 'sub', 'vip-claims.json');
  const b = new FileClaims(blocked);
  t.same([...await b.list()], [], 'no file yet');
  fs.writeFileSync(join(file, '..', 'sub'), '');
  await t.rejects(b.claim('10.98.0.1', 'x'));
  t.same([...await b.list()], [], 'a claim whose write failed is not kept');
});
