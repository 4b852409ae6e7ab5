// Service discovery with Docker: containers on a vxnet Docker network are in vxnetd's DNS by
// their Docker names as soon as `docker run` returns (the container start event refreshes the
// catalog; the name and labels come from the Docker API), with their labels' service and
// exposed ports (SRV); a container started with `--dns` finds another through Docker's embedded
// resolver, which forwards to vxnetd from the container's namespace; `docker rm` removes the
// name. vxnetd listens on one 198.51.100.25x address on a vxt bridge of the test's own
// (host-global: it goes with the link). Root only; vxt-prefixed everything.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { query } from '../../dns/client';
import { parseIp } from '../../ipam/addr';
import { dnsTestAddress } from '../helpers/dns-address';
import { pollUntil } from '../helpers/sh';
import { cannotRunDocker, containerIp, createDockerNet, createDockerNetNamed, docker, ensureDockerImage, freeSubnetOctet, mustDocker, runContainer, startVxnetd } from '../helpers/docker';
import { ensureBusyboxImage, newCniConfigDir, podmanWithBuiltPlugins } from '../helpers/podman';

const reason = cannotRunDocker();
if (reason) t.plan(0, reason);
else { t.setTimeout(600_000); main(); }


function main(): void {
  t.test('Docker containers by name in vxnetd\'s DNS, from the host and from another container', async (t) => {
    await ensureDockerImage();
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-dnsdk-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const addr = await dnsTestAddress(t, 250, 5);
    const server = { ip: parseIp(addr)!, port: 53 };
    const a = async (name: string): Promise<{ rcode: string; addresses: string[] }> => {
      const r = await query(server, name, 'A', { timeoutMs: 1000 });
      return { rcode: r.rcode, addresses: r.answers.map((x) => String((x as { data?: unknown }).data)).sort() };
    };

    const vx = await startVxnetd(t, { extraArgs: ['--dns-listen', `${addr}:53`, '--dns-state', join(dir, 'dns.json'), '--http-listen', '', '--dns-upstream', '127.0.0.1:9'] });
    const net = await createDockerNet(t, vx);

    const web = `vxt-web${randomBytes(3).toString('hex')}`;
    const t0 = performance.now();
    await runContainer(t, { network: net.name, name: web, args: ['--dns', addr, '--label', 'vxnet.service=shop', '--expose', '8080'] });
    const ran = performance.now();
    const ip = await containerIp(web, net.name);
    await pollUntil(async () => (await a(`${web}.vxnet`)).addresses[0] === ip, { timeoutMs: 10_000, intervalMs: 5, what: `${web}.vxnet to resolve` });
    t.comment(`docker run took ${(ran - t0).toFixed(0)} ms; ${web}.vxnet resolved ${(performance.now() - ran).toFixed(1)} ms after it returned (the inspect for its IP included)`);
    t.pass(`${web}.vxnet resolves to ${ip} from the host`);
    t.same((await a(`${web}.${net.name}.vxnet`)).addresses, [ip], 'NAME.NETWORK.vxnet (the Docker network\'s name)');
    t.same((await a('shop.vxnet')).addresses, [ip], 'the service from the container\'s label vxnet.service');
    const srv = await query(server, '_shop._tcp.vxnet', 'SRV', { timeoutMs: 1000 });
    t.same(srv.answers.map((x) => (x as { data?: unknown }).data), [{ priority: 0, weight: 1, port: 8080, target: `${web}.vxnet` }], 'SRV from the exposed port');

    const client = await runContainer(t, { network: net.name, args: ['--dns', addr] });
    // Bounded: the Docker network's subnet is in the allow-list within vxnetd's 5 s refresh.
    const out = await pollUntil(async () => {
      const r = await docker(['exec', client, 'nslookup', `${web}.vxnet`]);
      return r.stdout.includes(ip) && r.stdout;
    }, { timeoutMs: 20_000, intervalMs: 250, what: `${client} resolving ${web}.vxnet` });
    t.match(out, ip, `${client} resolves ${web}.vxnet through Docker's resolver and vxnetd`);

    await mustDocker(['rm', '-f', web]);
    await pollUntil(async () => (await a(`${web}.vxnet`)).rcode === 'NXDOMAIN', { timeoutMs: 10_000, intervalMs: 10, what: `${web}.vxnet gone after docker rm` });
    t.pass(`${web}.vxnet is NXDOMAIN after docker rm`);
  });

  t.test('one network, two runtimes: a podman container and a Docker container resolve each other by name', async (t) => {
    await ensureDockerImage();
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-dnsdk-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const addr = await dnsTestAddress(t, 250, 5);
    const stateFile = join(dir, 'dns.json');
    const vx = await startVxnetd(t, { extraArgs: ['--dns-listen', `${addr}:53`, '--dns-state', stateFile, '--http-listen', '', '--dns-upstream', '127.0.0.1:9'] });
    const hex = randomBytes(4).toString('hex');
    const name = `vxt-${hex}`;
    const subnet = `10.232.${freeSubnetOctet()}.0/24`;
    const bridge = `vxtb${hex}`;
    const natTable = `vxtn${hex}`;
    const cniDir = newCniConfigDir(t);
    fs.writeFileSync(join(cniDir, `${name}.conflist`), JSON.stringify({
      cniVersion: '1.0.0', name,
      plugins: [{ type: 'vxnet', bridge, natTable, ipMasq: true, dnsState: stateFile, ipam: { type: 'vxnet-ipam', subnet, dataDir: vx.dataDir } }],
    }));
    const pm = podmanWithBuiltPlugins(cniDir, join(dir, 'containers.conf'));
    const image = await ensureBusyboxImage();
    await createDockerNetNamed(t, vx, { name, subnet, bridge, natTable });
    const d = `vxt-d${hex}`;
    await runContainer(t, { network: name, name: d, args: ['--dns', addr] });
    const p = `vxt-p${hex}`;
    t.teardown(async () => { await pm(['rm', '-f', '--ignore', '-t', '0', p]); });
    const run = await pm(['run', '-d', '--pull', 'never', '--name', p, '--network', name, image, 'sleep', '3600']);
    t.equal(run.code, 0, `podman run on the CNI network ${name}: ${run.stderr.trim()}`);
    const pip = (JSON.parse((await pm(['inspect', '--format', '{{json .NetworkSettings.Networks}}', p])).stdout || '{}') as Record<string, { IPAddress?: string }>)[name]?.IPAddress ?? '';
    const dip = await containerIp(d, name);

    // Bounded: without the hand-off socket the podman container enters the catalog on the 2 s rescan; the subnet joins the allow-list within 5 s.
    const fromDocker = await pollUntil(async () => { const r = await docker(['exec', d, 'nslookup', `${p}.vxnet`]); return r.stdout.includes(pip) && r.stdout; },
      { timeoutMs: 20_000, intervalMs: 250, what: `the Docker container resolving ${p}.vxnet` });
    t.match(fromDocker, pip, `the Docker container resolves the podman container ${p}.vxnet to ${pip}`);
    const fromPodman = await pollUntil(async () => { const r = await pm(['exec', p, 'nslookup', `${d}.vxnet`]); return r.stdout.includes(dip) && r.stdout; },
      { timeoutMs: 20_000, intervalMs: 250, what: `the podman container resolving ${d}.vxnet` });
    t.match(fromPodman, dip, `the podman container resolves the Docker container ${d}.vxnet to ${dip} (its resolv.conf from the CNI result)`);
  });
}
