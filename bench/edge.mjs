// The edge balancer (issue 14): vxnet-lb and Debian's HAProxy in front of containers that the
// real vxnet CNI plugin attaches (handed off to the built vxnetd, whose catalog stream vxnet-lb
// follows), each container a netns `bned-<i>` with a Node HTTP server on :8080. wrk keeps a
// constant load on the edge (Host: web.example) while:
//   1. the backend scales 1 -> 5 -> 1, ten times (a container started: ADD, then its server;
//      stopped: its server killed, then DEL, the order a runtime uses): failed requests
//      (connection errors, non-2xx) -- target 0;
//   2. the config reloads 20 times (a second service added and removed, ten times): failed
//      requests -- target 0;
//   3. a new container's first request through the edge, timed from the start of its ADD
//      (the server starts when the ADD returns, as a runtime starts the process) -- target < 1 s;
//   4. requests/s through vxnet-lb's HAProxy vs the same HAProxy with a hand-written config
//      for the same two backends, same wrk parameters, alternated A/B in pairs in one run; the
//      median of the pairs' ratios -- target >= 0.95x; beside it each worker's CPU per request,
//      and a third side: the hand-written config plus vxnet-lb's retry-on (with its
//      disable-l7-retry for non-idempotent methods) and forwardfor.
// Run by scripts/bench.sh (BENCH_ONLY=edge). Env: BENCH_EDGE_SECONDS=10 (the rps runs),
// BENCH_EDGE_CYCLES=10, BENCH_EDGE_PAIRS=5 (A/B pairs), BENCH_EDGE_DEBUG=1 (HAProxy's show stat around the requests/s runs). Creates only bn-named things: netns bned-*, bridge bned0, nft table bned.
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { f1, f2, intEnv, run, say, table } from './lib.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const BIN = join(root, 'dist', 'bin');
const SECONDS = intEnv('BENCH_EDGE_SECONDS', 10);
const CYCLES = intEnv('BENCH_EDGE_CYCLES', 10);
const RPS_PAIRS = intEnv('BENCH_EDGE_PAIRS', 5);
const PORTS = { edge: 18480, hand: 18481, api: 18482, handRetry: 18483, copy: 18490, dnsPort: 5365 };
// What edge/config.ts writes as `retry-on` (the third requests/s side copies it).
const RETRY_ON = 'conn-failure empty-response';
// ... and the rule that keeps that retry from sending a POST twice (HAProxy's manual suggests it).
const NO_RETRY_UNLESS_IDEMPOTENT = 'http-request disable-l7-retry unless { method GET HEAD OPTIONS TRACE PUT DELETE }';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One command on an HAProxy CLI socket. */
function cli(socket, command) {
  return new Promise((resolve, reject) => {
    let out = '';
    const c = net.connect(socket, () => c.end(`${command}\n`));
    c.on('data', (d) => { out += d; });
    c.on('error', reject);
    c.on('close', () => resolve(out));
  });
}
async function reloads(socket) {
  for (let i = 0; i < 100; i++) {
    const m = /master\s+(\d+)/.exec(await cli(socket, 'show proc').catch(() => ''));
    if (m) return Number(m[1]);
    await sleep(20);
  }
  throw new Error('no answer from the master CLI');
}

async function workerPid(masterSocket) {
  for (let i = 0; i < 100; i++) {
    const m = /^(\d+)\s+worker\s+0\s/m.exec(await cli(masterSocket, 'show proc').catch(() => ''));
    if (m) return Number(m[1]);
    await sleep(20);
  }
  throw new Error(`no current worker on ${masterSocket}`);
}
/** utime + stime of a process, in clock ticks (10 ms). */
const cpuTicks = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };

/** The backend's error and retry counters from `show stat` (the serving worker's, since it started). */
async function backendCounters(admin, backend) {
  const [head, ...rows] = (await cli(admin, 'show stat')).trim().split('\n');
  const h = head.replace(/^# /, '').split(',');
  const f = rows.map((r) => r.split(',')).find((x) => x[0] === backend && x[1] === 'BACKEND') ?? [];
  const v = (c) => f[h.indexOf(c)] ?? '?';
  return `HAProxy ${backend}: 5xx ${v('hrsp_5xx')}, connect errors ${v('econ')}, response errors ${v('eresp')}, retries ${v('wretr')}, redispatches ${v('wredis')}, server aborts ${v('srv_abrt')}`;
}

/** Debug: the columns of `show stat` that tell where time goes, for servers that served. */
function statColumns(csv, label) {
  const [head, ...rows] = csv.trim().split('\n');
  const h = head.replace(/^# /, '').split(',');
  const cols = ['pxname', 'svname', 'stot', 'connect', 'reuse', 'qtime', 'ctime', 'rtime', 'ttime', 'wretr', 'wredis', 'eresp', 'econ', 'status'];
  return rows.map((r) => r.split(',')).filter((f) => Number(f[h.indexOf('stot')]) > 0)
    .map((f) => `# ${label} ${cols.map((c) => `${c}=${f[h.indexOf(c)]}`).join(' ')}`).join('\n');
}

/** GET through the edge; status (0: no answer). */
function get(port, host) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    let out = '';
    c.setTimeout(2000, () => c.destroy());
    c.on('data', (d) => { out += d; });
    c.on('close', () => resolve({ status: Number(/^HTTP\/1\.\d (\d+)/.exec(out)?.[1] ?? 0), body: out.split('\r\n\r\n')[1] ?? '' }));
    c.on('error', () => {});
  });
}

/** wrk for `seconds` against port with Host web.example: requests, rps, failures (socket errors + non-2xx/3xx). */
function wrk(port, seconds) {
  let child;
  const done = new Promise((resolve) => {
    // --timeout 10s: a slow answer is a slow answer (its latency is reported), not a failure;
    // wrk's default (2 s) counted CPU-starved answers on a loaded machine as timeouts.
    child = spawn('wrk', ['-t2', '-c32', `-d${seconds}s`, '--timeout', '10s', '-H', 'Host: web.example', `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('close', () => {
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const socketErrors = sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0;
      const kinds = sock ? `connect ${sock[1]}, read ${sock[2]}, write ${sock[3]}, timeout ${sock[4]}` : 'none';
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const lat = /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
      resolve({ requests, rps, failed: socketErrors + non2xx, socketErrors, kinds, non2xx, maxLatency: lat?.[3] ?? '?', out });
    });
  });
  // wrk prints its figures on SIGINT too (by pid: only this run's wrk).
  return { done, stop: () => { if (child.exitCode === null) child.kill('SIGINT'); return done; } };
}

async function configGeneration(tmp) {
  const { build } = await import('esbuild');
  const out = join(tmp, 'edge-gen.cjs');
  await build({ entryPoints: [join(root, 'bench', 'edge-gen.ts')], outfile: out, bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning' });
  const r = await run(process.execPath, [out, '1000', '3', '15'], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`edge-gen: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function main() {
  for (const tool of ['haproxy', 'wrk']) if ((await run(tool, ['-v'])).code === -1) { say(`# edge bench skipped: ${tool} is not installed (apt-get install haproxy wrk)`); return 0; }
  const tmp = mkdtempSync(join(tmpdir(), 'bn-edge-'));
  const conf = (labels) => JSON.stringify({
    cniVersion: '1.0.0', name: 'bned', type: 'vxnet', bridge: 'bned0', isGateway: true, ipMasq: false, natTable: 'bned',
    ipam: { type: 'vxnet-ipam', dataDir: join(tmp, 'data'), ranges: [[{ subnet: '10.126.0.0/16' }]] },
    args: { cni: { labels: Object.entries(labels).map(([key, value]) => ({ key, value })) } },
  });
  const web = { 'vxnet.service': 'web', 'vxnet.ports': '8080', HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'web.example' };
  const other = { 'vxnet.service': 'other', 'vxnet.ports': '8080', HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'other.example' };
  const children = new Set();
  const start = (file, args, opts = {}) => { const c = spawn(file, args, { stdio: ['ignore', 'ignore', 'inherit'], ...opts }); children.add(c); c.once('exit', () => children.delete(c)); return c; };
  const stop = async (c, signal = 'SIGTERM') => { if (c.exitCode === null && c.signalCode === null) { const e = new Promise((r) => c.once('exit', r)); c.kill(signal); await e; } };
  const netnsUsed = new Set();
  const containers = new Map();
  let seq = 0;
  const cni = (command, id, labels) => run(join(BIN, 'vxnet'), [], {
    input: conf(labels),
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/var/run/netns/${id}`, CNI_IFNAME: 'eth0', CNI_PATH: BIN, CNI_ARGS: `K8S_POD_NAME=${id}`, VXNET_CNI_SOCKET: join(tmp, 'cni.sock') },
  });
  /** A container: netns, ADD, then its server; resolves when the server listens. */
  const startContainer = async (labels) => {
    const id = `bned-${seq++}`;
    await run('ip', ['netns', 'add', id]);
    netnsUsed.add(id);
    const t0 = performance.now();
    const add = await cni('ADD', id, labels);
    if (add.code !== 0) throw new Error(`ADD ${id}: ${add.stdout}${add.stderr}`);
    const script = `require('http').createServer((q,s)=>s.end(${JSON.stringify(id)})).listen(8080,'0.0.0.0',()=>process.stdout.write('up'))`;
    const server = start('ip', ['netns', 'exec', id, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => { server.stdout.once('data', resolve); server.once('exit', () => reject(new Error(`server in ${id} exited`))); });
    const c = { id, labels, server, t0 };
    containers.set(id, c);
    return c;
  };
  const stopContainer = async (c) => {
    await stop(c.server, 'SIGKILL');
    const del = await cni('DEL', c.id, c.labels);
    if (del.code !== 0) throw new Error(`DEL ${c.id}: ${del.stdout}${del.stderr}`);
    containers.delete(c.id);
    await run('ip', ['netns', 'del', c.id]);
    netnsUsed.delete(c.id);
  };

  let failed;
  const loads = [];
  const rows = [];
  let summary = '';
  try {
    // 5. Config generation, pure (bench/edge-gen.ts bundled as vxnet's executables are), before
    // any load starts.
    const gen = await configGeneration(tmp);
    rows.push(
      [`config generation, ${gen.apps} apps x ${gen.servers} servers (median of ${gen.rounds})`, `${f1(gen.total)} ms`, '', '', gen.total < 200 ? 'PASS' : 'MISS',
        `target < 200 ms; labels -> model ${f1(gen.labels)}, slots ${f1(gen.place)}, text ${f1(gen.render)} (${Math.round(gen.bytes / 1024)} KiB)`],
      [`one server added with ${gen.apps} apps present -> Runtime API op`, `${f1(gen.change)} ms`, '', '', gen.change < 200 ? 'PASS' : 'MISS', 'catalog -> model -> slots on the running -> classify'],
    );
    const vxnetd = start(join(BIN, 'vxnetd'), ['--no-docker', '--no-vip', '--socket', join(tmp, 'bn.sock'), '--cni-socket', join(tmp, 'cni.sock'),
      '--data-dir', join(tmp, 'data'), '--overlay-dir', join(tmp, 'ov'), '--dns-listen', `127.0.0.65:${PORTS.dnsPort}`, '--dns-state', join(tmp, 'dns.json'),
      '--http-listen', `127.0.0.1:${PORTS.api}`, '--dns-upstream', '127.0.0.1:9', '--log-level', 'warn']);
    for (let i = 0; ; i++) {
      if (await fetch(`http://127.0.0.1:${PORTS.api}/v1/version`).then((r) => r.ok, () => false)) break;
      if (vxnetd.exitCode !== null || i > 200) throw new Error('vxnetd did not start');
      await sleep(50);
    }
    const base = await startContainer(web);
    const lbDir = join(tmp, 'lb');
    const lb = start(join(BIN, 'vxnet-lb'), ['--api', `http://127.0.0.1:${PORTS.api}`, '--dir', lbDir, '--http-port', String(PORTS.edge), '--http-bind', '127.0.0.1',
      '--drain-timeout', '2', '--log-level', 'warn']);
    for (let i = 0; (await get(PORTS.edge, 'web.example')).status !== 200; i++) {
      if (lb.exitCode !== null || i > 200) throw new Error('vxnet-lb did not serve web.example');
      await sleep(50);
    }
    const master = join(lbDir, 'master.sock');

    // 1. Scale 1 -> 5 -> 1 under load.
    const r0 = await reloads(master);
    const load1 = wrk(PORTS.edge, 3600);
    loads.push(load1);
    const firstMs = [];
    const scaling = (async () => {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const added = [];
        for (let k = 0; k < 4; k++) added.push(await startContainer(web));
        for (const c of added) await stopContainer(c);
      }
    })();
    await scaling;
    const scaleReloads = (await reloads(master)) - r0;
    const s1 = await load1.stop();
    const scaleCounters = await backendCounters(join(lbDir, 'admin.sock'), 'web_0');
    // 2. 20 reloads under load.
    const r1 = await reloads(master);
    const load2 = wrk(PORTS.edge, 3600);
    loads.push(load2);
    for (let i = 0; i < CYCLES; i++) {
      const c = await startContainer(other);
      for (let k = 0; (await get(PORTS.edge, 'other.example')).status !== 200; k++) { if (k > 500) throw new Error('other.example not served'); await sleep(10); }
      await stopContainer(c);
      for (let k = 0; (await get(PORTS.edge, 'other.example')).status === 200; k++) { if (k > 500) throw new Error('other.example still served'); await sleep(10); }
    }
    const reloadCount = (await reloads(master)) - r1;
    const s2 = await load2.stop();

    // 3. A new container's first request through the edge, no load: from the start of its ADD
    // (its server starts when the ADD returns) until a request through the edge gets its answer.
    const upMs = [];
    for (let i = 0; i < CYCLES; i++) {
      const c = await startContainer(web);
      upMs.push(performance.now() - c.t0);
      for (;;) {
        const r = await get(PORTS.edge, 'web.example');
        if (r.body === c.id) break;
        if (performance.now() - c.t0 > 10_000) throw new Error(`${c.id} not served within 10 s`);
      }
      firstMs.push(performance.now() - c.t0);
      await stopContainer(c);
    }

    // 4. rps: vxnet-lb's HAProxy vs a hand-written config, same two backends.
    const second = await startContainer(web);
    for (let k = 0; ; k++) {
      const seen = new Set();
      for (let j = 0; j < 4; j++) seen.add((await get(PORTS.edge, 'web.example')).body);
      if (seen.has(second.id)) break;
      if (k > 200) throw new Error('second backend not served');
    }
    const addrs = [];
    for (const c of [base, second]) {
      const r = await run('ip', ['-n', c.id, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      addrs.push(/inet (\S+)\//.exec(r.stdout)[1]);
    }
    const hand = join(tmp, 'hand.cfg');
    writeFileSync(hand, `global\n  stats socket ${join(tmp, 'hand.sock')} mode 600 level admin\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n`
      + `frontend f\n  bind 127.0.0.1:${PORTS.hand}\n  use_backend web if { hdr(host) -i web.example }\nbackend web\n  balance roundrobin\n`
      + addrs.map((a, i) => `  server w${i} ${a}:8080\n`).join(''));
    // Started as vxnet-lb starts its HAProxy (edge/haproxy.ts: a session of its own). With the
    // kernel's autogroup scheduling (sched_autogroup_enabled=1) a session is a scheduling group:
    // a reference in the bench's session shares a group with wrk and the backends, and measured
    // ~2x vxnet-lb's HAProxy on the same config text (both ~0.5x before this, 2026-12-05).
    const ref = start('haproxy', ['-W', '-S', join(tmp, 'hand-master.sock'), '-f', hand], { stdio: 'ignore', detached: true });
    for (let i = 0; (await get(PORTS.hand, 'web.example')).status !== 200; i++) { if (i > 200) throw new Error('hand-written HAProxy did not serve'); await sleep(50); }
    const handMaster = join(tmp, 'hand-master.sock');
    // A third side, beside the reference: the hand-written config plus the two things of
    // vxnet-lb's that cost per request (measured, bench/README.md): the retries its
    // zero-failure runs need (edge/config.ts: a request whose server closed without an answer
    // is sent again, so HAProxy copies each request into a retry buffer) and X-Forwarded-For.
    // It tells what the rest of vxnet-lb's config costs; the target is against the plain one.
    const handRetry = join(tmp, 'hand-retry.cfg');
    writeFileSync(handRetry, readFileSync(hand, 'utf8').replace(join(tmp, 'hand.sock'), join(tmp, 'hand-retry.sock')).replace(`127.0.0.1:${PORTS.hand}`, `127.0.0.1:${PORTS.handRetry}`)
      .replace('  timeout server 60s\n', `  timeout server 60s\n  retries 3\n  option redispatch 1\n  retry-on ${RETRY_ON}\n  option forwardfor\n`)
      .replace('backend web\n  balance roundrobin\n', `backend web\n  balance roundrobin\n  ${NO_RETRY_UNLESS_IDEMPOTENT}\n`));
    const refRetry = start('haproxy', ['-W', '-S', join(tmp, 'hand-retry-master.sock'), '-f', handRetry], { stdio: 'ignore', detached: true });
    for (let i = 0; (await get(PORTS.handRetry, 'web.example')).status !== 200; i++) { if (i > 200) throw new Error('hand-written HAProxy (retries) did not serve'); await sleep(50); }
    const sides = {
      vx: { port: PORTS.edge, admin: join(lbDir, 'admin.sock'), master },
      hand: { port: PORTS.hand, admin: join(tmp, 'hand.sock'), master: handMaster },
      'hand-retry': { port: PORTS.handRetry, admin: join(tmp, 'hand-retry.sock'), master: join(tmp, 'hand-retry-master.sock') },
    };
    if (process.env.BENCH_EDGE_COPY) {
      // Debug: vxnet-lb's config text in fresh HAProxys (own ports and sockets), whole and with
      // one kind of line left out each (BENCH_EDGE_COPY=all,retry-on,forwardfor,...: a regexp
      // source per variant, "all" for none left out): tells the config's cost from the running
      // worker's state, and which line costs.
      const base = readFileSync(join(lbDir, 'haproxy.cfg'), 'utf8');
      let k = 0;
      for (const variant of process.env.BENCH_EDGE_COPY.split(',')) {
        const port = PORTS.copy + k++;
        const sock = join(tmp, `copy${k}.sock`);
        const text = base.replace(`127.0.0.1:${PORTS.edge}`, `127.0.0.1:${port}`).replace(join(lbDir, 'admin.sock'), sock)
          .split('\n').filter((l) => variant.startsWith('all') || variant === 'hostacl' || !new RegExp(variant).test(l))
          // hostacl: the vhost ACL on hdr(host) as a hand-written config does, no variable.
          .map((l) => (variant !== 'hostacl' ? l : l.includes('set-var') ? '' : l.replace(/var\(txn\.vxlb_host\) -m str/, 'hdr(host) -i'))).join('\n');
        writeFileSync(join(tmp, `copy${k}.cfg`), text);
        // "all-session": in the bench's session (not a session of its own as vxnet-lb's and the reference).
        const opts = variant === 'all-session' ? { stdio: 'ignore' } : { stdio: 'ignore', detached: true };
        const c = start('haproxy', ['-W', '-S', `${sock}.master`, '-f', join(tmp, `copy${k}.cfg`)], opts);
        c.stderr?.on('data', () => {});
        for (let i = 0; (await get(port, 'web.example')).status !== 200; i++) { if (i > 200) throw new Error(`copy ${variant} did not serve`); await sleep(50); }
        sides[`copy-${variant}`] = { port, admin: sock, master: `${sock}.master` };
      }
    }
    // A warm-up each (server connections opened, caches warm), then A/B pairs in one run: the
    // machine's load drifts, so each pair's ratio is taken and the median of the pairs reported.
    // Beside each run, the HAProxy worker's CPU time per 1,000 requests (utime + stime from
    // /proc): a ratio of requests/s with equal CPU per request means the machine, not the config.
    for (const side of Object.values(sides)) await wrk(side.port, 2).done;
    const runs = [];
    for (let i = 0; i < RPS_PAIRS; i++) {
      const names = Object.keys(sides);
      for (const name of i % 2 ? names.reverse() : names) {
        const side = sides[name];
        const worker = await workerPid(side.master);
        const c0 = cpuTicks(worker);
        const r = await wrk(side.port, SECONDS).done;
        const cpuMsPerK = ((cpuTicks(worker) - c0) * 10 * 1000) / r.requests;
        runs.push({ name, pair: i, ...r, cpuMsPerK });
        if (process.env.BENCH_EDGE_DEBUG) say(`# ${name}: ${f1(r.rps)} req/s, ${r.out.split('\n').filter((l) => /Latency|Req\/Sec/.test(l)).map((l) => l.trim().replace(/\s+/g, ' ')).join('; ')}`);
      }
    }
    if (process.env.BENCH_EDGE_DEBUG) {
      for (const [name, side] of Object.entries(sides)) say(statColumns(await cli(side.admin, 'show stat'), name));
    }
    await stop(ref);
    await stop(refRetry);
    const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
    const pairRatios = [];
    const retryRatios = [];
    for (let i = 0; i < RPS_PAIRS; i++) {
      const [a, b, c] = ['vx', 'hand', 'hand-retry'].map((n) => runs.find((r) => r.pair === i && r.name === n));
      pairRatios.push(a.rps / b.rps);
      retryRatios.push(a.rps / c.rps);
    }
    const of = (name, k) => median(runs.filter((r) => r.name === name).map((r) => r[k]));
    const vx = { rps: of('vx', 'rps'), failed: runs.filter((r) => r.name === 'vx').reduce((a, r) => a + r.failed, 0), cpu: of('vx', 'cpuMsPerK') };
    const rf = { rps: of('hand', 'rps'), failed: runs.filter((r) => r.name === 'hand').reduce((a, r) => a + r.failed, 0), cpu: of('hand', 'cpuMsPerK') };
    const rr = { rps: of('hand-retry', 'rps'), cpu: of('hand-retry', 'cpuMsPerK') };
    say(`# requests/s in run order: ${runs.map((r) => `${r.name === 'vx' ? 'vxnet-lb' : r.name} ${f1(r.rps)} (worker CPU ${f1(r.cpuMsPerK)} ms/1000 req)`).join(', ')}`);
    say(`# pair ratios: ${pairRatios.map(f2).join(', ')}; against hand-written + retry-on + forwardfor: ${retryRatios.map(f2).join(', ')}`);
    const ratio = median(pairRatios);
    const p = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
    rows.push(
      [`failed requests, scale 1->5->1 x${CYCLES} (${scaleReloads} reloads)`, `${s1.failed} of ${s1.requests}`, '', '', s1.failed === 0 ? 'PASS' : 'MISS', `target 0; max latency ${s1.maxLatency}`],
      [`failed requests, ${reloadCount} reloads`, `${s2.failed} of ${s2.requests}`, '', '', s2.failed === 0 ? 'PASS' : 'MISS', `target 0; max latency ${s2.maxLatency}`],
      [`new container -> first request via the edge (n=${firstMs.length})`, `p50 ${f1(p(firstMs, 0.5))} ms, p99 ${f1(p(firstMs, 0.99))} ms`, '', '', p(firstMs, 0.99) < 1000 ? 'PASS' : 'MISS', `target < 1000 ms (Traefik: throttled 2 s); of it ADD + server up: p50 ${f1(p(upMs, 0.5))} ms`],
      [`requests/s, ${RPS_PAIRS} A/B pairs x ${SECONDS} s, 2 backends (median)`, f1(vx.rps), f1(rf.rps), f2(ratio), ratio >= 0.95 && vx.failed === 0 ? 'PASS' : 'MISS', `target >= 0.95 (same HAProxy, hand-written config; median of the pairs' ratios); failed ${vx.failed} / ${rf.failed}`],
      ['HAProxy worker CPU per 1,000 requests (median)', `${f1(vx.cpu)} ms`, `${f1(rf.cpu)} ms`, f2(vx.cpu / rf.cpu), '', 'utime + stime of the serving worker; equal: the config costs no more per request'],
      ['requests/s vs hand-written + retry-on + forwardfor (median)', f1(vx.rps), f1(rr.rps), f2(median(retryRatios)), '', `hand-written with \`retry-on ${RETRY_ON}\` (what the zero-failure runs need) and \`option forwardfor\`; worker CPU per 1,000 requests ${f1(rr.cpu)} ms (ratio ${f2(vx.cpu / rr.cpu)})`],
    );
    summary = `SUMMARY vxnet-edge scale_failed=${s1.failed}/${s1.requests} reload_failed=${s2.failed}/${s2.requests} reloads=${reloadCount} first_request_p99_ms=${f1(p(firstMs, 0.99))} rps=${f1(vx.rps)} ref_rps=${f1(rf.rps)} ratio=${f2(ratio)} cpu_ratio=${f2(vx.cpu / rf.cpu)} ratio_vs_retry=${f2(median(retryRatios))} load=${loadavg()[0].toFixed(2)}`;
    say(`# during scaling: ${scaleCounters}`);
    if (s1.failed || s2.failed) say(`# wrk during scaling: socket errors ${s1.kinds}; non-2xx ${s1.non2xx}; during reloads: socket errors ${s2.kinds}; non-2xx ${s2.non2xx}`);
    await stop(lb);
    await stop(vxnetd);
  } catch (err) {
    failed = err;
  } finally {
    for (const w of loads) await w.stop();
    for (const c of [...children]) await stop(c, 'SIGKILL');
    // vxnet-lb's HAProxy (by its pid file; SIGTERM made vxnet-lb stop it already).
    const pid = Number((await run('cat', [join(tmp, 'lb', 'haproxy.pid')])).stdout.trim());
    if (pid > 1) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
    for (const id of netnsUsed) await run('ip', ['netns', 'del', id]);
    await run('ip', ['link', 'del', 'bned0']);
    await run('nft', ['delete', 'table', 'ip', 'bned']);
    rmSync(tmp, { recursive: true, force: true });
  }
  if (failed) { say(`edge: FAILED: ${failed.message}`); return 1; }
  say(table(['', 'vxnet-lb', 'hand-written', 'ratio', '', ''], rows));
  say(summary);
  return 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });
