// The owner a CNI ADD records: name and aliases as before, plus the catalog's inputs, CNI
// labels (args.cni.labels) and container ports (runtimeConfig.portMappings). Malformed entries
// are skipped, never fatal (CNI conventions: args a plugin does not understand are ignored).
import t from 'tap';
import { cniLabelsFrom, containerPortsFrom, ownerFrom } from '../../cni/ipam-source';
import type { CmdArgs } from '../../cni/skel';

const cmd = (conf: Record<string, unknown>, args: Record<string, string> = {}): CmdArgs => ({
  command: 'ADD', containerId: 'c1', netns: '/var/run/netns/c1', ifname: 'eth0', args: new Map(Object.entries(args)),
  path: [], env: {}, stdin: JSON.stringify(conf), conf, version: '1.1.0',
} as unknown as CmdArgs);

t.test('labels from args.cni.labels; later entries win; malformed ones skipped', async (t) => {
  t.same(cniLabelsFrom({ args: { cni: { labels: [
    { key: 'app', value: 'shop' }, { key: 'vxnet.service', value: 'web' }, { key: 'app', value: 'shop2' },
    { key: 'n', value: 1 }, { key: '', value: 'x' }, 'app=x', null, { value: 'v' }, ['k', 'v'],
  ] } } }), { app: 'shop2', 'vxnet.service': 'web' });
  for (const conf of [{}, { args: 1 }, { args: { cni: 'x' } }, { args: { cni: { labels: { app: 'x' } } } }, { args: { cni: { labels: null } } }]) {
    t.same(cniLabelsFrom(conf), {}, `nothing from ${JSON.stringify(conf)}`);
  }
});

t.test('container ports from runtimeConfig.portMappings: once each, in order, tcp by default', async (t) => {
  t.same(containerPortsFrom({ runtimeConfig: { portMappings: [
    { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
    { hostPort: 5353, containerPort: 53, protocol: 'UDP' },
    { hostPort: 8443, containerPort: 443 },
    { hostPort: 8081, containerPort: 80, protocol: 'tcp' },
    { hostPort: 9000, containerPort: 9000, protocol: 'sctp' },
    { hostPort: 1, containerPort: 0 }, { containerPort: 70000 }, { containerPort: '80' }, { containerPort: 1.5 }, null, 'x',
  ] } }), [{ port: 80, protocol: 'tcp' }, { port: 53, protocol: 'udp' }, { port: 443, protocol: 'tcp' }]);
  t.same(containerPortsFrom({ runtimeConfig: { portMappings: {} } }), []);
  t.same(containerPortsFrom({}), []);
});

t.test('ownerFrom records labels and ports only when there are some', async (t) => {
  const conf = {
    args: { cni: { labels: [{ key: 'app', value: 'shop' }] } },
    runtimeConfig: { aliases: ['web'], portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
  };
  t.same(ownerFrom(cmd(conf, { K8S_POD_NAME: 'web-0' }), 'net'), {
    network: 'net', containerId: 'c1', ifname: 'eth0', runtime: 'cni', name: 'web-0', aliases: ['web'], netns: '/var/run/netns/c1',
    labels: { app: 'shop' }, ports: [{ port: 80, protocol: 'tcp' }],
  });
  const bare = ownerFrom(cmd({ args: { cni: { labels: 'bad' } }, runtimeConfig: { portMappings: 'bad' } }), 'net');
  t.same(bare, { network: 'net', containerId: 'c1', ifname: 'eth0', runtime: 'cni', netns: '/var/run/netns/c1' }, 'malformed: left out, not fatal');
});
