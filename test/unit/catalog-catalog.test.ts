// catalog/catalog.ts: the in-memory catalog. replaceHost works out a host's diff (adds,
// changes, removals; nothing for an identical set), put/remove change one endpoint, and every
// non-empty batch reaches every subscriber once, in order.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import type { Endpoint, EndpointChange } from '../../catalog/endpoint';

const ep = (host: string, c: string, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `${host}/net/${c}`, host, runtime: 'cni', containerId: c, network: 'net', name: c, aliases: [],
  addresses: ['10.0.0.1'], labels: {}, ports: [], ...more,
});
const kinds = (changes: readonly EndpointChange[]): string[] =>
  changes.map((c) => `${c.before ? (c.after ? 'change' : 'remove') : 'add'} ${c.id}`);

t.test('replaceHost: adds, changes and removals of one host; the others untouched', async (t) => {
  const cat = new EndpointCatalog();
  const batches: string[][] = [];
  cat.subscribe((changes) => batches.push(kinds(changes)));
  t.same(kinds(cat.replaceHost('h1', [ep('h1', 'a'), ep('h1', 'b')])), ['add h1/net/a', 'add h1/net/b']);
  cat.replaceHost('h2', [ep('h2', 'x')]);
  t.same(cat.replaceHost('h1', [ep('h1', 'a'), ep('h1', 'b')]), [], 'the same set again: no change');
  const changes = cat.replaceHost('h1', [ep('h1', 'a', { addresses: ['10.0.0.9'] }), ep('h1', 'c')]);
  t.same(kinds(changes).sort(), ['add h1/net/c', 'change h1/net/a', 'remove h1/net/b']);
  const changed = changes.find((c) => c.id === 'h1/net/a');
  t.same([changed?.before?.addresses, changed?.after?.addresses], [['10.0.0.1'], ['10.0.0.9']], 'before and after of a change');
  t.same(cat.list('h1').map((e) => e.containerId).sort(), ['a', 'c']);
  t.same(cat.list('h2').map((e) => e.containerId), ['x'], 'another host untouched');
  t.equal(cat.size, 3);
  t.same(batches.length, 3, 'one batch per call that changed something, none for an empty diff');
  t.same(kinds(cat.replaceHost('h1', [])).sort(), ['remove h1/net/a', 'remove h1/net/c']);
  t.same(cat.hosts(), ['h2'], 'a host with no endpoints is gone');
  t.same(cat.list('h1'), []);
});

t.test('put and remove: one endpoint; unchanged puts and unknown removals publish nothing', async (t) => {
  const cat = new EndpointCatalog();
  let batches = 0;
  const unsubscribe = cat.subscribe(() => { batches++; });
  t.same(kinds(cat.put(ep('h1', 'a'))), ['add h1/net/a']);
  t.same(cat.put(ep('h1', 'a')), [], 'the same endpoint again: nothing');
  t.same(kinds(cat.put(ep('h1', 'a', { labels: { x: 'y' } }))), ['change h1/net/a']);
  t.same(cat.get('h1/net/a')?.labels, { x: 'y' });
  t.same(cat.remove('nope'), []);
  t.same(kinds(cat.remove('h1/net/a')), ['remove h1/net/a']);
  t.equal(cat.get('h1/net/a'), undefined);
  t.same(cat.hosts(), []);
  t.equal(batches, 3);
  unsubscribe();
  cat.put(ep('h1', 'b'));
  t.equal(batches, 3, 'no batch after unsubscribing');
});

t.test('put of an id under another host moves it; replaceHost of the old host then leaves it alone', async (t) => {
  const cat = new EndpointCatalog();
  cat.put(ep('h1', 'a'));
  cat.put({ ...ep('h1', 'a'), host: 'h2' });
  t.same(cat.list('h1'), []);
  t.same(cat.list('h2').map((e) => e.id), ['h1/net/a']);
  t.equal(cat.size, 1);
});

t.test('every subscriber sees every batch in order', async (t) => {
  const cat = new EndpointCatalog();
  const a: string[] = [];
  const b: string[] = [];
  cat.subscribe((c) => a.push(...kinds(c)));
  cat.subscribe((c) => b.push(...kinds(c)));
  cat.put(ep('h1', 'a'));
  cat.replaceHost('h1', [ep('h1', 'b')]);
  cat.remove('h1/net/b');
  t.same(a, ['add h1/net/a', 'remove h1/net/a', 'add h1/net/b', 'remove h1/net/b']);
  t.same(b, a);
});
