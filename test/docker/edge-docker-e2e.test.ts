// The edge in front of both runtimes, nothing faked: one vxnet network used by Docker (the
// built vxnetd as its remote network and IPAM driver) and by podman (the vxnet CNI plugin on
// the same bridge and IPAM data), a busybox httpd in a container of each, HAPROXY_* labels
// (Docker's from `docker run --label`, read through Docker's API; podman's, which reach no
// runtime API without podman's socket, from `vxnetctl endpoint label`), vxnetd's catalog
// stream (/v1/endpoints?watch=1) followed by the built vxnet-lb, Debian's HAProxy in front:
// each vhost reaches its container; `docker rm` and `podman rm` take them out. Root only;
// vxt-prefixed everything.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, pollUntil } from '../helpers/sh';
import { cannotRunDocker, containerIp, createDockerNetNamed, ensureDockerImage, freeSubnetOctet, mustDocker, runContainer, startVxnetd } from '../helpers/docker';
import { ensureBusyboxImage, newCniConfigDir, podmanWithBuiltPlugins } from '../helpers/podman';
import { freePort, get, startLb } from '../edge/helpers/edge';

const reason = cannotRunDocker() ?? (spawnSync('haproxy', ['-v']).status !== 0 ? 'haproxy is not installed' : undefined);
if (reason) t.plan(0, reason);
else { t.setTimeout(600_000); main(); }

const httpd = (name: string): string[] => ['/bin/busybox', 'sh', '-c', `mkdir -p /www && echo ${name} > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www`];

function main(): void {
  t.test('a podman container and a Docker container on one vxnet network, served by vxnet-lb', async (t) => {
    await ensureDockerImage();
    const dir = fs.mkdtempSync(join(tmpdir(), 'vxt-edgedk-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const api = await freePort();
    const dnsPort = await freePort();
    const vx = await startVxnetd(t, { extraArgs: ['--http-listen', `127.0.0.1:${api}`, '--dns-listen', `127.0.0.1:${dnsPort}`, '--dns-state', join(dir, 'dns.json'), '--dns-upstream', '127.0.0.1:9'] });
    const hex = randomBytes(4).toString('hex');
    const name = `vxt-${hex}`;
    const subnet = `10.232.${freeSubnetOctet()}.0/24`;
    const bridge = `vxtb${hex}`;
    const natTable = `vxtn${hex}`;
    const cniDir = newCniConfigDir(t);
    fs.writeFileSync(join(cniDir, `${name}.conflist`), JSON.stringify({
      cniVersion: '1.0.0', name,
      plugins: [{ type: 'vxnet', bridge, natTable, ipMasq: true, ipam: { type: 'vxnet-ipam', subnet, dataDir: vx.dataDir } }],
    }));
    const pm = podmanWithBuiltPlugins(cniDir, join(dir, 'containers.conf'));
    const image = await ensureBusyboxImage();
    await createDockerNetNamed(t, vx, { name, subnet, bridge, natTable });

    const d = `vxt-d${hex}`;
    await runContainer(t, { network: name, name: d, args: ['--label', 'HAPROXY_GROUP=external', '--label', 'HAPROXY_0_VHOST=docker.example', '--label', 'vxnet.ports=8080'], cmd: httpd('docker-c') });
    const p = `vxt-p${hex}`;
    t.teardown(async () => { await pm(['rm', '-f', '--ignore', '-t', '0', p]); });
    const label = await exec(join(__dirname, '..', '..', 'dist', 'bin', 'vxnetctl'), ['--data-dir', vx.dataDir, 'endpoint', 'label', p,
      'HAPROXY_GROUP=external', 'HAPROXY_0_VHOST=podman.example', 'vxnet.ports=8080']);
    t.equal(label.code, 0, `vxnetctl endpoint label ${p}: ${label.stderr.trim()}`);
    const run = await pm(['run', '-d', '--pull', 'never', '--name', p, '--network', name, image, ...httpd('podman-c')]);
    t.equal(run.code, 0, `podman run on the CNI network ${name}: ${run.stderr.trim()}`);
    const dip = await containerIp(d, name);

    const http = await freePort();
    const lb = await startLb(t, { api: `http://127.0.0.1:${api}`, httpPort: http });
    // Bounded: without the hand-off socket the podman container enters the catalog on the 2 s rescan.
    await pollUntil(async () => (await get(http, 'docker.example')).body === 'docker-c\n' || undefined, { timeoutMs: 20_000, intervalMs: 100, what: 'docker.example to reach the Docker container' })
      .catch((err: Error) => { throw new Error(`${err.message}\n${lb.log()}`); });
    t.pass(`docker.example is routed to the Docker container ${d} (${dip}:8080)`);
    await pollUntil(async () => (await get(http, 'podman.example')).body === 'podman-c\n' || undefined, { timeoutMs: 20_000, intervalMs: 100, what: 'podman.example to reach the podman container' })
      .catch((err: Error) => { throw new Error(`${err.message}\n${lb.log()}`); });
    t.pass(`podman.example is routed to the podman container ${p}`);
    t.match(fs.readFileSync(join(lb.dir, 'haproxy.cfg'), 'utf8'), `server s1 ${dip}:8080`, 'the Docker container\'s address in the config');

    await mustDocker(['rm', '-f', d]);
    await pollUntil(async () => (await get(http, 'docker.example')).status === 503 || undefined, { timeoutMs: 10_000, intervalMs: 50, what: 'docker.example gone after docker rm' });
    t.pass('docker rm: docker.example is no longer served');
    t.equal((await pm(['rm', '-f', '-t', '0', p])).code, 0, 'podman rm');
    await pollUntil(async () => (await get(http, 'podman.example')).status === 503 || undefined, { timeoutMs: 10_000, intervalMs: 50, what: 'podman.example gone after podman rm' });
    t.pass('podman rm: podman.example is no longer served');
    await lb.stop();
  });
}
