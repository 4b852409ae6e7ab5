// vxnetctl doctor on an overlay host, with the built binaries only: two hosts (namespaces on an
// underlay, etcd on it) each running vxnetd, a container on each attached by the CNI plugin.
// Consistent: exit 0 with the device's entries checked against the peers in etcd. Then host 1's
// vxnetd is killed (nothing repairs its datapath any more) and, by hand, the neighbour entry of
// host 2's VTEP, the host route of host 1's container and a FORWARD accept rule of the routed
// setup are deleted: the doctor reports all three; the first two are not safe to fix (exit 3
// with --fix), the rule is re-inserted. Root only; everything is in the test's namespaces.
import t from 'tap';
import * as path from 'node:path';
import { formatCidr, formatIp } from '../../ipam/addr';
import { readLocalState } from '../../overlay/local';
import { vtepIpOf, vxlanDeviceName } from '../../overlay/plan';
import { exec, pollUntil } from '../helpers/sh';
import { bare, describe, resultAddrs, runInNetns, type CniOutcome } from '../integration/helpers/cni';
import { BIN, binaryCluster, missingBuild, type VxnetdNode } from './helpers/binaries';
import { cannotRun, shown } from './helpers/hosts';

const NET = 'vxt-ovdoc';
const VNI = 4747;
const DEV = vxlanDeviceName(VNI);

async function main(): Promise<void> {
  const why = (await cannotRun()) ?? missingBuild();
  if (why) {
    t.plan(0, why);
    return;
  }
  await t.test('doctor checks an overlay host against etcd', async (t) => {
    t.setTimeout(120_000);
    const { etcd, startVxnetd, add } = await binaryCluster(t, NET, ['--vni', String(VNI), '--subnet', '10.234.0.0/16']);
    const start = async (i: number): Promise<VxnetdNode & { block: string }> => {
      const v = await startVxnetd(i, `vxt-d${i}`, ['--overlay-network', NET]);
      const state = await pollUntil(() => {
        if (v.vxnetd.exitCode !== null) throw new Error(`vxnetd ${v.id} exited: ${v.log()}`);
        return readLocalState(path.join(v.dir, 'overlay'), NET);
      }, { timeoutMs: 20_000, intervalMs: 50, what: `${v.id}: overlay state` });
      return { ...v, block: formatCidr(state.blocks[0]) };
    };
    const h1 = await start(1);
    const h2 = await start(2);
    const c1 = await add(h1);
    t.equal(c1.outcome.code, 0, describe(c1.outcome));
    const c2 = await add(h2);
    t.equal(c2.outcome.code, 0, describe(c2.outcome));
    await pollUntil(async () => (await shown(h1.host.ns, ['-4', 'route', 'show', 'dev', DEV])).some((l) => l.startsWith(h2.block)),
      { timeoutMs: 10_000, what: 'host 1 routes to host 2\'s block' });

    const doctor = (...args: string[]): Promise<CniOutcome> => runInNetns(h1.host.ns, BIN('vxnetctl'), [
      'doctor', '--json', '--data-dir', path.join(h1.dir, 'data'), '--overlay-dir', path.join(h1.dir, 'overlay'),
      '--store', etcd.storeUrl, '--api', 'http://127.0.0.1:9', ...args,
    ], { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, undefined, 30_000);

    const clean = await doctor();
    t.equal(clean.code, 0, `consistent: exit 0 (${describe(clean)})`);
    t.match(clean.json?.checked, { allocations: 1, overlays: 1 });
    t.notOk((clean.json?.notes as string[]).some((n) => /peer entries were not checked/.test(n)), 'etcd was asked');

    h1.vxnetd.kill('SIGKILL');
    await pollUntil(() => h1.vxnetd.exitCode !== null || h1.vxnetd.signalCode !== null, { timeoutMs: 5000, what: 'vxnetd 1 exited' });
    const vtep2 = formatIp(vtepIpOf(readLocalState(path.join(h2.dir, 'overlay'), NET)!.blocks[0]));
    const c1addr = bare(resultAddrs(c1.outcome.json)[0]);
    t.equal((await exec('ip', ['-n', h1.host.ns.name, 'neigh', 'del', vtep2, 'dev', DEV])).code, 0, 'neighbour deleted by hand');
    t.equal((await exec('ip', ['-n', h1.host.ns.name, 'route', 'del', `${c1addr}/32`])).code, 0, 'host route deleted by hand');
    // The routed setup's FORWARD accept rule (by address, comment vxnet:DEVICE) deleted by hand.
    const fwdRule = ['-s', '10.234.0.0/16', '-m', 'comment', '--comment', `vxnet:${DEV}`, '-j', 'ACCEPT'];
    const iptables = (...a: string[]): ReturnType<typeof exec> => exec('ip', ['netns', 'exec', h1.host.ns.name, 'iptables', '-w', ...a]);
    const haveIptables = (await iptables('-C', 'FORWARD', ...fwdRule)).code === 0;
    if (haveIptables) t.equal((await iptables('-D', 'FORWARD', ...fwdRule)).code, 0, 'routed FORWARD rule deleted by hand');

    const found = await doctor('--fix');
    t.equal(found.code, 3, `found, not safe to fix: exit 3 (${describe(found)})`);
    const findings = found.json?.findings as Array<{ kind: string; what: string; safe: boolean; fixed: boolean; fix: string }>;
    t.same(findings.map((f) => f.kind).sort(), [...(haveIptables ? ['forward-rules-missing'] : []), 'missing-host-route', 'overlay-peer-entries']);
    if (haveIptables) {
      t.match(findings.find((f) => f.kind === 'forward-rules-missing'), { safe: true, fixed: true, fix: `iptables -w -I FORWARD 1 ${fwdRule.join(' ')}` });
      t.equal((await iptables('-C', 'FORWARD', ...fwdRule)).code, 0, '--fix re-inserted the routed FORWARD rule');
    }
    const peer = findings.find((f) => f.kind === 'overlay-peer-entries');
    t.match(peer?.what, `neigh ${vtep2} lladdr`);
    t.equal(peer?.safe, false);
    t.match(findings.find((f) => f.kind === 'missing-host-route'), { safe: false, fixed: false, fix: new RegExp(`^ip route replace ${c1addr.replace(/\./g, '\\.')}/32 dev vx[0-9a-f]{12}$`) });
  });
}

void main();
