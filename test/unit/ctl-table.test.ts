// ctl/table.ts: the aligned tables and time forms vxnetctl prints.
import t from 'tap';
import { cell, isoTime, plural, relativeTime, renderFields, renderTable, shortId, timeWithAge } from '../../ctl/table';

t.test('renderTable aligns columns under their headers', async (t) => {
  const out = renderTable(
    [{ header: 'NETWORK' }, { header: 'ADDRESS' }, { header: 'SIZE', align: 'right' }],
    [['vxnet', '10.231.0.2', 253], ['a-much-longer-name', 'fd00::1', 18446744073709551614n]],
  );
  t.equal(out, [
    'NETWORK             ADDRESS                     SIZE',
    'vxnet               10.231.0.2                   253',
    'a-much-longer-name  fd00::1     18446744073709551614',
    '',
  ].join('\n'));
});

t.test('renderTable: no trailing blanks, empty cells as "-", header only for no rows', async (t) => {
  const out = renderTable([{ header: 'A' }, { header: 'NAME' }], [['x', undefined], ['yy', '']]);
  t.equal(out, 'A   NAME\nx   -\nyy  -\n');
  t.notMatch(out, / \n/);
  t.equal(renderTable([{ header: 'A' }, { header: 'B' }], []), 'A  B\n');
});

t.test('control characters cannot reach the terminal', async (t) => {
  t.equal(cell('evil\u001b[31mred\n'), 'evil?[31mred?');
  t.equal(cell('\u009b2J'), '?2J');
  t.equal(cell(0), '0');
  t.equal(cell(null), '-');
  const out = renderTable([{ header: 'NAME' }], [['a\tb']]);
  t.equal(out, 'NAME\na?b\n');
});

t.test('renderFields aligns values after the keys', async (t) => {
  t.equal(renderFields([['Address', '10.0.0.2'], ['Host veth', 'vx0123'], ['Name', undefined]]),
    'Address:   10.0.0.2\nHost veth: vx0123\nName:      -\n');
});

t.test('times and ids', async (t) => {
  const now = Date.UTC(2026, 10, 25, 13, 31, 27, 456);
  t.equal(isoTime(now), '2026-11-25T13:31:27Z');
  const cases: Array<[number, string]> = [
    [0, 'just now'], [-5_000, 'just now'], [999, 'just now'], [1_000, '1s ago'], [59_999, '59s ago'],
    [60_000, '1m ago'], [3_599_000, '59m ago'], [3_600_000, '1h ago'], [47 * 3_600_000, '47h ago'],
    [48 * 3_600_000, '2d ago'], [400 * 86_400_000, '400d ago'],
  ];
  for (const [ago, want] of cases) t.equal(relativeTime(now - ago, now), want, `${ago} ms ago`);
  t.equal(timeWithAge(now - 300_000, now), '2026-11-25T13:26:27Z (5m ago)');
  t.equal(shortId('0123456789abcdef0123'), '0123456789ab');
  t.equal(shortId('abc'), 'abc');
  t.equal(plural(1, 'address', 'addresses'), '1 address');
  t.equal(plural(0, 'address', 'addresses'), '0 addresses');
  t.equal(plural(2n, 'address', 'addresses'), '2 addresses');
});
