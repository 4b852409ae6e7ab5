// vxnetctl network create | ls | rm: usage errors in-process (no etcd), then against a real
// etcd on loopback (no root): define, define again (identical: no-op; different: refused with
// both definitions), a VNI taken by another network, listing with a live host holding a
// block, rm refused while that host is alive and done once its lease is gone.
import { existsSync } from 'node:fs';
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { ctl } from '../helpers/ctl';
import { Ip, parseIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { DEFAULT_OVERLAY_PREFIX, encodeHost } from '../../overlay/records';
import { OverlayRegistry } from '../../overlay/registry';
import { ETCD, startEtcd } from '../helpers/etcd';

t.test('network: usage errors are one line, exit 2', async (t) => {
  const S = ['--store', 'etcd://127.0.0.1:1'];
  for (const [argv, re] of [
    [['network', 'create', 'x', '--vni', '5', '--subnet', '10.1.0.0/16'], /^vxnetctl: network create needs the cluster store/],
    [['network', 'create', ...S, '--vni', '5', '--subnet', '10.1.0.0/16'], /^vxnetctl: network create needs the network's name/],
    [['network', 'create', 'x', ...S, '--subnet', '10.1.0.0/16'], /^vxnetctl: network create needs --vni N/],
    [['network', 'create', 'x', ...S, '--vni', '5'], /^vxnetctl: network create needs --subnet CIDR/],
    [['network', 'create', 'x', ...S, '--vni', 'five', '--subnet', '10.1.0.0/16'], /^vxnetctl: --vni "five": must be a whole number/],
    [['network', 'create', 'x', ...S, '--vni', '16777216', '--subnet', '10.1.0.0/16'], /^vxnetctl: --vni: 16777216 must be an integer between 1 and 16777215/],
    [['network', 'create', 'x', ...S, '--vni', '5', '--subnet', '10.1.0.1/16'], /^vxnetctl: --subnet: 10\.1\.0\.1\/16 has host bits set; network is 10\.1\.0\.0\/16/],
    [['network', 'create', 'x', ...S, '--vni', '5', '--subnet', '10.1.0.0/16', '--block-prefix', '8'], /^vxnetctl: --block-prefix: 8 must be an integer longer than the subnet's \/16/],
    [['network', 'create', 'bad name', ...S, '--vni', '5', '--subnet', '10.1.0.0/16'], /^vxnetctl: NAME: "bad name" is not a network name/],
    [['network', 'create', 'x', 'y', ...S], /^vxnetctl: unexpected argument "y" to "vxnetctl network create"/],
    [['network', 'ls', ...S, '--vni', '5'], /^vxnetctl: option --vni does not apply to "vxnetctl network ls"/],
    [['network', 'rm', ...S], /^vxnetctl: network rm needs the network's name/],
    [['network', 'frob'], /^vxnetctl: unknown command "network frob" \(see vxnetctl network --help\)/],
  ] as const) {
    const r = await ctl([...argv]);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, re, argv.join(' '));
    t.equal(r.stderr.split('\n').length, 2, 'one line');
  }
  const group = await ctl(['network']);
  t.equal(group.code, 0);
  t.match(group.stdout, /network create NAME --vni N --subnet CIDR/);
  t.match(group.stdout, /network ls/);
  t.match(group.stdout, /network rm NAME/);
  t.match((await ctl(['network', 'create', '--help'])).stdout, /--block-prefix6 LEN/);
  t.match((await ctl(['--help'])).stdout, /\n {2}network create {2}define an overlay network/, 'listed in vxnetctl --help');
});

const ip = (s: string): Ip => parseIp(s) as Ip;

if (!existsSync(ETCD)) {
  t.test('network against a real etcd', { skip: `needs etcd (${ETCD}, Debian's etcd-server)` }, async () => undefined);
} else {
  t.test('network against a real etcd: create, ls, rm', async (t) => {
    t.setTimeout(60_000);
    const etcd = await startEtcd(t);
    const S = ['--store', etcd.storeUrl];
    const create = ['network', 'create', 'vxt-blue', ...S, '--vni', '4801', '--subnet', '10.233.0.0/16', '--subnet', 'fd33::/48', '--block-prefix', '26', '--mtu', '1400'];

    const c1 = await ctl(create);
    t.equal(c1.code, 0, c1.stderr);
    t.equal(c1.stdout, 'defined: overlay network vxt-blue: vni 4801, subnets 10.233.0.0/16,fd33::/48, blocks /26,/64, mtu 1400, port 4789\n');
    const c2 = await ctl([...create, '--json']);
    t.equal(c2.code, 0, c2.stderr);
    t.same(JSON.parse(c2.stdout), {
      network: { name: 'vxt-blue', vni: 4801, subnets: ['10.233.0.0/16', 'fd33::/48'], blockPrefix: 26, blockPrefix6: 64, mtu: 1400, port: 4789 }, created: false,
    }, 'defining it again identically: a no-op');
    const c3 = await ctl(['network', 'create', 'vxt-blue', ...S, '--vni', '4801', '--subnet', '10.234.0.0/16']);
    t.equal(c3.code, 1);
    t.match(c3.stderr, /^vxnetctl: overlay network vxt-blue is already defined differently: vni 4801, subnets 10\.233\.0\.0\/16,fd33::\/48, .* \(asked: vni 4801, subnets 10\.234\.0\.0\/16, .*\)/);
    const c4 = await ctl(['network', 'create', 'vxt-red', ...S, '--vni', '4801', '--subnet', '10.235.0.0/16']);
    t.equal(c4.code, 1);
    t.match(c4.stderr, /^vxnetctl: vni 4801 is already overlay network vxt-blue's; choose another --vni/);
    t.equal((await ctl(['network', 'create', 'vxt-red', ...S, '--vni', '4802', '--subnet', '10.235.0.0/16'])).code, 0);

    // A live host holding a block of vxt-blue, as an agent registers it.
    const client = new Etcd3({ hosts: etcd.clientUrls });
    t.teardown(() => client.close());
    const reg = new OverlayRegistry(client, DEFAULT_OVERLAY_PREFIX, createLogger('ctl-network-test', 'error'));
    const blue = await reg.network('vxt-blue');
    t.ok(blue, 'the agent side reads the definition vxnetctl wrote');
    await reg.leaseBlock(blue!, blue!.subnets[0], 'vxt-h1', Date.now, 600_000);
    const lease = client.lease(30);
    await lease.grant();
    t.teardown(() => lease.revoke().catch(() => undefined));
    await lease.put(reg.k.host('vxt-h1')).value(encodeHost({ id: 'vxt-h1', underlay: ip('192.0.2.11'), since: Date.now(), networks: ['vxt-blue'] })).exec();

    const ls = await ctl(['network', 'ls', ...S]);
    t.equal(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trimEnd().split('\n');
    t.match(lines[0], /^NETWORK\s+VNI\s+SUBNETS\s+BLOCK\s+MTU\s+PORT\s+HOSTS\s+BLOCKS\s+ORPHANED$/);
    t.match(lines[1], /^vxt-blue\s+4801\s+10\.233\.0\.0\/16,fd33::\/48\s+\/26,\/64\s+1400\s+4789\s+0\s+1\s+0$/);
    t.match(lines[2], /^vxt-red\s+4802\s+10\.235\.0\.0\/16\s+\/24\s+auto\s+4789\s+0\s+0\s+0$/);
    const lj = JSON.parse((await ctl(['network', 'ls', '--json'], { VXNET_STORE: etcd.storeUrl })).stdout) as { networks: Array<Record<string, unknown>> };
    t.match(lj.networks[1], { name: 'vxt-red', mtu: null, hosts: [], blocks: { held: 0, orphaned: 0 } });

    const busy = await ctl(['network', 'rm', 'vxt-blue', ...S]);
    t.equal(busy.code, 1);
    t.match(busy.stderr, /^vxnetctl: overlay network vxt-blue: blocks held by live host vxt-h1; stop vxnetd there/);
    t.ok(await reg.network('vxt-blue'), 'still defined');

    await lease.revoke();
    const orphaned = await ctl(['network', 'ls', ...S]);
    t.match(orphaned.stdout.split('\n')[1], /^vxt-blue\s.*\s0\s+0\s+1$/, 'its host gone: the block counts as orphaned');
    const rm = await ctl(['network', 'rm', 'vxt-blue', ...S, '--json']);
    t.equal(rm.code, 0, rm.stderr);
    t.same(JSON.parse(rm.stdout), { network: 'vxt-blue', removed: true, blocks: 1 });
    t.equal(await reg.network('vxt-blue'), undefined, 'definition gone');
    t.same(await reg.blocks('vxt-blue'), [], 'block records gone');
    const again = await ctl(['network', 'rm', 'vxt-blue', ...S]);
    t.equal(again.code, 1);
    t.match(again.stderr, /^vxnetctl: no overlay network vxt-blue in the cluster store\n$/);
  });
}
