// vxnetctl doctor against a real kernel: a host made of a vxt namespace (so the doctor sees only
// the test's links, rules and tables), containers attached there by the built vxnet plugin with a
// private data dir, then real inconsistencies: a container's netns deleted by hand (a leak), a
// veth with vxnet's naming nobody accounts for (an orphan), a bridge's gateway address removed
// (not safe to fix). Clean -> exit 0; found -> 3; --fix -> 4 with the store and kernel repaired.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { openStore } from '../../ipam/store';
import { deleteNetns, exec, linkExists, newNetns } from '../helpers/netns';
import { DIST_BIN, VXNET, cannotRun, cniEnv, describe, hostVethName, newContainerId, reserveSubnet, runInNetns, type CniOutcome } from './helpers/cni';

const skip = cannotRun();
if (skip) {
  t.plan(0, skip);
} else {
  t.test('vxnetctl doctor finds and fixes leaks and orphans in a vxt host namespace', async (t) => {
    const host = await newNetns(t);
    const hex = randomBytes(4).toString('hex');
    const name = `vxt${hex}`;
    const { n, release } = await reserveSubnet();
    const tmp = fs.mkdtempSync(join(tmpdir(), 'vxt-doctor-'));
    t.teardown(() => { fs.rmSync(tmp, { recursive: true, force: true }); release(); });
    const dataDir = join(tmp, 'store');
    const overlayDir = join(tmp, 'overlay');
    const conf = {
      cniVersion: '1.0.0', name, type: 'vxnet', bridge: name, natTable: name, ipMasq: true,
      ipam: { type: 'vxnet-ipam', ranges: [[{ subnet: `10.239.${n}.0/24` }]], dataDir },
    };
    const add = async (ns: { path: string }, containerId: string): Promise<CniOutcome> => {
      const r = await runInNetns(host, VXNET, [], cniEnv({ command: 'ADD', containerId, ifname: 'eth0', netns: ns.path }), conf);
      if (r.code !== 0) throw new Error(`ADD ${containerId}: ${describe(r)}`);
      return r;
    };
    // The API on a port nothing listens on (in the test's namespace): the VIP check is skipped.
    const doctor = (...args: string[]): Promise<CniOutcome> => runInNetns(host, join(DIST_BIN, 'vxnetctl'),
      ['doctor', '--data-dir', dataDir, '--overlay-dir', overlayDir, '--api', 'http://127.0.0.1:9', ...args], { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' });
    const kinds = (r: CniOutcome): string[] => ((r.json?.findings ?? []) as Array<{ kind: string }>).map((f) => f.kind).sort();

    const c1 = await newNetns(t);
    const c2 = await newNetns(t);
    const id1 = newContainerId();
    const id2 = newContainerId();
    await add(c1, id1);
    await add(c2, id2);

    const clean = await doctor('--json');
    t.equal(clean.code, 0, `a consistent host: exit 0 (${describe(clean)})`);
    t.same(clean.json?.findings, []);
    t.match(clean.json?.checked, { allocations: 2, networks: 1, vxnetLinks: 2 });

    // The runtime forgets its DEL: the container's namespace is deleted by hand.
    await deleteNetns(c2.name);
    // A veth with vxnet's naming that no allocation accounts for, on the network's bridge.
    const orphan = `vx${randomBytes(6).toString('hex')}`;
    const peer = `vxt-${randomBytes(4).toString('hex')}`;
    const made = await exec('ip', ['-n', host.name, 'link', 'add', orphan, 'type', 'veth', 'peer', 'name', peer]);
    t.equal(made.code, 0, made.stderr);
    await exec('ip', ['-n', host.name, 'link', 'set', orphan, 'master', name, 'up']);

    const found = await doctor('--json');
    t.equal(found.code, 3, `findings: exit 3 (${describe(found)})`);
    t.same(kinds(found), ['leaked-allocation', 'orphan-veth']);
    const leak = (found.json?.findings as Array<Record<string, unknown>>).find((f) => f.kind === 'leaked-allocation');
    t.match(leak, { safe: true, fixed: null, fix: `vxnetctl ipam release --container ${id2} --ifname eth0 --network ${name}` });
    t.match(String(leak?.what), c2.path);

    const text = await doctor();
    t.equal(text.code, 3);
    t.match(text.stdout, /leaked-allocation: container /);
    t.match(text.stdout, new RegExp(`orphan-veth: link ${orphan}\\n  what: .*\\n  why: .*\\n  fix:   ip link del dev ${orphan}\\n  state: safe`));
    t.match(text.stdout, /2 problems found, 2 safe to fix/);

    const fixed = await doctor('--fix', '--json');
    t.equal(fixed.code, 4, `all fixed: exit 4 (${describe(fixed)})`);
    t.match(fixed.json, { found: 2, fixed: 2 });
    t.notOk(await linkExists(orphan, host.name), 'the orphan veth is deleted');
    t.ok(await linkExists(hostVethName(id1, 'eth0'), host.name), 'the live container\'s veth is kept');
    const store = openStore({ dataDir, mustExist: true });
    try {
      const left = await store.view((tx) => tx.list({ network: name }));
      t.same(left.map((a) => a.containerId), [id1], 'the leaked allocation is released, the live one kept');
      const history = await store.view((tx) => tx.history(name));
      t.ok(history.some((h) => h.containerId === id2 && h.reason === 'vxnetctl doctor'), 'released with reason "vxnetctl doctor"');
    } finally {
      await store.close();
    }

    const again = await doctor('--json');
    t.equal(again.code, 0, `clean again: exit 0 (${describe(again)})`);

    // Masquerading (the network has ipMasq: true, natTable NAME): the subnet's element deleted by
    // hand, a stale element, the postrouting rule flushed; all safe, all repaired.
    const nft = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => exec('ip', ['netns', 'exec', host.name, 'nft', ...args]);
    const subnet = `10.239.${n}.0/24`;
    t.equal((await nft('delete', 'element', 'ip', name, 'masq', `{ ${subnet} }`)).code, 0, 'the element deleted by hand');
    t.equal((await nft('add', 'element', 'ip', name, 'masq', '{ 192.0.2.0/24 }')).code, 0, 'an element no network has');
    t.equal((await nft('flush', 'chain', 'ip', name, 'postrouting')).code, 0, 'the rule flushed');
    const nat = await doctor('--json');
    t.equal(nat.code, 3, `masquerading damaged: exit 3 (${describe(nat)})`);
    t.same(kinds(nat), ['masquerade-missing', 'masquerade-rule-changed', 'masquerade-stale']);
    const byKind = (r: CniOutcome, k: string): Record<string, unknown> | undefined => (r.json?.findings as Array<Record<string, unknown>>).find((f) => f.kind === k);
    t.match(byKind(nat, 'masquerade-missing'), { safe: true, subject: `network ${name} (nftables ip ${name})`, fix: `nft add element ip ${name} masq '{ ${subnet} }'` });
    t.match(byKind(nat, 'masquerade-stale'), { safe: true, subject: `nftables ip ${name} element 192.0.2.0/24`, fix: `nft delete element ip ${name} masq '{ 192.0.2.0/24 }'` });
    t.match(byKind(nat, 'masquerade-rule-changed'), { safe: true, what: /no rule/ });
    const natFixed = await doctor('--fix', '--json');
    t.equal(natFixed.code, 4, `masquerading repaired: exit 4 (${describe(natFixed)})`);
    t.match(natFixed.json, { found: 3, fixed: 3 });
    t.equal((await nft('get', 'element', 'ip', name, 'masq', `{ ${subnet} }`)).code, 0, 'the subnet is masqueraded again');
    t.not((await nft('get', 'element', 'ip', name, 'masq', '{ 192.0.2.0/24 }')).code, 0, 'the stale element is gone');
    t.match((await nft('list', 'chain', 'ip', name, 'postrouting')).stdout, /ip saddr @masq ip daddr != @masq ip daddr != 224\.0\.0\.0\/4 masquerade/, 'the rule is back');

    // The bridge's FORWARD rules flushed: safe, re-inserted. Forwarding turned off: reported, left.
    const ipt = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => exec('ip', ['netns', 'exec', host.name, 'iptables', '-w', ...args]);
    const ours = (await ipt('-S', 'FORWARD')).stdout.split('\n').filter((l) => l.includes(`vxnet:${name}`));
    t.ok(ours.length > 0, `the bridge's FORWARD rules are there (${ours.length})`);
    for (const rule of ours) t.equal((await exec('sh', ['-c', `ip netns exec ${host.name} iptables -w ${rule.replace(/^-A /, '-D ')}`])).code, 0, `deleted: ${rule}`);
    t.equal((await exec('ip', ['netns', 'exec', host.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=0'])).code, 0);
    const fwd = await doctor('--fix', '--json');
    t.equal(fwd.code, 3, `forwarding off is left for the operator: exit 3 (${describe(fwd)})`);
    t.same(kinds(fwd), ['forward-rules-missing', 'forwarding-off']);
    t.match(byKind(fwd, 'forward-rules-missing'), { safe: true, fixed: true });
    t.match(byKind(fwd, 'forwarding-off'), { safe: false, fixed: false, fix: 'sysctl -w net.ipv4.ip_forward=1' });
    const back = (await ipt('-S', 'FORWARD')).stdout.split('\n').filter((l) => l.includes(`vxnet:${name}`));
    t.same(back.sort(), ours.sort(), 'the FORWARD rules are back');
    t.equal((await exec('ip', ['netns', 'exec', host.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])).code, 0);
    const clean2 = await doctor('--json');
    t.equal(clean2.code, 0, `clean again: exit 0 (${describe(clean2)})`);
    t.match(clean2.json?.checked, { natTables: 1 });

    // Not safe: the bridge's gateway address removed by hand is reported with its command and left.
    const gw = `10.239.${n}.1/24`;
    t.equal((await exec('ip', ['-n', host.name, 'addr', 'del', gw, 'dev', name])).code, 0);
    const unsafe = await doctor('--fix', '--json');
    t.equal(unsafe.code, 3, `an unsafe finding is left: exit 3 (${describe(unsafe)})`);
    t.same(kinds(unsafe), ['bridge-gateway-missing']);
    t.match(unsafe.json?.findings[0], { safe: false, fixed: false, fix: `ip addr add ${gw} dev ${name}` });
  });

  t.test('vxnetctl doctor finds and fixes the masquerade table and FORWARD rules in a vxt host namespace', async (t) => {
    const host = await newNetns(t);
    const hex = randomBytes(4).toString('hex');
    const name = `vxt${hex}`;
    const { n, release } = await reserveSubnet();
    const tmp = fs.mkdtempSync(join(tmpdir(), 'vxt-doctor-nat-'));
    t.teardown(() => { fs.rmSync(tmp, { recursive: true, force: true }); release(); });
    const dataDir = join(tmp, 'store');
    const subnet = `10.239.${n}.0/24`;
    // The test's own NAT table, in the test's own namespace: the real "vxnet" table is never touched.
    const conf = {
      cniVersion: '1.0.0', name, type: 'vxnet', bridge: name, natTable: name, ipMasq: true, isGateway: true,
      ipam: { type: 'vxnet-ipam', ranges: [[{ subnet }]], dataDir },
    };
    const c1 = await newNetns(t);
    const r = await runInNetns(host, VXNET, [], cniEnv({ command: 'ADD', containerId: newContainerId(), ifname: 'eth0', netns: c1.path }), conf);
    t.equal(r.code, 0, describe(r));
    const doctor = (...args: string[]): Promise<CniOutcome> => runInNetns(host, join(DIST_BIN, 'vxnetctl'),
      ['doctor', '--json', '--data-dir', dataDir, '--overlay-dir', join(tmp, 'overlay'), '--conf-dir', join(tmp, 'conf'), '--api', 'http://127.0.0.1:9', ...args],
      { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' });
    const findings = (x: CniOutcome): Array<Record<string, unknown>> => (x.json?.findings ?? []) as Array<Record<string, unknown>>;
    const nft = (...a: string[]): Promise<{ code: number; stdout: string; stderr: string }> => exec('ip', ['netns', 'exec', host.name, 'nft', ...a]);
    const elements = async (): Promise<string> => (await nft('list', 'set', 'ip', name, 'masq')).stdout;

    const clean = await doctor();
    t.equal(clean.code, 0, `consistent: exit 0 (${describe(clean)})`);
    t.ok(typeof clean.json?.checked.natTables === 'number' && clean.json.checked.natTables >= 1, 'the masquerade table was read');

    // 1. The network's element deleted by hand.
    t.equal((await nft('delete', 'element', 'ip', name, 'masq', `{ ${subnet} }`)).code, 0);
    const missing = await doctor();
    t.equal(missing.code, 3, describe(missing));
    t.match(findings(missing), [{ kind: 'masquerade-missing', subject: `network ${name} (nftables ip ${name})`, safe: true, fix: `nft add element ip ${name} masq '{ ${subnet} }'` }]);
    const fixed1 = await doctor('--fix');
    t.equal(fixed1.code, 4, `fixed: exit 4 (${describe(fixed1)})`);
    t.match(await elements(), subnet, 'the element is back');

    // 2. A stale element for a subnet no network has.
    t.equal((await nft('add', 'element', 'ip', name, 'masq', '{ 198.51.100.0/24 }')).code, 0);
    const stale = await doctor();
    t.equal(stale.code, 3, describe(stale));
    t.match(findings(stale), [{ kind: 'masquerade-stale', subject: `nftables ip ${name} element 198.51.100.0/24`, safe: true }]);
    t.equal((await doctor('--fix')).code, 4);
    t.notMatch(await elements(), '198.51.100.0/24', 'the stale element is deleted');
    t.match(await elements(), subnet, 'the network\'s element stays');

    // 3. The postrouting chain flushed.
    t.equal((await nft('flush', 'chain', 'ip', name, 'postrouting')).code, 0);
    const rule = await doctor();
    t.match(findings(rule), [{ kind: 'masquerade-rule-changed', safe: true }]);
    t.equal((await doctor('--fix')).code, 4);
    t.match((await nft('list', 'chain', 'ip', name, 'postrouting')).stdout, 'ip saddr @masq ip daddr != @masq ip daddr != 224.0.0.0/4 masquerade');

    // 4. The whole table deleted: found through the config that names it (the CNI config directory).
    t.equal((await nft('delete', 'table', 'ip', name)).code, 0);
    t.equal((await doctor()).code, 0, 'a table nothing names cannot be told from none');
    fs.mkdirSync(join(tmp, 'conf'));
    fs.writeFileSync(join(tmp, 'conf', `10-${name}.conflist`), JSON.stringify({ cniVersion: '1.0.0', name, plugins: [conf] }));
    const gone = await doctor();
    t.equal(gone.code, 3, describe(gone));
    t.match(findings(gone), [{ kind: 'masquerade-missing', what: /NAT table ip vxt[0-9a-f]+ is missing/, safe: true }]);
    t.equal((await doctor('--fix')).code, 4);
    t.match(await elements(), subnet, 'the table is re-created with the element');

    // 5. A FORWARD accept rule of the bridge deleted (when iptables is there).
    const listed = await exec('ip', ['netns', 'exec', host.name, 'iptables', '-w', '-S', 'FORWARD']);
    if (listed.code === 0 && listed.stdout.includes(`vxnet:${name}`)) {
      t.equal((await exec('ip', ['netns', 'exec', host.name, 'iptables', '-w', '-D', 'FORWARD', '-i', name, '-m', 'comment', '--comment', `vxnet:${name}`, '-j', 'ACCEPT'])).code, 0);
      const fwd = await doctor();
      t.match(findings(fwd), [{ kind: 'forward-rules-missing', safe: true }]);
      t.equal((await doctor('--fix')).code, 4);
      t.match((await exec('ip', ['netns', 'exec', host.name, 'iptables', '-w', '-S', 'FORWARD'])).stdout, `-i ${name} `);
    }

    // 6. Forwarding turned off: reported with its command, not fixed.
    t.equal((await exec('ip', ['netns', 'exec', host.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=0'])).code, 0);
    const off = await doctor('--fix');
    t.equal(off.code, 3, describe(off));
    t.match(findings(off), [{ kind: 'forwarding-off', safe: false, fix: 'sysctl -w net.ipv4.ip_forward=1' }]);
    t.equal((await exec('ip', ['netns', 'exec', host.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])).code, 0);
    t.equal((await doctor()).code, 0, 'clean at the end');
  });

}
