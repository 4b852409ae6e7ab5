// The Docker driver's logic without Docker or root: the call sequences Docker 20.10 makes (as
// logged from a real daemon), against a real embedded IPAM store in a temp dir, a recording
// datapath and a scripted Docker API. Plus the plugin socket (permissions, stale sockets,
// error replies). vxnetd's command line: test/unit/vxnetd-flags.test.ts.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCidr, formatIp, parseCidr } from '../../ipam/addr';
import { type LocalOverlayState, writeLocalState } from '../../overlay/local';
import { ipamAdd } from '../../ipam/core';
import { parseIpamConf } from '../../ipam/config';
import { openStore } from '../../ipam/store';
import type { IpamStore } from '../../ipam/store/types';
import { createLogger } from '../../lib/log';
import type { Datapath } from '../../datapath/docker';
import type { DockerApi, DockerNetwork } from '../../cnm/docker';
import { Driver } from '../../cnm/driver';
import { overlayStatesIn } from '../../cnm/networks';
import { endpointContainerVeth, endpointHostVeth, parseNetworkOptions, poolId } from '../../cnm/model';
import { createApp, listenUnix, pluginNameOf } from '../../cnm/server';
import { NetworkRecords } from '../../cnm/state';

const NID = '1'.repeat(64);
const NID2 = '2'.repeat(64);
const EID = 'e'.repeat(64);
const EID2 = 'd'.repeat(64);
const log = createLogger('test', 'error');

interface Fixture {
  driver: Driver;
  store: IpamStore;
  calls: string[];
  links: Set<string>;
  dockerNets: Map<string, DockerNetwork>;
  dataDir: string;
  clock: { now: number };
  /** How the driver read the overlay agent's state: every scan by subnet, every network read alone. */
  reads: { scans: number; of: string[] };
  call(method: string, body?: unknown): Promise<any>;
}

function fixture(t: Test, o: { docker?: boolean; grace?: number; overlayDir?: string; dataDir?: string } = {}): Fixture {
  const dataDir = o.dataDir ?? fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-'));
  const store = openStore({ dataDir });
  t.teardown(async () => { await store.close(); fs.rmSync(dataDir, { recursive: true, force: true }); });
  const calls: string[] = [];
  const bridges = new Map<string, string>();
  const links = new Set<string>();
  const datapath: Datapath = {
    async ensureBridge(spec) {
      calls.push(`bridge ${spec.name} ${spec.network} gw=${spec.gateways.map((g) => g.prefix).join()} masq=${spec.ipMasq} ${spec.natTable}${spec.subnets.length > 1 ? ` ${spec.gateways.map(formatCidr).join()} ${spec.subnets.map(formatCidr).join()}` : ''}`);
      bridges.set(spec.network, spec.name);
    },
    async findBridgeOf(network) { return bridges.get(network); },
    async ensureRoutedNetwork(spec) { calls.push(`routed ${spec.network} ${spec.device}`); },
    async createVeth(v) { calls.push(`veth ${v.host} ${v.container} ${v.bridge} ${v.mac}`); links.add(v.container); },
    async routeToEndpoint(v) { calls.push(`route ${v.host} ${v.ips.map(formatIp).join()}${v.gateways6.length > 0 ? ` proxy6=${v.gateways6.map(formatIp).join()}` : ''}`); },
    async linksNamed(prefix) { return [...links].filter((n) => n.startsWith(prefix)); },
    async removeLink(name) { calls.push(`rm ${name}`); return links.delete(name) || true; },
    async teardownNetwork(v) { calls.push(`teardown ${v.network} ${v.bridge} ${v.natTable} ${v.subnets.map(formatCidr).join()}`); bridges.delete(v.network); return true; },
    async teardownRoutedNetwork(spec) { calls.push(`teardown-routed ${spec.network} ${spec.device}`); },
  };
  const dockerNets = new Map<string, DockerNetwork>();
  const docker: DockerApi = {
    async network(id) { return dockerNets.get(id); },
    async networks() { return [...dockerNets.values()].map((n) => ({ ...n, endpoints: new Map() })); },
    async events() { return { close() { /* none */ } }; },
  };
  const records = new NetworkRecords(dataDir);
  records.load(() => undefined);
  const clock = { now: Date.now() };
  const reads = { scans: 0, of: [] as string[] };
  const states = overlayStatesIn(o.overlayDir);
  const driver = new Driver({
    overlayStates: {
      forSubnet: (subnet) => { reads.scans += 1; return states.forSubnet(subnet); },
      of: (network) => { reads.of.push(network); return states.of(network); },
    },
    store, records, datapath, docker: o.docker === false ? undefined : docker, log, pluginName: 'vxnet',
    now: () => clock.now, endpointGraceMs: o.grace ?? 60_000, pendingGraceMs: 2 * (o.grace ?? 60_000),
    ...(o.overlayDir ? { overlayDir: o.overlayDir } : {}),
  });
  const call = async (method: string, body: unknown = {}): Promise<any> => {
    const fn = driver.methods[method];
    if (!fn) throw new Error(`no method ${method}`);
    return fn(body as Record<string, unknown>);
  };
  return { driver, store, calls, links, dockerNets, dataDir, clock, reads, call };
}

const dockerNet = (id: string, name: string, subnet: string, endpoints: Array<[string, string]> = []): DockerNetwork => ({
  id, name, driver: 'vxnet', ipamDriver: 'vxnet', subnets: [subnet], options: {},
  endpoints: new Map(endpoints.map(([eid, cname]) => [eid, { endpointId: eid, containerId: `c-${cname}`, name: cname }])),
});

const createBody = (nid: string, pool: string, generic: Record<string, string> = {}, gateway?: string): unknown => ({
  NetworkID: nid, Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': generic },
  IPv4Data: [{ AddressSpace: 'vxnet', Pool: pool, ...(gateway ? { Gateway: gateway } : {}) }], IPv6Data: [],
});

/** What `docker network create` does: RequestPool, RequestAddress(gateway), CreateNetwork. */
async function createNetwork(f: Fixture, nid: string, name: string, pool: string, generic: Record<string, string> = {}): Promise<string> {
  const p = await f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: pool, SubPool: '', Options: {}, V6: false });
  const gw = await f.call('IpamDriver.RequestAddress', { PoolID: p.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  await f.call('NetworkDriver.CreateNetwork', createBody(nid, pool, generic, gw.Address));
  f.dockerNets.set(nid, dockerNet(nid, name, pool));
  await f.driver.learnName(nid, name);
  return p.PoolID;
}

/** What a container start does: RequestAddress, CreateEndpoint, Join. */
async function attach(f: Fixture, nid: string, poolID: string, eid: string, address = ''): Promise<{ address: string; create: any; join: any }> {
  const a = await f.call('IpamDriver.RequestAddress', { PoolID: poolID, Address: address, Options: null });
  const create = await f.call('NetworkDriver.CreateEndpoint', { NetworkID: nid, EndpointID: eid, Interface: { Address: a.Address, AddressIPv6: '', MacAddress: '' }, Options: {} });
  const join = await f.call('NetworkDriver.Join', { NetworkID: nid, EndpointID: eid, SandboxKey: '/var/run/docker/netns/abc', Options: {} });
  return { address: a.Address, create, join };
}

const list = (f: Fixture, network?: string) => f.store.view((tx) => tx.list(network ? { network } : {}));

t.test('activation and capabilities', async (t) => {
  const f = fixture(t);
  t.same(await f.call('Plugin.Activate'), { Implements: ['NetworkDriver', 'IpamDriver'] });
  t.match(await f.call('NetworkDriver.GetCapabilities'), { Scope: 'local' });
  t.same(await f.call('IpamDriver.GetCapabilities'), { RequiresMACAddress: false, RequiresRequestReplay: false });
  t.same(await f.call('IpamDriver.GetDefaultAddressSpaces'), { LocalDefaultAddressSpace: 'vxnet', GlobalDefaultAddressSpace: 'vxnet-global' });
});

t.test('RequestPool: self-describing ids, identical requests identical answers, clear refusals', async (t) => {
  const f = fixture(t);
  const body = { AddressSpace: 'vxnet', Pool: '10.232.5.0/24', SubPool: '', Options: {}, V6: false };
  const a = await f.call('IpamDriver.RequestPool', body);
  t.same(a, { PoolID: 'vxnet:10.232.5.0/24', Pool: '10.232.5.0/24', Data: {} });
  t.same(await f.call('IpamDriver.RequestPool', body), a, 'repeatable');
  t.equal((await f.call('IpamDriver.RequestPool', { ...body, SubPool: '10.232.5.128/25' })).PoolID, 'vxnet:10.232.5.0/24:10.232.5.128/25');
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, Pool: '' }), /--subnet/);
  t.same(await f.call('IpamDriver.RequestPool', { ...body, V6: true, Pool: 'fd00:5::/64' }), { PoolID: 'vxnet:fd00:5::/64', Pool: 'fd00:5::/64', Data: {} }, 'IPv6 (--ipv6)');
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, V6: true }), /IPv6 CIDR/);
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, V6: false, Pool: 'fd00:5::/64' }), /not an IPv4 CIDR/);
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, Pool: '10.232.5.1/24' }), /host bits/);
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, SubPool: '10.9.0.0/25' }), /not inside/);
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, AddressSpace: 'vxnet-global' }), /local/);
  await t.rejects(f.call('IpamDriver.ReleasePool', { PoolID: 'nope' }), /not a vxnet pool id/);
  t.same(await f.call('IpamDriver.ReleasePool', { PoolID: a.PoolID }), {});
  const gw = await f.call('IpamDriver.RequestAddress', { PoolID: a.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  t.same(gw, { Address: '10.232.5.1/24', Data: {} }, 'default gateway: first address, as CNI');
  const gw2 = await f.call('IpamDriver.RequestAddress', { PoolID: a.PoolID, Address: '10.232.5.254', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  t.equal(gw2.Address, '10.232.5.254/24', '--gateway honoured');
  t.same(await list(f), [], 'the gateway is not an allocation');
});

t.test('a container: pending reservation, endpoint owner, MAC only, join in the host namespace; released by ReleaseAddress', async (t) => {
  const f = fixture(t);
  const pool = await createNetwork(f, NID, 'blue', '10.232.6.0/24');
  t.ok(await f.store.view((tx) => tx.getPool('blue')), 'pool registered under the Docker network name');
  const a = await f.call('IpamDriver.RequestAddress', { PoolID: pool, Address: '', Options: null });
  t.equal(a.Address, '10.232.6.2/24');
  t.match(await list(f), [{ network: 'blue', address: '10.232.6.2', runtime: 'docker', containerId: /^docker-pending-/ }], 'pending until CreateEndpoint');
  const create = await f.call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: a.Address, AddressIPv6: '', MacAddress: '' } });
  t.same(Object.keys(create), ['Interface'], 'only Interface');
  t.same(Object.keys(create.Interface), ['MacAddress'], 'only the MAC: Address is never echoed');
  t.match(create.Interface.MacAddress, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  t.same(await f.call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: a.Address, MacAddress: '02:00:00:00:00:01' } }), {}, 'repeat with a MAC: nothing to add');
  t.match(await list(f), [{ containerId: EID, ifname: 'docker', runtime: 'docker' }], 'owned by the endpoint');
  const join = await f.call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/var/run/docker/netns/abc', Options: {} });
  t.same(join, { InterfaceName: { SrcName: endpointContainerVeth(EID), DstPrefix: 'eth' }, Gateway: '10.232.6.1', StaticRoutes: [], DisableGatewayService: false });
  t.match(f.calls, ['bridge vx-blue blue gw=24 masq=true vxnet', `veth ${endpointHostVeth(EID)} ${endpointContainerVeth(EID)} vx-blue ${create.Interface.MacAddress}`]);
  t.match(await list(f), [{ netns: '/var/run/docker/netns/abc' }], 'sandbox recorded');
  t.same(await f.call('NetworkDriver.EndpointOperInfo', { NetworkID: NID, EndpointID: EID }), { Value: { 'vxnet.hostVeth': endpointHostVeth(EID) } });
  t.same(await f.call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.portmap': [] } }), {});
  await t.rejects(f.call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.portmap': [{ HostPort: 80 }] } }), /publish ports/);
  t.same(await f.call('NetworkDriver.Leave', { NetworkID: NID, EndpointID: EID }), {});
  t.same(await f.call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID }), {});
  t.ok(f.calls.includes(`rm ${endpointHostVeth(EID)}`), 'host veth removed');
  t.same(await f.call('IpamDriver.ReleaseAddress', { PoolID: pool, Address: '10.232.6.2' }), {});
  t.same(await list(f), [], 'released');
  t.same(await f.call('IpamDriver.ReleaseAddress', { PoolID: pool, Address: '10.232.6.2' }), {}, 'a repeated release succeeds');
});

t.test('static addresses, the gateway, and a CNI allocation the gateway release must not touch', async (t) => {
  const f = fixture(t);
  const pool = await createNetwork(f, NID, 'blue', '10.232.7.0/24');
  const a = await attach(f, NID, pool, EID, '10.232.7.50');
  t.equal(a.address, '10.232.7.50/24');
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: pool, Address: '10.232.7.50', Options: null }), /10\.232\.7\.50 .*not available.*held by/);
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: pool, Address: '10.232.7.1', Options: null }), /gateway/);
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: pool, Address: '10.9.9.9', Options: null }), /not in the network's subnet/);
  // A CNI container of the same network.
  await ipamAdd(f.store, parseIpamConf('blue', { subnet: '10.232.7.0/24' }), { network: 'blue', containerId: 'cni-1', ifname: 'eth0', runtime: 'cni' }, [{ family: 4, value: (10n << 24n) | (232n << 16n) | (7n << 8n) | 60n }]);
  await f.call('IpamDriver.ReleaseAddress', { PoolID: pool, Address: '10.232.7.60' });
  t.ok((await list(f)).some((x) => x.address === '10.232.7.60' && x.runtime === 'cni'), 'Docker cannot release a CNI container\'s address');
  const b = await attach(f, NID, pool, EID2);
  t.not(b.address, '10.232.7.60/24', 'Docker allocations skip CNI\'s');
});

