// VIP propagation across hosts (issue 13): how long after a backend's CNI ADD returns on host B
// the first connection sent to its VIP from host A reaches it. Minuteman (DC/OS) took ~11 s for
// a change to reach every agent (research/dcos-internals.md section 2); the target is < 1 s.
//
// Setup, all bn-named: an underlay netns bnvp-u (bridge bnvpu, 10.129.0.1/24, etcd on it,
// started by pid, data in the run's temp dir); hosts bnvp-a / bnvp-b on it (veths, .11 / .12,
// default route via .1), each running the built vxnetd with --store, --overlay-network bnvp
// (defined with `vxnetctl network create`, VNI 4871, 10.130.0.0/16 in /24 blocks) and the VIP
// service on its own table bnvp and link bnvpl (range 198.19.200.0/24). Inside host A: a
// client container bnvp-ca (a Node loop of HTTP GETs, a new connection each) and an "anchor"
// backend bnvp-an (VIP_0=/prop:80, weight 1), which keeps the VIP in place between samples.
// Per sample i: a fresh netns bnvp-c<i> whose HTTP server (answering p<i> on 8080) listens
// before its ADD; the ADD on host B (through B's vxnetd) with VIP_0=/prop:80, vxnet.ports=8080,
// vxnet.weight=100 (so a connection picks it with p = 100/101 once A's table has it); from the
// moment the ADD returns, A's client connects to the VIP until p<i> answers. Then DEL, and the
// next sample. The path measured: B's vxnetd publishes the endpoint in etcd, A's watch brings
// it to A's catalog, A's VIP model and nft table, and the connection crosses the overlay.
// Env: BENCH_VIP_PROP_N=20 BENCH_ETCD=/usr/bin/etcd. Run by scripts/bench.sh (BENCH_ONLY=vip-propagation).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { f1, intEnv, interrupt, run, say, summarize, table } from './lib.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const BIN = join(root, 'dist', 'bin');
const ETCD = process.env.BENCH_ETCD || '/usr/bin/etcd';
const N = intEnv('BENCH_VIP_PROP_N', 20);
const TARGET_MS = 1000;
const MINUTEMAN_MS = 11_000;
const NET = 'bnvp';
const HTTP = 8482;
const U = { ns: 'bnvp-u', br: 'bnvpu', ip: '10.129.0.1' };
const HOSTS = { a: { ns: 'bnvp-a', link: 'bnvpa', ip: '10.129.0.11' }, b: { ns: 'bnvp-b', link: 'bnvpb', ip: '10.129.0.12' } };
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { interrupt.signal = sig; });

async function must(file, args, opts) {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** A process started by this run, stopped by its pid; its stderr kept for a failure's message. */
function daemon(file, args, { onLine } = {}) {
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: ENV });
  let err = '';
  child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
  let rest = '';
  child.stdout.on('data', (d) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop();
    for (const l of lines) onLine?.(l);
  });
  child.stdin.on('error', () => {});
  return {
    child,
    log: () => err,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; }
    },
  };
}

// A backend: answers its name to every HTTP request on 8080; prints "ready" once listening.
const SERVER = `require('node:http').createServer((q, a) => a.end(process.argv[1])).listen({ port: 8080, host: '::', ipv6Only: false }, () => console.log('ready'));`;
// The client: per "want VIP NAME" line, new connections to VIP:80 until NAME answers; prints "got NAME" (or "timeout NAME" after 15 s).
const CLIENT = `
const http = require('node:http');
const once = (ip) => new Promise((resolve) => {
  const req = http.get({ host: ip, port: 80, path: '/', agent: false, timeout: 1000 }, (res) => { let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => resolve(b)); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => resolve(''));
});
require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const [, ip, want] = line.split(' ');
  const t0 = Date.now();
  for (;;) {
    if ((await once(ip)) === want) { console.log('got ' + want); return; }
    if (Date.now() - t0 > 15000) { console.log('timeout ' + want); return; }
  }
});
`;

const ipn = (ns, ...args) => must('ip', ['-n', ns, ...args]);

