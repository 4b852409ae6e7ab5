// The import graph points down only (README "Layout"): an import from one top-level folder
// into another must go to a lower layer. Folders on one layer (the doors: cni/, cnm/, ctl/,
// handoff/) do not import each other: a door is imported only by bin/ (where vxnetd is
// composed, bin/vxnetd/) and tests. A folder missing from LAYERS fails the test, so a new
// module has to be given its place.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/** Top-level source folders, top to bottom; a folder may import only folders of a higher number. */
const LAYERS: Readonly<Record<string, number>> = {
  bin: 0,
  cni: 2, cnm: 2, ctl: 2, handoff: 2,
  dns: 3, vip: 3, edge: 3, api: 3,
  catalog: 4,
  overlay: 4,
  datapath: 5,
  net: 6,
  ipam: 7, etcd: 7,
  lib: 8,
  // The web view: a browser bundle (Vite), on a layer below everything, so it imports nothing
  // from the server code; nothing of the server imports it either (test below).
  ui: 9,
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (e.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Cross-folder imports of the production code: [file, imported folder]. */
function crossImports(): Array<[string, string, string]> {
  const found: Array<[string, string, string]> = [];
  const folders = readdirSync(ROOT).filter((d) => !d.startsWith('.') && !['node_modules', 'test', 'bench', 'scripts', 'dist', 'build', 'tmp', 'native', 'deploy'].includes(d) && statSync(path.join(ROOT, d)).isDirectory());
  for (const folder of folders) {
    for (const file of sources(path.join(ROOT, folder))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from\s+|require\(|import\(|import\s+)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        const target = path.relative(ROOT, path.resolve(path.dirname(file), m[1] as string));
        const top = target.split(path.sep)[0] as string;
        if (top !== folder && !target.endsWith('.json')) found.push([path.relative(ROOT, file), folder, top]);
      }
    }
  }
  return found;
}

t.test('every source folder has a layer', async (t) => {
  const folders = new Set(crossImports().flatMap(([, from, to]) => [from, to]));
  for (const f of folders) t.ok(f in LAYERS, `${f}/ has a place in LAYERS`);
});

t.test('imports point down only', async (t) => {
  const up = crossImports().filter(([, from, to]) => !((LAYERS[to] ?? -1) > (LAYERS[from] ?? 99)));
  t.same(up.map(([file, , to]) => `${file} -> ${to}/`), [], 'no import into the same layer or a higher one');
});

t.test('the web view (ui/) is a browser bundle apart', async (t) => {
  const crossing = crossImports().filter(([, from, to]) => (from === 'ui') !== (to === 'ui'));
  t.same(crossing.map(([file, , to]) => `${file} -> ${to}/`), [], 'ui/ imports no server code and no server code imports ui/');
});

t.test('the check can fail', async (t) => {
  t.notOk((LAYERS.cni as number) < (LAYERS.cnm as number) || (LAYERS.cnm as number) < (LAYERS.cni as number), 'cni/ and cnm/ are one layer: neither may import the other');
  t.ok((LAYERS.overlay as number) > (LAYERS.cni as number), 'overlay/ is below cni/');
});
