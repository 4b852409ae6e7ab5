// Operator labels without root: the rules of catalog/label-rules.ts (names, keys, values, the
// KEY=VALUE words, the file's document), the exposed-ports reading of
// catalog/runtime-metadata.ts, and `vxnetctl endpoint label | labels` in-process on a temp
// data directory: what it writes, prints and refuses, and how the labels then rank in
// catalog/derive.ts.
import t from 'tap';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveEndpoint } from '../../catalog/derive';
import { applyLabelEdit, checkEndpointName, checkLabelKey, checkLabelValue, labelsOf, parseLabelEdit, parseLabelsDocument, serializeLabelsDocument } from '../../catalog/label-rules';
import { readLabelsFile } from '../../catalog/operator-labels';
import { exposedPortsOf, factsOfInspect } from '../../catalog/runtime-metadata';
import { parseCommandLine } from '../../ctl/args';
import { DecodingFailure } from '../../lib/errors';
import { UsageError } from '../../lib/usage';
import { ctl } from '../helpers/ctl';

const usage = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error('no UsageError');
};

t.test('endpoint names: one DNS label, lowercased', async (t) => {
  t.equal(checkEndpointName('Web-1'), 'web-1');
  t.equal(checkEndpointName('db_2'), 'db_2');
  t.equal(checkEndpointName('a'.repeat(63)), 'a'.repeat(63));
  for (const bad of ['', 'a.b', '-web', 'web-', 'a b', 'a'.repeat(64), '/web', 'wéb']) {
    t.match(usage(() => checkEndpointName(bad)), `endpoint name ${JSON.stringify(bad)} is not a DNS label: 1-63 characters`, `refuses ${JSON.stringify(bad)}`);
  }
});

t.test('keys: non-empty, no "=", no whitespace, no control characters; values printable', async (t) => {
  t.equal(checkLabelKey('com.example/tier'), 'com.example/tier');
  t.equal(usage(() => checkLabelKey('')), 'a label key is empty');
  t.equal(usage(() => checkLabelKey('a=b')), 'label key "a=b" contains "="');
  t.equal(usage(() => checkLabelKey('a b')), 'label key "a b" contains whitespace (U+0020)');
  t.equal(usage(() => checkLabelKey('a\tb')), 'label key "a\\tb" contains whitespace (U+0009)');
  t.equal(usage(() => checkLabelKey('a\u00a0b')), 'label key "a\u00a0b" contains whitespace (U+00A0)');
  t.equal(usage(() => checkLabelKey('a\u0001')), 'label key "a\\u0001" contains a control character (U+0001)');
  t.equal(checkLabelValue('k', 'front end, ünïcode = ok'), 'front end, ünïcode = ok');
  t.equal(checkLabelValue('k', ''), '', 'an empty value is a value');
  t.equal(usage(() => checkLabelValue('k', 'a\nb')), 'the value of label "k" contains a control character (U+000A); values must be printable');
  t.equal(usage(() => checkLabelValue('k', 'a\u009bb')), 'the value of label "k" contains a control character (U+009B); values must be printable');
});

t.test('KEY=VALUE words and --remove', async (t) => {
  t.same(parseLabelEdit(['a=1', 'vxnet.ports=http=8080,53/udp', 'e='], ['old']),
    { set: { a: '1', 'vxnet.ports': 'http=8080,53/udp', e: '' }, remove: ['old'] }, 'the first "=" splits');
  t.same(parseLabelEdit([], ['x', 'x']), { set: {}, remove: ['x'] }, 'a removal given twice is one');
  t.equal(usage(() => parseLabelEdit(['novalue'])), '"novalue" is not KEY=VALUE (to remove a label: --remove KEY)');
  t.equal(usage(() => parseLabelEdit(['=v'])), 'a label key is empty');
  t.equal(usage(() => parseLabelEdit(['a=1', 'a=2'])), 'label "a" is given twice');
  t.equal(usage(() => parseLabelEdit(['a=1'], ['a'])), 'label "a" is both set and removed');
  t.equal(usage(() => parseLabelEdit([], ['a b'])), 'label key "a b" contains whitespace (U+0020)');
  t.equal(usage(() => parseLabelEdit([])), 'nothing to change: give KEY=VALUE or --remove KEY');
});