async function main() {
  if (!existsSync(ETCD)) { say(`# VIP propagation skipped: ${ETCD} is missing (apt-get install etcd-server)`); return 0; }
  for (const ns of [U.ns, HOSTS.a.ns, HOSTS.b.ns]) {
    if ((await run('ip', ['netns', 'pids', ns])).code === 0) throw new Error(`netns ${ns} exists: a leftover of an earlier run (ip netns del ${ns})`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'bn-vipprop-'));
  const procs = [];
  const netns = new Set();
  const samples = [];
  let failed;
  let vip;
  const addNs = async (ns) => { await must('ip', ['netns', 'add', ns]); netns.add(ns); await ipn(ns, 'link', 'set', 'lo', 'up'); };
  try {
    await addNs(U.ns);
    await ipn(U.ns, 'link', 'add', U.br, 'type', 'bridge');
    await ipn(U.ns, 'addr', 'add', `${U.ip}/24`, 'dev', U.br);
    await ipn(U.ns, 'link', 'set', U.br, 'up');
    for (const h of Object.values(HOSTS)) {
      await addNs(h.ns);
      await ipn(U.ns, 'link', 'add', h.link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
      await ipn(U.ns, 'link', 'set', h.link, 'master', U.br, 'up');
      await ipn(h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
      await ipn(h.ns, 'link', 'set', 'eth0', 'up');
      await ipn(h.ns, 'route', 'add', 'default', 'via', U.ip);
      await must('ip', ['netns', 'exec', h.ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    }
    const etcdPort = 23790 + Math.floor(Math.random() * 200);
    const peer = `http://127.0.0.1:${etcdPort + 1000}`;
    const etcd = daemon('ip', ['netns', 'exec', U.ns, ETCD, '--name', 'bnvp', '--data-dir', join(tmp, 'etcd'),
      '--listen-client-urls', `http://${U.ip}:${etcdPort}`, '--advertise-client-urls', `http://${U.ip}:${etcdPort}`,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `bnvp=${peer}`, '--initial-cluster-state', 'new',
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--log-level', 'warn', '--logger', 'zap', '--log-outputs', 'stderr']);
    procs.push(etcd);
    const store = `etcd://${U.ip}:${etcdPort}`;
    for (let i = 0; ; i++) {
      if (etcd.child.exitCode !== null) throw new Error(`etcd exited: ${etcd.log()}`);
      const r = await run('ip', ['netns', 'exec', U.ns, 'curl', '-s', '-m', '1', `http://${U.ip}:${etcdPort}/health`]);
      if (r.code === 0 && r.stdout.includes('"true"')) break;
      if (i > 200) throw new Error('etcd not healthy after 20 s');
      await new Promise((res) => setTimeout(res, 100));
    }
    await must('ip', ['netns', 'exec', U.ns, join(BIN, 'vxnetctl'), 'network', 'create', NET, '--vni', '4871', '--subnet', '10.130.0.0/16', '--block-prefix', '24', '--store', store], { env: ENV });

    const vx = {};
    for (const [k, h] of Object.entries(HOSTS)) {
      const dir = join(tmp, k);
      // `ip netns exec` execs vxnetd in place: the pid held is vxnetd's.
      const d = daemon('ip', ['netns', 'exec', h.ns, join(BIN, 'vxnetd'), '--no-docker', '--no-dns', '--socket', join(dir, 'plugin.sock'), '--cni-socket', join(dir, 'cni.sock'),
        '--data-dir', join(dir, 'data'), '--overlay-dir', join(dir, 'ov'), '--store', store, '--host-id', h.ns, '--underlay', h.ip, '--overlay-network', NET,
        '--http-listen', `127.0.0.1:${HTTP}`, '--vip-table', 'bnvp', '--vip-link', 'bnvpl', '--vip-range', '198.19.200.0/24', '--vip-range6', '', '--log-level', 'warn']);
      procs.push(d);
      vx[k] = { ...d, dir, h };
    }
    const vips = async (k) => {
      const r = await run('ip', ['netns', 'exec', HOSTS[k].ns, 'curl', '-s', '-m', '1', `http://127.0.0.1:${HTTP}/v1/vips`]);
      try { return r.code === 0 ? JSON.parse(r.stdout) : undefined; } catch { return undefined; }
    };
    for (const k of ['a', 'b']) {
      for (let i = 0; !(await vips(k)); i++) {
        if (vx[k].child.exitCode !== null || i > 300) throw new Error(`vxnetd on ${HOSTS[k].ns} does not answer: ${vx[k].log()}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    const cni = (k, command, ns, podName, labels) => run('ip', ['netns', 'exec', HOSTS[k].ns, join(BIN, 'vxnet')], {
      input: JSON.stringify({
        cniVersion: '1.1.0', name: NET, type: 'vxnet', mode: 'overlay', natTable: 'bnvpnat', overlayStateDir: join(vx[k].dir, 'ov'),
        ipam: { dataDir: join(vx[k].dir, 'data') }, ...(labels ? { args: { cni: { labels: Object.entries(labels).map(([key, value]) => ({ key, value })) } } } : {}),
      }),
      env: { ...ENV, CNI_COMMAND: command, CNI_CONTAINERID: ns, CNI_NETNS: `/var/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: BIN,
        CNI_ARGS: `K8S_POD_NAME=${podName}`, VXNET_CNI_SOCKET: join(vx[k].dir, 'cni.sock') },
    });
    /** An ADD, retried while the host has no block yet (the first ADD on a host waits for its block). */
    const add = async (k, ns, podName, labels) => {
      for (let i = 0; ; i++) {
        const r = await cni(k, 'ADD', ns, podName, labels);
        if (r.code === 0) return r;
        if (i > 150) throw new Error(`ADD ${ns} on ${HOSTS[k].ns}: ${r.stdout}${r.stderr}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    };
    const server = async (ns, name) => {
      let ready;
      const isReady = new Promise((r) => { ready = r; });
      const s = daemon('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, name], { onLine: (l) => { if (l === 'ready') ready(); } });
      procs.push(s);
      await Promise.race([isReady, new Promise((_, rej) => setTimeout(() => rej(new Error(`server ${name} not ready: ${s.log()}`)), 10_000))]);
      return s;
    };

    // The anchor (host A, weight 1) keeps the VIP; B's blocks come with its first ADD (below).
    await addNs('bnvp-an');
    await server('bnvp-an', 'anchor');
    await add('a', 'bnvp-an', 'anchor', { VIP_0: '/prop:80', 'vxnet.ports': '8080', 'vxnet.weight': '1' });
    await addNs('bnvp-ca');
    await add('a', 'bnvp-ca', 'client', undefined);
    for (let i = 0; !(vip = (await vips('a'))?.[0]?.addresses?.[0]); i++) {
      if (i > 200) throw new Error('the VIP /prop never appeared on host A');
      await new Promise((res) => setTimeout(res, 50));
    }
    let answer;
    const client = daemon('ip', ['netns', 'exec', 'bnvp-ca', process.execPath, '-e', CLIENT], { onLine: (l) => answer?.(l) });
    procs.push(client);
    const reach = (want) => new Promise((resolve) => { answer = (l) => { answer = undefined; resolve(l); }; client.child.stdin.write(`want ${vip} ${want}\n`); });
    if ((await reach('anchor')) !== 'got anchor') throw new Error(`host A's client does not reach the anchor through ${vip}: ${client.log()}`);
    // B's block: one throw-away ADD/DEL (the first ADD on a host waits for its block; not measured).
    await addNs('bnvp-warm');
    await add('b', 'bnvp-warm', 'warm', undefined);
    await cni('b', 'DEL', 'bnvp-warm', 'warm', undefined);

    for (let i = 0; i < N && !interrupt.signal; i++) {
      const ns = `bnvp-c${i}`;
      await addNs(ns);
      const s = await server(ns, `p${i}`);
      const r = await cni('b', 'ADD', ns, `p${i}`, { VIP_0: '/prop:80', 'vxnet.ports': '8080', 'vxnet.weight': '100' });
      const added = performance.now();
      if (r.code !== 0) throw new Error(`ADD ${ns} on host B: ${r.stdout}${r.stderr}`);
      const got = await reach(`p${i}`);
      const ms = performance.now() - added;
      if (got !== `got p${i}`) throw new Error(`host A never reached p${i} through ${vip} (${got})`);
      samples.push(ms);
      const d = await cni('b', 'DEL', ns, `p${i}`, undefined);
      if (d.code !== 0) throw new Error(`DEL ${ns} on host B: ${d.stdout}${d.stderr}`);
      await s.stop();
      await run('ip', ['netns', 'del', ns]);
      netns.delete(ns);
    }
  } catch (err) {
    failed = err;
  } finally {
    for (const p of procs.reverse()) await p.stop();
    // Containers first (their host ends live in the host namespaces), then hosts, then the underlay.
    for (const ns of [...netns].reverse()) await run('ip', ['netns', 'del', ns]);
    rmSync(tmp, { recursive: true, force: true });
  }
  if (interrupt.signal) return 130;
  if (failed) { say(`vip propagation: FAILED: ${failed.message}`); return 1; }
  const s = summarize(samples);
  say(table(['backend ADD returned on host B -> first connection from host A reaches it', 'n', 'p50 ms', 'p99 ms', 'max ms', `target p99 < ${TARGET_MS} ms`], [
    ['vxnet (etcd watch -> VIP model -> nft, over the overlay)', s.n, f1(s.p50), f1(s.p99), f1(s.max), s.p99 < TARGET_MS ? 'PASS' : 'MISS'],
    ['Minuteman (DC/OS, reported)', '-', `~${MINUTEMAN_MS}`, '-', '-', '-'],
  ]));
  say(`# ratio Minuteman / vxnet p50: ${f1(MINUTEMAN_MS / s.p50)}x (VIP ${vip}; load ${(await run('cat', ['/proc/loadavg'])).stdout.split(' ').slice(0, 3).join(' ')})`);
  say(`SUMMARY vxnet-vip-propagation p50_ms=${f1(s.p50)} p99_ms=${f1(s.p99)} n=${s.n} (Minuteman: ~${MINUTEMAN_MS})`);
  return 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });
