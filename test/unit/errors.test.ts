// lib/errors.ts: every error carries its CNI code from creation; nothing known falls to 999.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import t from 'tap';
import { parseIpamConf } from '../../ipam/config';
import { ipamAdd, ipamCheck } from '../../ipam/core';
import { openStore } from '../../ipam/store';
import {
  AddressUnavailable, AttachmentDrifted, DatapathFailure, DecodingFailure, DelegateFailed, IncompatibleVersion, InvalidEnvironment,
  InvalidName, InvalidNetns, InvalidVip, InvalidNetworkConfig, IoFailure, NetworkConflict, NotFound, PluginNotAvailable, PoolExhausted, TryAgainLater,
  UnsupportedField, VxnetError, asVxnetError,
} from '../../lib/errors';
import { ip, owner, tmpDir, tmpStore } from '../ipam/helpers/embedded';

type ErrorClass = new (message: string, details?: string) => VxnetError;

t.test('each error class has its code and its own name', async (t) => {
  // CNI's well-known codes (1-11, 50) and vxnet's own (100 and above).
  const table: Array<[ErrorClass, string, number]> = [
    [IncompatibleVersion, 'IncompatibleVersion', 1],
    [UnsupportedField, 'UnsupportedField', 2],
    [InvalidEnvironment, 'InvalidEnvironment', 4],
    [IoFailure, 'IoFailure', 5],
    [DecodingFailure, 'DecodingFailure', 6],
    [InvalidNetworkConfig, 'InvalidNetworkConfig', 7],
    [InvalidNetns, 'InvalidNetns', 8],
    [TryAgainLater, 'TryAgainLater', 11],
    [PluginNotAvailable, 'PluginNotAvailable', 50],
    [PoolExhausted, 'PoolExhausted', 100],
    [AddressUnavailable, 'AddressUnavailable', 101],
    [AttachmentDrifted, 'AttachmentDrifted', 102],
    [DelegateFailed, 'DelegateFailed', 103],
    [DatapathFailure, 'DatapathFailure', 104],
    [NetworkConflict, 'NetworkConflict', 105],
    [NotFound, 'NotFound', 106],
    [InvalidName, 'InvalidName', 108],
    [InvalidVip, 'InvalidVip', 109],
  ];
  const codes = new Set<number>();
  for (const [Cls, name, code] of table) {
    const err = new Cls('what happened', 'why');
    t.equal(err.code, code, `${name} is code ${code}`);
    t.equal(err.name, name, `${name}.name`);
    t.equal(Cls.name, name, `${name}: static name survives minification`);
    t.ok(err instanceof VxnetError && err instanceof Error, `${name} is a VxnetError and an Error`);
    t.equal(err.message, 'what happened');
    t.equal(err.details, 'why');
    t.equal(new Cls('x').details, undefined, `${name}: details optional`);
    t.notOk(codes.has(code), `${name}: code ${code} is not shared`);
    codes.add(code);
    t.equal(asVxnetError(err), err, `asVxnetError keeps a ${name} as it is`);
    if (code >= 100) t.ok(code < 1000, `${name}: a plugin-specific code (100-999)`);
  }
});

t.test('asVxnetError: anything else is 999 with its message kept', async (t) => {
  const cases: Array<[unknown, string]> = [
    [new Error('boom'), 'boom'],
    [new TypeError('x is not a function'), 'x is not a function'],
    ['a string', 'a string'],
    [42, '42'],
    [undefined, 'undefined'],
  ];
  for (const [thrown, message] of cases) {
    const e = asVxnetError(thrown);
    t.ok(e instanceof VxnetError);
    t.equal(e.code, 999, `${String(thrown)} -> 999`);
    t.equal(e.message, message);
  }
});

t.test('known IPAM failures do not fall through to 999', async (t) => {
  const failures: Array<[string, () => Promise<unknown>, number]> = [];
  const { store } = await tmpStore(t);
  const conf = parseIpamConf('net', { ranges: [[{ subnet: '10.1.0.0/30' }]] });
  await ipamAdd(store, conf, owner('a'));
  const dir = await tmpDir(t);
  const file = path.join(dir, 'not-a-dir');
  await fs.writeFile(file, '');
  failures.push(
    ['invalid config', async () => parseIpamConf('net', { ranges: [[{ subnet: '10.1.0.5/24' }]] }), 7],
    ['pool exhausted', () => ipamAdd(store, conf, owner('b')), 100],
    ['requested address taken', () => ipamAdd(store, conf, owner('b'), [ip('10.1.0.2')]), 101],
    ['CHECK of an attachment with no address', () => ipamCheck(store, conf, { containerId: 'b', ifname: 'eth0' }), 102],
    ['subnet changed under live allocations', () => ipamAdd(store, parseIpamConf('net', { ranges: [[{ subnet: '10.2.0.0/24' }]] }), owner('b')), 105],
    ['no store where one must exist', async () => openStore({ dataDir: dir, mustExist: true }), 50],
    ['store directory cannot be created', async () => openStore({ dataDir: path.join(file, 'sub') }), 5],
  );
  for (const [name, fn, code] of failures) {
    let thrown: unknown;
    try { await fn(); } catch (err) { thrown = err; }
    t.ok(thrown instanceof VxnetError, `${name}: a VxnetError`);
    t.equal(asVxnetError(thrown).code, code, `${name}: code ${code}`);
  }
});