t.test('edits, and the document: sorted, checked, "__proto__" an ordinary name and key', async (t) => {
  let doc = applyLabelEdit({}, 'web', parseLabelEdit(['b=2', 'a=1', '__proto__=p']));
  doc = applyLabelEdit(doc, '__proto__', parseLabelEdit(['k=v']));
  // (An object literal's __proto__ sets the prototype: the expected value is built from entries.)
  t.same(labelsOf(doc, 'web'), Object.fromEntries([['__proto__', 'p'], ['a', '1'], ['b', '2']]));
  t.same(Object.keys(labelsOf(doc, 'web') ?? {}), ['__proto__', 'a', 'b']);
  t.equal(Object.getPrototypeOf(labelsOf(doc, 'web')), Object.prototype, 'the prototype untouched');
  t.same(labelsOf(doc, '__proto__'), { k: 'v' });
  t.equal(labelsOf(doc, 'constructor'), undefined, 'inherited names are not names');
  const text = serializeLabelsDocument(doc);
  t.equal(text, '{\n  "version": 1,\n  "endpoints": {\n    "__proto__": {\n      "k": "v"\n    },\n    "web": {\n      "__proto__": "p",\n      "a": "1",\n      "b": "2"\n    }\n  }\n}\n');
  t.same(parseLabelsDocument(text), doc, 'read back');
  doc = applyLabelEdit(doc, 'web', parseLabelEdit([], ['a', 'b', '__proto__']));
  t.equal(labelsOf(doc, 'web'), undefined, 'a name left with no labels is dropped');
  t.same(Object.keys(doc), ['__proto__']);

  t.same(parseLabelsDocument('{"version":1}'), {}, 'no endpoints');
  t.same(parseLabelsDocument('{"version":1,"endpoints":{"a":{}}}'), {}, 'a name with no labels is absent');
  t.equal(usage(() => parseLabelsDocument('{"version":1,')).slice(0, 8), 'not JSON');
  t.equal(usage(() => parseLabelsDocument('[]')), 'not a JSON object');
  t.equal(usage(() => parseLabelsDocument('{"version":2,"endpoints":{}}')), '"version" is 2, expected 1');
  t.equal(usage(() => parseLabelsDocument('{"version":1,"endpoints":[]}')), '"endpoints" is not an object');
  t.equal(usage(() => parseLabelsDocument('{"version":1,"endpoints":{"Web":{}}}')), 'endpoint name "Web" is not lowercase');
  t.match(usage(() => parseLabelsDocument('{"version":1,"endpoints":{"a.b":{}}}')), 'endpoint name "a.b" is not a DNS label');
  t.equal(usage(() => parseLabelsDocument('{"version":1,"endpoints":{"a":{"k":1}}}')), 'label "k" of "a" is not a string');
  t.equal(usage(() => parseLabelsDocument('{"version":1,"endpoints":{"a":{"k k":"v"}}}')), 'label key "k k" contains whitespace (U+0020)');
  t.equal(usage(() => parseLabelsDocument('{"version":1,"endpoints":{"a":"x"}}')), 'the labels of "a" are not an object');
});

t.test('runtime inspect to facts', async (t) => {
  t.same(exposedPortsOf({ '8080/tcp': {}, '53/udp': {}, '9000': {}, '132/sctp': {}, '0/tcp': {}, '70000/tcp': {}, 'x/tcp': {} }),
    [{ port: 9000, protocol: 'tcp' }, { port: 8080, protocol: 'tcp' }, { port: 53, protocol: 'udp' }], 'sctp and malformed keys are left out; a bare number is tcp');
  t.same(exposedPortsOf(null), []);
  t.same(factsOfInspect({ Name: '/web', Config: { Labels: { a: 'b' }, ExposedPorts: { '80/tcp': {} } } }),
    { name: 'web', labels: { a: 'b' }, exposedPorts: [{ port: 80, protocol: 'tcp' }] });
  t.same(factsOfInspect({ Config: { Labels: null, ExposedPorts: null } }), { labels: {}, exposedPorts: [] }, 'podman gives null for none');
  t.same(factsOfInspect({}), { labels: {}, exposedPorts: [] });
});

t.test('precedence: operator labels over runtime labels over CNI args labels', async (t) => {
  const { endpoint } = deriveEndpoint({
    host: 'h', runtime: 'cni', containerId: 'c', network: 'n', name: 'web', addresses: ['10.0.0.2'],
    cniLabels: { a: 'cni', b: 'cni', c: 'cni' }, runtimeLabels: { b: 'runtime', c: 'runtime' }, operatorLabels: { c: 'operator', 'vxnet.service': 'api' },
  });
  t.same(endpoint.labels, { a: 'cni', b: 'runtime', c: 'operator', 'vxnet.service': 'api' });
  t.equal(endpoint.service, 'api');
});