t.test('network delete: Docker allocations go, the bridge goes only when no runtime uses the network', async (t) => {
  const f = fixture(t);
  const pool = await createNetwork(f, NID, 'blue', '10.232.8.0/24');
  await attach(f, NID, pool, EID);
  await ipamAdd(f.store, parseIpamConf('blue', { subnet: '10.232.8.0/24' }), { network: 'blue', containerId: 'cni-1', ifname: 'eth0', runtime: 'cni' });
  t.same(await f.call('NetworkDriver.DeleteNetwork', { NetworkID: NID }), {});
  t.match(await list(f), [{ runtime: 'cni' }], 'only the CNI allocation is left');
  t.notOk(f.calls.some((c) => c.startsWith('teardown')), 'bridge kept for the CNI container');
  t.same(fs.readdirSync(join(f.dataDir, 'docker', 'networks')), [], 'record gone');
  t.same(await f.call('NetworkDriver.DeleteNetwork', { NetworkID: NID }), {}, 'a repeated delete succeeds');

  const g = fixture(t);
  const pool2 = await createNetwork(g, NID2, 'green', '10.232.9.0/24', { natTable: 'vxtnat' });
  await attach(g, NID2, pool2, EID);
  await g.call('IpamDriver.ReleaseAddress', { PoolID: pool2, Address: '10.232.9.2' });
  await g.call('NetworkDriver.DeleteNetwork', { NetworkID: NID2 });
  t.ok(g.calls.includes('teardown green vx-green vxtnat 10.232.9.0/24'), 'unused bridge torn down');
  t.equal(await g.store.view((tx) => tx.getPool('green')), undefined, 'pool forgotten');
});

t.test('definitions: overlap with another Docker network and a conflicting CNI definition are refused', async (t) => {
  const f = fixture(t);
  await createNetwork(f, NID, 'blue', '10.232.10.0/24');
  await t.rejects(f.call('NetworkDriver.CreateNetwork', createBody(NID2, '10.232.10.0/25')), /overlaps subnet 10\.232\.10\.0\/24 of docker network blue/);
  await t.rejects(f.call('NetworkDriver.CreateNetwork', createBody(NID2, '10.232.11.0/24', { network: 'blue' })), /is docker network blue already/);
  await ipamAdd(f.store, parseIpamConf('red', { subnet: '10.232.12.0/24' }), { network: 'red', containerId: 'cni-1', ifname: 'eth0', runtime: 'cni' });
  await t.rejects(f.call('NetworkDriver.CreateNetwork', createBody(NID2, '10.232.13.0/24', { network: 'red' })),
    /vxnet network "red".*10\.232\.12\.0\/24.*10\.232\.13\.0\/24/, '-o network: refused at create');
  t.notOk(fs.existsSync(join(f.dataDir, 'docker', 'networks', `${NID2}.json`)), 'nothing recorded');
  // By name only: created, then attaching is refused with the conflict.
  const p = await createNetwork(f, NID2, 'red', '10.232.13.0/24');
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: p, Address: '', Options: null }), /docker network red .*conflicts with vxnet network "red".*10\.232\.12\.0\/24/);
  await t.rejects(f.call('NetworkDriver.CreateNetwork', { ...(createBody('4'.repeat(64), '10.232.14.0/24') as object), IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.232.14.0/24' }] }), /--ipam-driver vxnet/);
});

t.test('names: -o network binds at once; otherwise from Docker; lost records recovered from Docker', async (t) => {
  const f = fixture(t, { docker: false });
  const p = await f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: '10.232.15.0/24' });
  await f.call('NetworkDriver.CreateNetwork', createBody(NID, '10.232.15.0/24', { network: 'shared', bridge: 'vxtbr15' }));
  const a = await attach(f, NID, p.PoolID, EID);
  t.equal(a.address, '10.232.15.2/24', 'works without the Docker API when -o network names it');
  t.match(await list(f), [{ network: 'shared' }]);
  t.ok(f.calls.some((c) => c.startsWith('bridge vxtbr15 shared')), '-o bridge used');

  const g = fixture(t);
  g.dockerNets.set(NID, dockerNet(NID, 'lost', '10.232.16.0/24'));
  const r = await attach(g, NID, poolId({ pool: { ip: { family: 4, value: (10n << 24n) | (232n << 16n) | (16n << 8n) }, prefix: 24 }, subPool: undefined }), EID);
  t.equal(r.address, '10.232.16.2/24', 'a network vxnetd has no record of is recovered from Docker');
  t.ok(fs.existsSync(join(g.dataDir, 'docker', 'networks', `${NID}.json`)), 'and recorded again');
});

t.test('reconcile: names filled in, forgotten endpoints and stale pending reservations released, live ones kept', async (t) => {
  const f = fixture(t, { grace: 1000 });
  const pool = await createNetwork(f, NID, 'blue', '10.232.17.0/24');
  await attach(f, NID, pool, EID);
  await attach(f, NID, pool, EID2);
  await f.call('IpamDriver.RequestAddress', { PoolID: pool, Address: '', Options: null }); // never claimed
  f.dockerNets.set(NID, dockerNet(NID, 'blue', '10.232.17.0/24', [[EID, 'web1']]));
  let r = await f.driver.reconcile();
  t.equal(r.released.length, 0, 'nothing released inside the grace period');
  t.equal(r.named, 1, 'the live endpoint got its container name');
  f.clock.now += 1500;
  r = await f.driver.reconcile();
  t.same(r.released.map((a) => a.containerId), [EID2], 'the endpoint Docker forgot is released');
  t.ok(f.calls.includes(`rm ${endpointHostVeth(EID2)}`), 'with its veth');
  f.clock.now += 1000;
  r = await f.driver.reconcile();
  t.match(r.released, [{ containerId: /^docker-pending-/ }], 'the never-claimed reservation is released after twice the grace');
  t.match(await list(f), [{ containerId: EID, name: 'web1' }], 'the live container keeps its address');
  f.dockerNets.delete(NID);
  r = await f.driver.reconcile();
  t.same(r.networksRemoved, [NID], 'a network Docker removed while vxnetd was away is forgotten');
  t.same(await list(f), []);
});

t.test('reconcile removes a container end left in the host namespace at two reconciles in a row', async (t) => {
  const f = fixture(t);
  f.links.add('vxyaaaaaaaaaaaa');
  t.same((await f.driver.reconcile()).orphansRemoved, [], 'first sighting: it may be a Join in flight');
  f.links.add('vxybbbbbbbbbbbb');
  t.same((await f.driver.reconcile()).orphansRemoved, ['vxyaaaaaaaaaaaa'], 'second sighting: removed');
  f.links.delete('vxybbbbbbbbbbbb'); // Docker took it meanwhile
  t.same((await f.driver.reconcile()).orphansRemoved, [], 'a link that went away is not touched');
});

t.test('malformed bodies are DecodingFailures naming the field', async (t) => {
  const f = fixture(t);
  await t.rejects(f.call('NetworkDriver.CreateNetwork', { NetworkID: 'x' }), /NetworkID.*64 lowercase hex/);
  await t.rejects(f.call('NetworkDriver.CreateNetwork', { NetworkID: NID, IPv4Data: 'x' }), /IPv4Data/);
  await t.rejects(f.call('NetworkDriver.CreateNetwork', { NetworkID: NID, IPv4Data: [{ Pool: 'zz' }] }), /Pool/);
  await t.rejects(f.call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID }), /SandboxKey/);
  await t.rejects(f.call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: [] }), /Interface/);
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: 'vxnet:10.0.0.0/24', Options: 'x' }), /Options/);
  await t.rejects(f.call('IpamDriver.ReleaseAddress', { PoolID: 'vxnet:10.0.0.0/24', Address: 'nope' }), /Address/);
  await t.rejects(f.call('NetworkDriver.DiscoverNew', {}), /DiscoveryType/);
  t.same(await f.call('NetworkDriver.DiscoverNew', { DiscoveryType: 1, DiscoveryData: {} }), {});
  t.same(await f.call('NetworkDriver.AllocateNetwork', { NetworkID: NID, Options: { a: 'b' } }), { Options: { a: 'b' } });
});

t.test('an overlay network: endpoints attached routed with the agent\'s device; the last user\'s network rm undoes the setup', async (t) => {
  const overlayDir = fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-ov-'));
  t.teardown(() => fs.rmSync(overlayDir, { recursive: true, force: true }));
  writeLocalState(overlayDir, {
    network: 'ov1', hostId: 'h1', vni: 4242, device: 'vxlan.4242', mtu: 1400,
    blocks: [parseCidr('10.240.3.0/24')!], subnets: [parseCidr('10.240.0.0/16')!], updated: Date.now(),
  });
  const f = fixture(t, { overlayDir });
  const nid = 'f'.repeat(64);
  const pool = await createNetwork(f, nid, 'ov1', '10.240.0.0/16');
  const eid = 'e'.repeat(64);
  const a = await attach(f, nid, pool, eid);
  t.equal(a.address, '10.240.3.2/24', 'the first container address of this host\'s block, with the block\'s prefix');
  t.equal(a.join.Gateway, '10.240.3.1', 'the block\'s gateway');
  t.same(a.join.InterfaceName, { SrcName: endpointContainerVeth(eid), DstPrefix: 'eth' });
  t.same(f.calls.filter((c) => !c.startsWith('rm ')), [
    'routed ov1 vxlan.4242',
    `veth ${endpointHostVeth(eid)} ${endpointContainerVeth(eid)} undefined ${a.create.Interface.MacAddress}`,
    `route ${endpointHostVeth(eid)} 10.240.3.2`,
  ], 'the routed setup, a veth on no bridge, the host route; no bridge made');
  f.calls.length = 0;
  await f.call('NetworkDriver.Leave', { NetworkID: nid, EndpointID: eid });
  await f.call('NetworkDriver.DeleteEndpoint', { NetworkID: nid, EndpointID: eid });
  await f.call('IpamDriver.ReleaseAddress', { PoolID: pool, Address: '10.240.3.2' });
  await f.call('NetworkDriver.DeleteNetwork', { NetworkID: nid });
  t.ok(f.calls.includes('teardown-routed ov1 vxlan.4242'), 'network rm of the last user undoes the routed setup', { diag: f.calls });
  t.notOk(f.calls.some((c) => c.startsWith('teardown ')), 'no bridge teardown');
});

t.test('driver options', async (t) => {
  t.match(parseNetworkOptions(undefined), { network: undefined, bridge: undefined, mtu: undefined, ipMasq: true, natTable: 'vxnet', internal: false });
  t.match(parseNetworkOptions({ 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'br9', 'com.docker.network.driver.mtu': '1450', ipMasq: 'false' } }), { bridge: 'br9', mtu: 1450, ipMasq: false });
  t.match(parseNetworkOptions({ 'com.docker.network.internal': true }), { ipMasq: false, internal: true });
  t.throws(() => parseNetworkOptions({ 'com.docker.network.generic': { mtu: '99' } }), /mtu=99/);
  t.throws(() => parseNetworkOptions({ 'com.docker.network.generic': { bridge: 'this-name-is-too-long' } }), /bridge/);
  t.throws(() => parseNetworkOptions({ 'com.docker.network.generic': { ipMasq: 'maybe' } }), /true or false/);
  t.throws(() => parseNetworkOptions({ 'com.docker.network.generic': { natTable: '1x' } }), /nftables/);
  t.throws(() => parseNetworkOptions({ 'com.docker.network.generic': { network: '-x' } }), /network name/);
  t.throws(() => parseNetworkOptions({ 'com.docker.network.generic': { colour: 'red' } }), /unknown option/);
  t.throws(() => parseNetworkOptions({ 'com.docker.network.internal': true, 'com.docker.network.generic': { ipMasq: 'true' } }), /internal/);
});

/** Resolves with the reply; status 0 when the server cut the connection before replying (a body it refused to read). */
function post(socket: string, path: string, body: string, method = 'POST'): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path, method, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? resolve({ status: 0, json: null }) : reject(err)));
    req.end(body);
  });
}

function closeOnTeardown(t: Test, server: http.Server): void {
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
}

t.test('the plugin socket: permissions, stale sockets, {"Err"} replies', async (t) => {
  const dir = join(fs.mkdtempSync(join(tmpdir(), 'vxt-sock-')), 'plugins');
  t.teardown(() => fs.rmSync(join(dir, '..'), { recursive: true, force: true }));
  const socket = join(dir, 'vxtest.sock');
  t.equal(pluginNameOf(socket), 'vxtest');
  const app = createApp({
    'Plugin.Activate': async () => ({ Implements: ['NetworkDriver'] }),
    'X.Fail': async () => { throw new Error('boom'); },
    'X.Echo': async (b) => b,
  }, log);
  fs.mkdirSync(dir);
  fs.writeFileSync(socket, 'not a socket');
  await t.rejects(listenUnix(app, socket), /not a socket/);
  fs.rmSync(socket);
  const server = await listenUnix(app, socket);
  closeOnTeardown(t, server);
  t.equal(fs.statSync(socket).mode & 0o777, 0o600, 'socket 0600');
  t.same((await post(socket, '/Plugin.Activate', 'ignored?')), { status: 200, json: { Implements: ['NetworkDriver'] } }, 'no-input calls ignore their body');
  t.same(await post(socket, '/X.Echo', ''), { status: 200, json: {} }, 'empty body is {}');
  t.same(await post(socket, '/X.Echo', '{"a":1}'), { status: 200, json: { a: 1 } });
  t.match(await post(socket, '/X.Echo', '{bad'), { status: 400, json: { Err: /not valid JSON/ } });
  t.match(await post(socket, '/X.Fail', '{}'), { status: 500, json: { Err: 'boom' } });
  t.match(await post(socket, '/X.Missing', '{}'), { status: 404, json: { Err: /not a plugin method/ } });
  t.match(await post(socket, '/X.Echo', '{}', 'GET'), { status: 404, json: { Err: /GET/ } });
  const big = await post(socket, '/X.Echo', `"${'x'.repeat(1_100_000)}"`);
  t.ok(big.status === 0 || (big.status === 400 && /cannot read the request/.test(big.json?.Err)), `an oversized body is refused (${big.status})`);
  t.equal((await post(socket, '/Plugin.Activate', '')).status, 200, 'and the server still serves');
  t.match(await post(socket, '/__proto__', '{}'), { status: 404 }, 'no prototype lookups');
  await t.rejects(listenUnix(app, socket), /another process serves/, 'a live socket is not taken over');
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  // A socket left by a killed daemon is replaced.
  const { execFileSync } = await import('node:child_process');
  execFileSync('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(socket)})`]);
  const again = await listenUnix(app, socket);
  closeOnTeardown(t, again);
  t.equal((await post(socket, '/Plugin.Activate', '')).status, 200, 'stale socket replaced');
  again.closeAllConnections();
  await new Promise<void>((r) => again.close(() => r()));
  const fresh = join(dir, '..', 'new', 'x.sock');
  const s3 = await listenUnix(app, fresh);
  closeOnTeardown(t, s3);
  t.equal(fs.statSync(join(dir, '..', 'new')).mode & 0o777, 0o700, 'a missing directory is made 0700');
});

/** An overlay agent's state directory with ov1 (block 10.240.3.0/24 of 10.240.0.0/16) and ov2, removed at the end. */
function overlayDirWith(t: Test): { dir: string; ov1: LocalOverlayState } {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-ov-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ov1: LocalOverlayState = {
    network: 'ov1', hostId: 'h1', vni: 4242, device: 'vxlan.4242', mtu: 1400,
    blocks: [parseCidr('10.240.3.0/24')!], subnets: [parseCidr('10.240.0.0/16')!], updated: Date.now(),
  };
  writeLocalState(dir, ov1);
  writeLocalState(dir, { ...ov1, network: 'ov2', vni: 4243, device: 'vxlan.4243', blocks: [parseCidr('10.241.9.0/24')!], subnets: [parseCidr('10.241.0.0/16')!] });
  return { dir, ov1 };
}

t.test('options parsed once: a container start reads no overlay state for a bridge network, and only its own network\'s for an overlay one', async (t) => {
  const { dir } = overlayDirWith(t);
  const f = fixture(t, { overlayDir: dir });
  const blue = await createNetwork(f, NID, 'blue', '10.232.20.0/24');
  const ov = await createNetwork(f, 'f'.repeat(64), 'ov1', '10.240.0.0/16');
  t.ok(f.reads.scans > 0, 'network create looks for an overlay network with the subnet');
  f.reads.scans = 0;
  f.reads.of.length = 0;
  await attach(f, NID, blue, EID);
  await f.call('IpamDriver.ReleaseAddress', { PoolID: blue, Address: '10.232.20.9' });
  t.same(f.reads, { scans: 0, of: [] }, 'bridge network: RequestAddress, CreateEndpoint, Join, ReleaseAddress read no overlay state');
  const a = await attach(f, 'f'.repeat(64), ov, EID2);
  t.equal(a.address, '10.240.3.2/24');
  t.equal(f.reads.scans, 0, 'overlay network: no scan of every state file');
  t.ok(f.reads.of.length > 0 && f.reads.of.every((n) => n === 'ov1'), `only ov1's state file is read (${f.reads.of.join(', ')})`);
});

t.test('an overlay network whose state this host has lost (a reboot before the agent wrote it) is refused, not made a bridge network', async (t) => {
  const { dir } = overlayDirWith(t);
  const f = fixture(t, { overlayDir: dir });
  const nid = 'f'.repeat(64);
  const pool = await createNetwork(f, nid, 'ov1', '10.240.0.0/16');
  fs.rmSync(join(dir, 'ov1.json'));
  t.match(await f.call('IpamDriver.RequestAddress', { PoolID: pool, Address: '', Options: null }).catch((e: Error) => e),
    { name: 'PluginNotAvailable', message: 'overlay network "ov1" has no state on this host (yet): is vxnetd\'s overlay agent running with this network?' });
  t.same(await list(f), [], 'nothing allocated');
  t.same(f.calls, [], 'no bridge made');
});

t.test('a host waiting for a block of an overlay network: Docker is told what the CNI plugin says (who holds the blocks, what happens next)', async (t) => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-ov-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const subnet = parseCidr('10.240.0.0/23')!;
  const ov1: LocalOverlayState = {
    network: 'ov1', hostId: 'h3', vni: 4242, device: 'vxlan.4242', mtu: 1400, blocks: [parseCidr('10.240.1.0/24')!], subnets: [subnet], updated: Date.now(),
  };
  const waiting: LocalOverlayState = {
    ...ov1, blocks: [], noBlock: {
      subnet, blockPrefix: 24, blocks: 2, nextReclaimableAt: undefined, holders: [
        { hostId: 'h1', block: parseCidr('10.240.0.0/24')!, state: 'held', reclaimableAt: undefined },
        { hostId: 'h2', block: parseCidr('10.240.1.0/24')!, state: 'held', reclaimableAt: undefined },
      ],
    },
  };
  // The CNI plugin's error for the same state (test/unit/netconf-overlay.test.ts), without the state file's path.
  const shortage = { name: 'PoolExhausted', message: 'network ov1: no free /24 block in 10.240.0.0/23 for host h3: both blocks are held (h1 (10.240.0.0/24, alive), h2 (10.240.1.0/24, alive)); '
    + 'none becomes free before its host\'s lease expires and the grace period after it passes' };

  writeLocalState(dir, waiting);
  const f = fixture(t, { overlayDir: dir });
  const p = await f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: '10.240.0.0/23', SubPool: '', Options: {}, V6: false });
  t.match(await f.call('IpamDriver.RequestAddress', { PoolID: p.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } }).catch((e: Error) => e),
    shortage, 'network create on a waiting host: the gateway request fails with the shortage');

  // The network was created while this host had a block; the agent came back to none.
  writeLocalState(dir, ov1);
  const nid = 'f'.repeat(64);
  const pool = await createNetwork(f, nid, 'ov1', '10.240.0.0/23');
  writeLocalState(dir, waiting);
  t.match(await f.call('IpamDriver.RequestAddress', { PoolID: pool, Address: '', Options: null }).catch((e: Error) => e),
    shortage, 'a container start: RequestAddress fails with the shortage');
  t.same(await list(f), [], 'nothing allocated');
  t.same(f.calls, [], 'nothing attached');
});

