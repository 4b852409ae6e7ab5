// overlay/registry.ts against a real etcd (one member on loopback; no root needed): network
// definitions, block leases (own block back, lowest free, orphan marks, grace, reclaim,
// concurrent hosts never share a block), and the `vxnetctl hosts` listing.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { Cidr, formatCidr, parseCidr, parseIp, Ip } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { overlayNetworkToJson, parseOverlayNetwork } from '../../overlay/plan';
import { encodeHost, encodeMember } from '../../overlay/records';
import { HOSTS_COLUMNS, OverlayRegistry, hostsRows, listHosts } from '../../overlay/registry';
import { rejected } from '../ipam/helpers/errors';
import { ETCD, startEtcd } from '../helpers/etcd';
import { existsSync } from 'node:fs';

const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const ip = (s: string): Ip => parseIp(s) as Ip;
const log = createLogger('overlay-registry-test', 'error');

if (!existsSync(ETCD)) t.plan(0, `needs etcd (${ETCD}, Debian's etcd-server)`);
else {
  t.test('overlay registry on a real etcd', async (t) => {
    t.setTimeout(45_000);
    const etcd = await startEtcd(t);
    const client = new Etcd3({ hosts: etcd.clientUrls });
    t.teardown(() => client.close());
    const prefix = `/vxt-${randomBytes(4).toString('hex')}/overlay/`;
    const reg = new OverlayRegistry(client, prefix, log);

    await t.test('the first definition of a network wins', async (t) => {
      const a = parseOverlayNetwork({ name: 'ov', vni: 7, subnets: ['10.237.0.0/16'] });
      const b = parseOverlayNetwork({ name: 'ov', vni: 8, subnets: ['10.99.0.0/16'] });
      t.same(overlayNetworkToJson(await reg.ensureNetwork(a)), overlayNetworkToJson(a));
      t.same(overlayNetworkToJson(await reg.ensureNetwork(b)), overlayNetworkToJson(a), 'second host gets the stored one');
      t.same((await reg.networks()).map((n) => n.name), ['ov']);
      t.equal(await reg.network('nope'), undefined);
    });

    await t.test('blocks: lowest free, own back, exhausted, orphaned, grace, reclaim', async (t) => {
      const net = parseOverlayNetwork({ name: 'small', vni: 9, subnets: ['10.236.0.0/23'], blockPrefix: 24 });
      await reg.ensureNetwork(net);
      const subnet = net.subnets[0];
      let now = 1_000_000;
      const clock = (): number => now;
      const grace = 60_000;
      const lease = async (host: string): Promise<string> => {
        const r = await reg.leaseBlock(net, subnet, host, clock, grace);
        return `${r.kind} ${formatCidr(r.block)}`;
      };
      t.equal(await lease('a'), 'free 10.236.0.0/24');
      t.equal(await lease('b'), 'free 10.236.1.0/24');
      t.equal(await lease('a'), 'own 10.236.0.0/24', 'same identity: own block');
      const full = await rejected(reg.leaseBlock(net, subnet, 'c', clock, grace));
      t.same(full, { name: 'PoolExhausted', code: 100,
        message: 'overlay network small: no free /24 block left in 10.236.0.0/23 (2 leased; expired hosts\' blocks return after 60000 ms)' },
      'full, and nobody has been seen expiring yet');
      t.equal(await reg.markOrphans('small', now), 2, 'a and b hold no host lease: both marked');
      t.equal(await reg.markOrphans('small', now + 5), 0, 'marked once (the grace period starts at the first mark)');
      now += grace - 1;
      t.equal((await rejected(reg.leaseBlock(net, subnet, 'c', clock, grace)))?.code, 100, 'grace not over');
      t.equal(await lease('b'), 'own 10.236.1.0/24', 'b comes back within its grace period: own block');
      t.equal((await reg.blocks('small')).find((x) => x.hostId === 'b')?.orphanedAt, undefined, 'b\'s orphan mark cleared');
      now += 1;
      t.equal(await lease('c'), 'reclaim 10.236.0.0/24', 'a\'s grace is over: c takes its block');
      t.same((await reg.blocks('small')).map((x) => `${formatCidr(x.block)} ${x.hostId}`).sort(), ['10.236.0.0/24 c', '10.236.1.0/24 b']);
    });

    await t.test('20 hosts leasing at once get 20 different blocks', async (t) => {
      const net = parseOverlayNetwork({ name: 'race', vni: 10, subnets: ['10.235.0.0/19'], blockPrefix: 24 });
      await reg.ensureNetwork(net);
      const got = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        new OverlayRegistry(client, prefix, log).leaseBlock(net, net.subnets[0], `h${i}`, Date.now, 60_000)));
      const blocks = got.map((g) => formatCidr(g.block));
      t.equal(new Set(blocks).size, 20, 'all distinct');
      t.same([...blocks].sort((a, b) => Number(a.split('.')[2]) - Number(b.split('.')[2])),
        Array.from({ length: 20 }, (_, i) => `10.235.${i}.0/24`), 'the lowest 20');
      t.equal((await reg.blocks('race')).length, 20);
    });

    await t.test('listHosts: live hosts with TTL, VTEPs and blocks; blocks of gone hosts by state', async (t) => {
      const l = client.lease(30);
      await l.grant();
      t.teardown(() => l.revoke().catch(() => undefined));
      await l.put(reg.k.host('h1')).value(encodeHost({ id: 'h1', underlay: ip('10.238.0.11'), since: 42, networks: ['small'] })).exec();
      await l.put(reg.k.member('small', 'h1')).value(encodeMember({ underlay: ip('10.238.0.11'), mac: '02:00:00:00:00:11', blocks: [cidr('10.236.1.0/24')] })).exec();
      const { hosts, blocks } = await listHosts(reg, 1_000_000 + 60_000, 60_000);
      t.equal(hosts.length, 1);
      t.match(hosts[0], { id: 'h1', underlay: '10.238.0.11', since: 42, lease: /^alive \(ttl \d+s\)$/,
        networks: [{ network: 'small', mac: '02:00:00:00:00:11', vteps: ['10.236.1.0'], blocks: ['10.236.1.0/24'] }] });
      t.ok(hosts[0].ttlSeconds! > 20 && hosts[0].ttlSeconds! <= 30, `ttl ${hosts[0].ttlSeconds}`);
      const small = blocks.filter((b) => b.network === 'small').map((b) => `${b.block} ${b.hostId} ${b.state}`).sort();
      t.same(small, ['10.236.0.0/24 c orphaned', '10.236.1.0/24 b orphaned'], 'b and c hold no host lease; c not marked yet -> orphaned (grace not started)');
      t.equal(blocks.filter((b) => b.network === 'race').length, 20);
      const rows = hostsRows({ hosts, blocks: blocks.filter((b) => b.network === 'small') }, 1_000_000 + 30_000, 60_000);
      t.same(rows.map((r) => r.length), rows.map(() => HOSTS_COLUMNS.length), 'one cell per column');
      t.same(rows[0].slice(0, 6), ['h1', '10.238.0.11', 'small', '02:00:00:00:00:11', '10.236.1.0', '10.236.1.0/24']);
      t.same(rows.slice(1).map((r) => `${r[0]} ${r[5]} ${r[6]}`).sort(), [
        'b 10.236.1.0/24 expired (grace not started)', 'c 10.236.0.0/24 expired (grace not started)']);
      t.same(hostsRows({ hosts: [], blocks: [{ network: 'n', block: '10.0.0.0/24', hostId: 'x', since: 0, state: 'orphaned', orphanedAt: 1000 }] }, 11_000, 60_000)[0][6],
        'expired (reclaimable in 50s)');
    });
  });
}