t.test('vxnetctl endpoint label | labels on a data directory', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-labels-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const file = join(dataDir, 'endpoint-labels.json');

  let r = await ctl(['--data-dir', dataDir, 'endpoint', 'label', 'Web', 'tier=front', 'vxnet.ports=http=8080']);
  t.same([r.code, r.stdout, r.stderr], [0, 'endpoint web: tier=front, vxnet.ports=http=8080\n', ''], 'the name lowercased, its labels after');
  t.same(readLabelsFile(file), { web: { tier: 'front', 'vxnet.ports': 'http=8080' } }, 'the data directory made, the file written');
  r = await ctl(['endpoint', 'label', 'web', '--remove', 'tier', 'owner=ops', '--json'], { VXNET_DATA_DIR: dataDir });
  t.equal(r.code, 0);
  t.same(JSON.parse(r.stdout), { file, name: 'web', labels: { owner: 'ops', 'vxnet.ports': 'http=8080' } }, '$VXNET_DATA_DIR, --remove, --json');
  await ctl(['--data-dir', dataDir, 'endpoint', 'label', 'db', 'vxnet.service=pg']);

  r = await ctl(['--data-dir', dataDir, 'endpoint', 'labels']);
  t.equal(r.stdout, 'ENDPOINT  KEY            VALUE\ndb        vxnet.service  pg\nweb       owner          ops\nweb       vxnet.ports    http=8080\n');
  r = await ctl(['--data-dir', dataDir, 'endpoint', 'labels', '--json']);
  t.same(JSON.parse(r.stdout), { file, endpoints: { db: { 'vxnet.service': 'pg' }, web: { owner: 'ops', 'vxnet.ports': 'http=8080' } } });
  r = await ctl(['--data-dir', dataDir, 'endpoint', 'labels', 'DB', '--json']);
  t.same(JSON.parse(r.stdout), { file, name: 'db', labels: { 'vxnet.service': 'pg' } });
  r = await ctl(['--data-dir', dataDir, 'endpoint', 'labels', 'nobody']);
  t.equal(r.stdout, 'endpoint nobody: no operator labels\n');
  r = await ctl(['--data-dir', join(dir, 'empty'), 'endpoint', 'labels']);
  t.equal(r.stdout, `no operator labels (${join(dir, 'empty', 'endpoint-labels.json')})\n`, 'no file: no labels');

  const before = fs.readFileSync(file, 'utf8');
  const refused: Array<[string[], string]> = [
    [['endpoint', 'label', 'a.b', 'k=v'], 'vxnetctl: endpoint name "a.b" is not a DNS label: 1-63 characters of a-z, 0-9, "-" and "_", not starting or ending with "-"\n'],
    [['endpoint', 'label', 'web', 'k y=v'], 'vxnetctl: label key "k y" contains whitespace (U+0020)\n'],
    [['endpoint', 'label', 'web', 'k=a\u0007'], 'vxnetctl: the value of label "k" contains a control character (U+0007); values must be printable\n'],
    [['endpoint', 'label', 'web', 'kv'], 'vxnetctl: "kv" is not KEY=VALUE (to remove a label: --remove KEY)\n'],
    [['endpoint', 'label', 'web'], 'vxnetctl: nothing to change: give KEY=VALUE or --remove KEY\n'],
    [['endpoint', 'label'], 'vxnetctl: endpoint label needs the endpoint NAME (see vxnetctl endpoint label --help)\n'],
    [['endpoint', 'label', 'web', '--remove', ''], 'vxnetctl: option --remove needs a non-empty value (see vxnetctl endpoint label --help)\n'],
    [['endpoint', 'labels', 'a', 'b'], 'vxnetctl: unexpected argument "b" to "vxnetctl endpoint labels" (see vxnetctl endpoint labels --help)\n'],
    [['endpoint', 'labels', '--remove', 'x'], 'vxnetctl: option --remove does not apply to "vxnetctl endpoint labels" (see vxnetctl endpoint labels --help)\n'],
  ];
  for (const [argv, stderr] of refused) {
    r = await ctl(['--data-dir', dataDir, ...argv]);
    t.same([r.code, r.stderr, r.stdout], [2, stderr, ''], argv.join(' '));
  }
  t.equal(fs.readFileSync(file, 'utf8'), before, 'refused commands change nothing');

  fs.writeFileSync(file, '{"version":1,"endpoints":{"web":{"k":3}}}');
  r = await ctl(['--data-dir', dataDir, 'endpoint', 'label', 'web', 'a=b']);
  t.same([r.code, r.stderr], [1, `vxnetctl: ${file}: label "k" of "web" is not a string\n`], 'a malformed file is a failure (1) naming it, and is not overwritten');
  t.throws(() => readLabelsFile(file), DecodingFailure);
});

t.test('help: the commands, the precedence', async (t) => {
  const help = parseCommandLine(['endpoint', 'label', '--help']);
  t.equal(help.kind, 'help');
  const text = help.kind === 'help' ? help.text : '';
  t.match(text, 'Usage: vxnetctl endpoint label NAME KEY=VALUE... [--remove KEY]...');
  t.match(text, /operator labels \(this command\) over the runtime's own labels\s+\(Docker's or podman's API\) over CNI args labels/);
  const group = parseCommandLine(['endpoint']);
  t.match(group.kind === 'help' ? group.text : '', 'endpoint labels [NAME]');
  const top = parseCommandLine(['--help']);
  t.match(top.kind === 'help' ? top.text : '', /endpoint label\s+set or remove operator labels/);
});