t.test('a lost record of an overlay network is recovered from Docker as that overlay network, with its block\'s gateway', async (t) => {
  const { dir } = overlayDirWith(t);
  const f = fixture(t, { overlayDir: dir });
  const nid = 'f'.repeat(64);
  f.dockerNets.set(nid, dockerNet(nid, 'dock-ov', '10.240.0.0/16'));
  const a = await attach(f, nid, 'vxnet:10.240.0.0/16', EID);
  t.equal(a.address, '10.240.3.2/24', 'an address of this host\'s block');
  t.equal(a.join.Gateway, '10.240.3.1', 'the block\'s gateway, not the subnet\'s first address');
  t.match(await list(f), [{ network: 'ov1', containerId: EID, runtime: 'docker' }], 'one allocation, in the overlay network, owned by the endpoint');
  t.ok(f.calls.includes('routed ov1 vxlan.4242'), 'attached routed');
  t.match(JSON.parse(fs.readFileSync(join(f.dataDir, 'docker', 'networks', `${nid}.json`), 'utf8')), { name: 'ov1', dockerName: 'dock-ov', mode: 'overlay', gateway: '10.240.3.1/24' });
});

t.test('records from before the mode: an overlay network\'s decided when vxnetd starts, and stored', async (t) => {
  const { dir } = overlayDirWith(t);
  const dataDir = fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-'));
  const recDir = join(dataDir, 'docker', 'networks');
  fs.mkdirSync(recDir, { recursive: true });
  const options = { ipMasq: true, natTable: 'vxnet', internal: false };
  const nid = 'f'.repeat(64);
  fs.writeFileSync(join(recDir, `${nid}.json`), JSON.stringify({ id: nid, name: 'ov1', dockerName: 'ov1', pool: '10.240.0.0/16', gateway: '10.240.3.1/24', options: { ...options, network: 'ov1' }, created: 1 }));
  fs.writeFileSync(join(recDir, `${NID}.json`), JSON.stringify({ id: NID, name: 'blue', dockerName: 'blue', pool: '10.232.21.0/24', gateway: '10.232.21.1/24', options, created: 1 }));
  const f = fixture(t, { overlayDir: dir, dataDir });
  const mode = (id: string): unknown => JSON.parse(fs.readFileSync(join(recDir, `${id}.json`), 'utf8')).mode;
  t.same([mode(nid), mode(NID)], ['overlay', undefined], 'a bridge network\'s stays undecided: a missing state file is no proof');
  const a = await attach(f, nid, 'vxnet:10.240.0.0/16', EID);
  t.equal(a.address, '10.240.3.2/24');
  const b = await attach(f, NID, 'vxnet:10.232.21.0/24', EID2);
  t.equal(b.address, '10.232.21.2/24');
  t.match(f.calls, ['routed ov1 vxlan.4242', /^veth /, /^route /, 'bridge vx-blue blue gw=24 masq=true vxnet', /^veth /]);
});

t.test('unreadable records are reported with what is wrong, and skipped', async (t) => {
  const dataDir = fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const recDir = join(dataDir, 'docker', 'networks');
  fs.mkdirSync(recDir, { recursive: true });
  fs.writeFileSync(join(recDir, `${NID}.json`), JSON.stringify({ id: NID, pool: 'nope', gateway: '10.0.0.1/24', options: {}, created: 1 }));
  fs.writeFileSync(join(recDir, `${NID2}.json`), JSON.stringify({ id: NID, pool: '10.0.0.0/24', gateway: '10.0.0.1/24', options: {}, created: 1 }));
  const bad: string[] = [];
  const records = new NetworkRecords(dataDir);
  records.load((file, err) => bad.push(`${file.slice(recDir.length + 1, recDir.length + 5)}: ${err.message}`));
  t.same(bad.sort(), ['1111: "pool" "nope" is not an IPv4 CIDR', `2222: the record of network ${NID.slice(0, 12)} is in the wrong file`]);
  t.same(records.all(), []);
});

t.test('overlay: a container whose address is in this host\'s second block gets that block\'s gateway', async (t) => {
  const { dir, ov1 } = overlayDirWith(t);
  writeLocalState(dir, { ...ov1, blocks: [parseCidr('10.240.3.0/24')!, parseCidr('10.240.7.0/24')!] });
  const f = fixture(t, { overlayDir: dir });
  const nid = 'f'.repeat(64);
  const pool = await createNetwork(f, nid, 'ov1', '10.240.0.0/16');
  const first = await attach(f, nid, pool, EID);
  t.same([first.address, first.join.Gateway], ['10.240.3.2/24', '10.240.3.1']);
  const second = await attach(f, nid, pool, EID2, '10.240.7.9');
  t.equal(second.address, '10.240.7.9/24', 'the address with its block\'s prefix');
  t.equal(second.join.Gateway, '10.240.7.1', 'and its block\'s gateway: the other block\'s is outside the container\'s subnet');
});

t.test('a record from before the mode whose overlay state is not written yet (a reboot): a bridge network until the agent writes it', async (t) => {
  const { dir, ov1 } = overlayDirWith(t);
  fs.rmSync(join(dir, 'ov1.json'));
  const dataDir = fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-'));
  const recDir = join(dataDir, 'docker', 'networks');
  fs.mkdirSync(recDir, { recursive: true });
  const nid = 'f'.repeat(64);
  const file = join(recDir, `${nid}.json`);
  fs.writeFileSync(file, JSON.stringify({ id: nid, name: 'ov1', dockerName: 'ov1', pool: '10.240.0.0/16', gateway: '10.240.3.1/24', options: { ipMasq: true, natTable: 'vxnet', internal: false, network: 'ov1' }, created: 1 }));
  const f = fixture(t, { overlayDir: dir, dataDir });
  t.equal(JSON.parse(fs.readFileSync(file, 'utf8')).mode, undefined, 'not decided at start without the state');
  writeLocalState(dir, ov1);
  const a = await attach(f, nid, 'vxnet:10.240.0.0/16', EID);
  t.equal(a.address, '10.240.3.2/24', 'served as the overlay network once the agent wrote its state');
  t.equal(JSON.parse(fs.readFileSync(file, 'utf8')).mode, 'overlay', 'and stored so');
  t.ok(f.calls.includes('routed ov1 vxlan.4242'));
});

// ---- dual stack (issue 16): what Docker 20.10 sends for `docker network create --ipv6` ----

/** `docker network create --ipv6 --subnet V4 --subnet V6`: RequestPool and the gateway per family, then CreateNetwork with both. */
async function createDualNetwork(f: Fixture, nid: string, name: string, v4: string, v6: string, generic: Record<string, string> = {}): Promise<{ pool4: string; pool6: string }> {
  const p4 = await f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: v4, SubPool: '', Options: {}, V6: false });
  const p6 = await f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: v6, SubPool: '', Options: {}, V6: true });
  const gw4 = await f.call('IpamDriver.RequestAddress', { PoolID: p4.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  const gw6 = await f.call('IpamDriver.RequestAddress', { PoolID: p6.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  await f.call('NetworkDriver.CreateNetwork', {
    NetworkID: nid, Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': generic },
    IPv4Data: [{ AddressSpace: 'vxnet', Pool: v4, Gateway: gw4.Address }], IPv6Data: [{ AddressSpace: 'vxnet', Pool: v6, Gateway: gw6.Address }],
  });
  f.dockerNets.set(nid, { ...dockerNet(nid, name, v4), subnets: [v4, v6] });
  await f.driver.learnName(nid, name);
  return { pool4: p4.PoolID, pool6: p6.PoolID };
}

/** A container start on a dual-stack network: RequestAddress per family, CreateEndpoint with both, Join. */
async function attachDual(f: Fixture, nid: string, pools: { pool4: string; pool6: string }, eid: string, ip6 = ''): Promise<{ address: string; address6: string; create: any; join: any }> {
  const a = await f.call('IpamDriver.RequestAddress', { PoolID: pools.pool4, Address: '', Options: null });
  const a6 = await f.call('IpamDriver.RequestAddress', { PoolID: pools.pool6, Address: ip6, Options: null });
  const create = await f.call('NetworkDriver.CreateEndpoint', { NetworkID: nid, EndpointID: eid, Interface: { Address: a.Address, AddressIPv6: a6.Address, MacAddress: '' }, Options: {} });
  const join = await f.call('NetworkDriver.Join', { NetworkID: nid, EndpointID: eid, SandboxKey: '/var/run/docker/netns/abc', Options: {} });
  return { address: a.Address, address6: a6.Address, create, join };
}

t.test('dual stack, bridge: one pool per family, both gateways on the bridge, GatewayIPv6; the CNI side\'s dual-stack config is the same network', async (t) => {
  const f = fixture(t);
  const pools = await createDualNetwork(f, NID, 'dual', '10.232.30.0/24', 'fd00:232:30::/64');
  t.equal(pools.pool6, 'vxnet:fd00:232:30::/64');
  const rec = JSON.parse(fs.readFileSync(join(f.dataDir, 'docker', 'networks', `${NID}.json`), 'utf8'));
  t.match(rec, { pool: '10.232.30.0/24', gateway: '10.232.30.1/24', pool6: 'fd00:232:30::/64', gateway6: 'fd00:232:30::1/64' }, 'both families recorded');
  const a = await attachDual(f, NID, pools, EID);
  t.equal(a.address, '10.232.30.2/24');
  t.equal(a.address6, 'fd00:232:30::2/64', 'IPv6 address with the subnet\'s prefix (a bridge network: on-link)');
  t.same(Object.keys(a.create.Interface), ['MacAddress'], 'neither address echoed');
  t.same(a.join, { InterfaceName: { SrcName: endpointContainerVeth(EID), DstPrefix: 'eth' }, Gateway: '10.232.30.1', GatewayIPv6: 'fd00:232:30::1', StaticRoutes: [], DisableGatewayService: false });
  t.ok(f.calls.includes('bridge vx-dual dual gw=24,64 masq=true vxnet 10.232.30.1/24,fd00:232:30::1/64 10.232.30.0/24,fd00:232:30::/64'),
    'the bridge gets both gateways; both subnets masqueraded (ipMasq)', { diag: f.calls });
  t.match((await list(f)).map((x) => `${x.address} ${x.containerId} ${x.rangeSet}`).sort(), [`10.232.30.2 ${EID} 0`, `fd00:232:30::2 ${EID} 1`], 'one allocation per family, owned by the endpoint');

  // A podman container of the same network: its CNI config lists the same two subnets.
  const cni = parseIpamConf('dual', { ranges: [[{ subnet: '10.232.30.0/24' }], [{ subnet: 'fd00:232:30::/64' }]] });
  const added = await ipamAdd(f.store, cni, { network: 'dual', containerId: 'cni-1', ifname: 'eth0', runtime: 'cni' });
  t.same(added.ips.map((x) => formatCidr(x.cidr)), ['10.232.30.3/24', 'fd00:232:30::3/64'], 'the CNI side allocates from the same two pools, after Docker\'s');
  const b = await attachDual(f, NID, pools, EID2, 'fd00:232:30::77');
  t.equal(b.address6, 'fd00:232:30::77/64', '--ip6 honoured');
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: pools.pool6, Address: 'fd00:232:30::77', Options: null }), /fd00:232:30::77.*(not available|held)/, 'a taken --ip6');
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: pools.pool6, Address: 'fd00:9::5', Options: null }), /fd00:9::5 is not in the network's subnet fd00:232:30::\/64/, '--ip6 outside the pool');
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: pools.pool6, Address: '10.232.30.9', Options: null }), /not an IPv6 address/);
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: pools.pool6, Address: 'fd00:232:30::1', Options: null }), /gateway/, 'the IPv6 gateway is not for containers');

  // Stop and remove B: Docker releases both addresses; network rm releases the rest and tears down both families.
  await f.call('NetworkDriver.Leave', { NetworkID: NID, EndpointID: EID2 });
  await f.call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID2 });
  await f.call('IpamDriver.ReleaseAddress', { PoolID: pools.pool4, Address: b.address.split('/')[0] });
  await f.call('IpamDriver.ReleaseAddress', { PoolID: pools.pool6, Address: 'fd00:232:30::77' });
  t.notOk((await list(f)).some((x) => x.containerId === EID2), 'both of B\'s addresses released');
  await f.store.withLock((tx) => tx.releaseByOwner('dual', 'cni-1', 'eth0', 'test'));
  await f.call('NetworkDriver.DeleteNetwork', { NetworkID: NID });
  t.ok(f.calls.includes('teardown dual vx-dual vxnet 10.232.30.0/24,fd00:232:30::/64'), 'teardown of both families', { diag: f.calls });
  t.same(await list(f), [], 'nothing left');
  t.equal(await f.store.view((tx) => tx.getPool('dual')), undefined, 'pool forgotten');
});

t.test('dual stack: a v6 subnet conflicting with the CNI side\'s, an exhausted v6 pool, an IPv4-only network given an IPv6 address', async (t) => {
  const f = fixture(t);
  await ipamAdd(f.store, parseIpamConf('red', { ranges: [[{ subnet: '10.232.31.0/24' }], [{ subnet: 'fd00:31::/64' }]] }), { network: 'red', containerId: 'cni-1', ifname: 'eth0', runtime: 'cni' });
  const p4 = await f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: '10.232.31.0/24', V6: false });
  const p6 = await f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: 'fd00:99::/64', V6: true });
  const body = {
    NetworkID: NID, Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': { network: 'red' } },
    IPv4Data: [{ AddressSpace: 'vxnet', Pool: '10.232.31.0/24', Gateway: '10.232.31.1/24' }], IPv6Data: [{ AddressSpace: 'vxnet', Pool: 'fd00:99::/64', Gateway: 'fd00:99::1/64' }],
  };
  await t.rejects(f.call('NetworkDriver.CreateNetwork', body), /vxnet network "red".*fd00:31::\/64.*fd00:99::\/64/, 'the conflict names both IPv6 subnets');
  t.notOk(fs.existsSync(join(f.dataDir, 'docker', 'networks', `${NID}.json`)), 'nothing recorded');
  t.match((await list(f)).map((x) => x.containerId), ['cni-1', 'cni-1'], 'the CNI container\'s addresses untouched');
  t.ok(p4.PoolID && p6.PoolID);

  // A /126 has two container addresses after the gateway.
  const small = await createDualNetwork(f, NID2, 'tiny', '10.232.32.0/24', 'fd00:32::/126');
  await attachDual(f, NID2, small, EID);
  await attachDual(f, NID2, small, EID2);
  const before = await list(f, 'tiny');
  await t.rejects(f.call('IpamDriver.RequestAddress', { PoolID: small.pool6, Address: '', Options: null }), /no free address in network "tiny" pool fd00:32::1-fd00:32::3: all 2 addresses are in use/, 'an exhausted IPv6 pool, said so');
  t.same(await list(f, 'tiny'), before, 'nothing reserved by the refused request');

  const v4only = await createNetwork(f, '5'.repeat(64), 'plain', '10.232.33.0/24');
  const a = await f.call('IpamDriver.RequestAddress', { PoolID: v4only, Address: '', Options: null });
  await t.rejects(f.call('NetworkDriver.CreateEndpoint', { NetworkID: '5'.repeat(64), EndpointID: EID, Interface: { Address: a.Address, AddressIPv6: 'fd00::5/64', MacAddress: '' } }), /no IPv6 subnet: it was created without --ipv6/);
  await t.rejects(f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: 'fd00::/127', V6: true }), /too small to allocate from \(at most \/126\)/);
  await t.rejects(f.call('IpamDriver.RequestPool', { AddressSpace: 'vxnet', Pool: 'fd00::1/64', V6: true }), /host bits set; the network is fd00::\/64/);
});

t.test('dual stack: --ipam-opt network=NAME ties pools without --subnet to an existing vxnet network, per family', async (t) => {
  const f = fixture(t);
  await ipamAdd(f.store, parseIpamConf('shared', { ranges: [[{ subnet: '10.232.34.0/24' }], [{ subnet: 'fd00:34::/64' }]] }), { network: 'shared', containerId: 'cni-1', ifname: 'eth0', runtime: 'cni' });
  const body = { AddressSpace: 'vxnet', Pool: '', SubPool: '', Options: { network: 'shared' } };
  t.same(await f.call('IpamDriver.RequestPool', { ...body, V6: false }), { PoolID: 'vxnet:10.232.34.0/24', Pool: '10.232.34.0/24', Data: {} });
  t.same(await f.call('IpamDriver.RequestPool', { ...body, V6: true }), { PoolID: 'vxnet:fd00:34::/64', Pool: 'fd00:34::/64', Data: {} });
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, Options: { network: 'nosuch' }, V6: true }), /no vxnet network "nosuch" is known/);
  await ipamAdd(f.store, parseIpamConf('four', { subnet: '10.232.35.0/24' }), { network: 'four', containerId: 'cni-2', ifname: 'eth0', runtime: 'cni' });
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, Options: { network: 'four' }, V6: true }), /vxnet network "four" has no IPv6 subnet \(it has 10\.232\.35\.0\/24\)/);
  await t.rejects(f.call('IpamDriver.RequestPool', { ...body, Options: {}, V6: true }), /IPv6 subnet of the network/);
});

t.test('dual stack, overlay: IPv6 from this host\'s IPv6 block without a prefix, the gateway by a connected route and proxy NDP', async (t) => {
  const overlayDir = fs.mkdtempSync(join(tmpdir(), 'vxt-cnm-ov-'));
  t.teardown(() => fs.rmSync(overlayDir, { recursive: true, force: true }));
  writeLocalState(overlayDir, {
    network: 'ov6', hostId: 'h1', vni: 4243, device: 'vxlan.4243', mtu: 1400,
    blocks: [parseCidr('10.241.3.0/24')!, parseCidr('fd41:0:0:3::/64')!], subnets: [parseCidr('10.241.0.0/16')!, parseCidr('fd41::/48')!], updated: Date.now(),
  });
  const f = fixture(t, { overlayDir });
  const nid = 'f'.repeat(64);
  await t.rejects((async () => {
    await f.call('NetworkDriver.CreateNetwork', {
      NetworkID: '6'.repeat(64), Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'vxnet', Pool: '10.241.0.0/16' }], IPv6Data: [{ AddressSpace: 'vxnet', Pool: 'fd99::/48' }],
    });
  })(), /IPv6 subnet fd99::\/48 is not overlay network "ov6"'s: its IPv6 subnet is fd41::\/48/);
  const pools = await createDualNetwork(f, nid, 'ov6', '10.241.0.0/16', 'fd41::/48');
  const rec = JSON.parse(fs.readFileSync(join(f.dataDir, 'docker', 'networks', `${nid}.json`), 'utf8'));
  t.match(rec, { gateway: '10.241.3.1/24', gateway6: 'fd41:0:0:3::1/64', mode: 'overlay' }, 'the gateways of this host\'s blocks');
  const eid = 'e'.repeat(64);
  const a = await attachDual(f, nid, pools, eid);
  t.equal(a.address, '10.241.3.2/24');
  t.equal(a.address6, 'fd41:0:0:3::2/128', 'IPv6: the address alone, so everything goes through the gateway');
  t.same(a.join, {
    InterfaceName: { SrcName: endpointContainerVeth(eid), DstPrefix: 'eth' }, Gateway: '10.241.3.1', GatewayIPv6: 'fd41:0:0:3::1',
    StaticRoutes: [{ Destination: 'fd41:0:0:3::1/128', RouteType: 1 }], DisableGatewayService: false,
  });
  t.ok(f.calls.includes(`route ${endpointHostVeth(eid)} 10.241.3.2,fd41:0:0:3::2 proxy6=fd41:0:0:3::1`), 'host routes to both addresses, proxy NDP for the gateway', { diag: f.calls });
  t.match((await list(f, 'ov6')).map((x) => `${x.address} ${x.containerId}`).sort(), [`10.241.3.2 ${eid}`, `fd41:0:0:3::2 ${eid}`]);
});
