// DNS throughput (issue 12): vxnet's authoritative server against dnsmasq, the same 1,000 names,
// dnsperf on loopback, in one run. Run by scripts/bench.sh (`npm run bench`, or
// BENCH_ONLY=dns npm run bench); needs root only for nothing, but bench.sh does.
//
// - vxnet: bench/dns-server.ts (bundled here with esbuild) serving host-1..host-N.bn.test
//   (endpoint name + domain) on 127.0.0.62:5362, in BENCH_DNS_WORKERS `cluster` workers
//   sharing one socket (default 2; Node 20 has no SO_REUSEPORT), and in one process for reference.
// - vxnet cached: the same server with an empty zone and dnsmasq as its upstream, so every
//   answer comes from the forwarder's cache after the first pass (dnsmasq gives its host
//   records a TTL with --local-ttl=300; its own default, 0, would forbid caching). The issue's
//   target: cached answers at the authoritative rate.
// - dnsmasq: the same names as host-record entries (the recipe of
//   /work/shared/bench/dns-dnsmasq-baseline.sh), --no-resolv --local=/bn.test/, 127.0.0.61:5361.
// - dnsperf -c 1 -T 1 -q 100 -l BENCH_DNS_SECONDS over the N names (A), each system in turn,
//   the order alternating every round (ABBA); figures are the median over BENCH_DNS_ROUNDS.
// Checks (a failed one exits 1): every answer NOERROR, an A lookup answers the address
// dnsmasq has for it. Target (reported PASS/MISS, not a failure): vxnet >= 0.5x dnsmasq qps
// with no lost queries.
// - One upstream mute: forwarders with two upstreams, a socket of this process on
//   127.0.0.63:5363 that reads and never answers, and the dnsmasq above (authoritative for
//   the names). Distinct names asked one after the other (no cache hit), each by a client that
//   resends every second (a stub resolver's `options timeout:1`), bounded at 5 s; latency to
//   the first answer. vxnet's forwarder (1 process) against dnsmasq as a forwarder with
//   --strict-order (sequential: the first upstream, then the next) and with its default (all
//   upstreams at first, then the fastest). Target: vxnet's p99 < 50 ms.
//
// Env: BENCH_DNS_SECONDS=10 BENCH_DNS_ROUNDS=2 BENCH_DNS_WORKERS=2 BENCH_DNS_NAMES=1000
//      BENCH_DNS_MUTE_N=300 (names per forwarder; dnsmasq --strict-order gets at most 60)
import { spawn, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { f1, f2, interrupt, intEnv, ratio, say, summarize, table } from './lib.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const SECONDS = intEnv('BENCH_DNS_SECONDS', 10);
const ROUNDS = intEnv('BENCH_DNS_ROUNDS', 2);
const WORKERS = intEnv('BENCH_DNS_WORKERS', 2);
const NAMES = intEnv('BENCH_DNS_NAMES', 1000);
const ZONE = 'bn.test';
const DNSMASQ = { addr: '127.0.0.61', port: 5361 };
const VXNET = { addr: '127.0.0.62', port: 5362 };
const MUTE = { addr: '127.0.0.63', port: 5363 };
const FWD_DNSMASQ = { addr: '127.0.0.67', port: 5367 };
const MUTE_N = intEnv('BENCH_DNS_MUTE_N', 300);
const MUTE_TARGET_MS = 50;

const children = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    interrupt.signal = sig;
    for (const c of children) c.kill('SIGTERM');
  });
}

const addressOf = (i) => `10.210.${Math.floor(i / 250)}.${(i % 250) + 1}`;

/** One A query over UDP; the first answer's address, or undefined after `ms`. */
function ask(addr, port, name, ms = 500) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
    const q = Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
    const timer = setTimeout(() => { s.close(); resolve(undefined); }, ms);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      // The last 4 bytes of a one-A answer are the address.
      resolve((m.readUInt16BE(6) > 0 && (m.readUInt16BE(2) & 0xf) === 0) ? [...m.subarray(m.length - 4)].join('.') : undefined);
    });
    s.send(q, port, addr);
  });
}

async function waitAnswering(addr, port, child) {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`server on ${addr}:${port} exited ${child.exitCode}`);
    if (await ask(addr, port, `host-1.${ZONE}`, 100)) return;
  }
  throw new Error(`nothing answers on ${addr}:${port}`);
}

function start(cmd, args, env = process.env) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return { child, stderr: () => stderr };
}

async function stop({ child }) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM'); // by pid: only what this run started
  await exited;
}

function dnsperf(addr, port, queryFile, seconds = SECONDS) {
  return new Promise((resolve, reject) => {
    const p = spawn('dnsperf', ['-s', addr, '-p', String(port), '-d', queryFile, '-l', String(seconds), '-c', '1', '-T', '1', '-q', '100'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(p);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => {
      children.delete(p);
      if (code !== 0) return reject(new Error(`dnsperf exited ${code}:\n${out}`));
      const num = (re) => Number(re.exec(out)?.[1]);
      resolve({
        qps: num(/Queries per second:\s+([\d.]+)/), sent: num(/Queries sent:\s+(\d+)/), completed: num(/Queries completed:\s+(\d+)/), lost: num(/Queries lost:\s+(\d+)/),
        avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000, noerror: num(/NOERROR \d+ \(([\d.]+)%\)/),
      });
    });
  });
}

const startDnsmasq = (tmp) => start('dnsmasq', ['--keep-in-foreground', `--conf-file=${join(tmp, 'dnsmasq.conf')}`, '--no-resolv', '--no-hosts', '--no-poll',
  '--bind-interfaces', `--listen-address=${DNSMASQ.addr}`, `--port=${DNSMASQ.port}`, `--local=/${ZONE}/`, '--local-ttl=300', '--user=root',
  `--pid-file=${join(tmp, 'dnsmasq.pid')}`, `--log-facility=${join(tmp, 'dnsmasq.log')}`]);

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * CPU seconds (user + system) of process pid and its children (the `cluster` workers), from
 * /proc: what an answer costs the server, whatever else the shared CPUs are doing.
 */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let ticks = Number(f[11]) + Number(f[12]);
    let children = '';
    try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8'); } catch { /* none */ }
    let s = ticks / CLK_TCK;
    for (const c of children.trim().split(/\s+/).filter(Boolean)) s += cpuSeconds(Number(c));
    return s;
  } catch {
    return 0;
  }
}

async function measure(system, tmp, queryFile, bundle) {
  const upstream = system.name === 'cached' ? startDnsmasq(tmp) : undefined;
  if (upstream) await waitAnswering(DNSMASQ.addr, DNSMASQ.port, upstream.child);
  const server = system.name === 'dnsmasq'
    ? startDnsmasq(tmp)
    : start(process.execPath, [bundle, VXNET.addr, String(VXNET.port), ZONE, String(NAMES), String(system.workers), ...(upstream ? [`${DNSMASQ.addr}:${DNSMASQ.port}`] : [])],
      { ...process.env, BENCH_DNS_METRICS: system.metrics ? '1' : '' });
  const at = system.name === 'dnsmasq' ? DNSMASQ : VXNET;
  try {
    await waitAnswering(at.addr, at.port, server.child);
    if (upstream) {
      // Warm every worker's cache: dnsperf for 2 s over the names, not counted.
      await dnsperf(at.addr, at.port, queryFile, 2);
    }
    const probe = Math.max(1, Math.floor(NAMES / 3));
    const got = await ask(at.addr, at.port, `host-${probe}.${ZONE}`);
    if (got !== addressOf(probe)) throw new Error(`${system.label}: host-${probe}.${ZONE} answered ${got}, expected ${addressOf(probe)}`);
    const cpu0 = cpuSeconds(server.child.pid);
    const r = await dnsperf(at.addr, at.port, queryFile);
    return { ...r, cpuUs: ((cpuSeconds(server.child.pid) - cpu0) * 1e6) / r.completed };
  } catch (err) {
    throw new Error(`${err.message}\n${server.stderr()}`);
  } finally {
    await stop(server);
    if (upstream) await stop(upstream);
  }
}

/**
 * Milliseconds until `name` is answered at `at`, the question resent every resendMs like a
 * stub resolver; undefined when nothing came within boundMs.
 */
function timedAsk(at, name, resendMs = 1000, boundMs = 5000) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
    const id = Math.floor(Math.random() * 65536);
    const q = Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
    const t0 = performance.now();
    const resend = setInterval(() => s.send(q, at.port, at.addr), resendMs);
    const done = (v) => { clearInterval(resend); clearTimeout(bound); s.close(); resolve(v); };
    const bound = setTimeout(() => done(undefined), boundMs);
    s.on('message', (m) => { if (m.readUInt16BE(0) === id && (m.readUInt16BE(2) & 0xf) === 0 && m.readUInt16BE(6) > 0) done(performance.now() - t0); });
    s.send(q, at.port, at.addr);
  });
}

/** Forwarders with one of two upstreams mute: latency of uncached forwarded queries. */
async function muteUpstream(tmp, bundle) {
  const mute = dgram.createSocket('udp4');
  let swallowed = 0;
  mute.on('message', () => { swallowed++; });
  await new Promise((r) => mute.bind(MUTE.port, MUTE.addr, r));
  const upstream = startDnsmasq(tmp);
  const rows = [];
  let vxP99;
  try {
    await waitAnswering(DNSMASQ.addr, DNSMASQ.port, upstream.child);
    const forwarders = [
      { label: 'vxnet forwarder (races two)', at: VXNET, n: MUTE_N,
        start: () => start(process.execPath, [bundle, VXNET.addr, String(VXNET.port), ZONE, '1', '1', `${MUTE.addr}:${MUTE.port},${DNSMASQ.addr}:${DNSMASQ.port}`]) },
      ...[['dnsmasq --strict-order (sequential)', ['--strict-order'], Math.min(MUTE_N, 60)], ['dnsmasq default (all, then fastest)', [], MUTE_N]].map(([label, extra, n]) => ({
        label, at: FWD_DNSMASQ, n,
        start: () => start('dnsmasq', ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll', '--bind-interfaces',
          `--listen-address=${FWD_DNSMASQ.addr}`, `--port=${FWD_DNSMASQ.port}`, '--cache-size=0', '--user=root', `--pid-file=${join(tmp, 'fwd.pid')}`,
          `--server=${MUTE.addr}#${MUTE.port}`, `--server=${DNSMASQ.addr}#${DNSMASQ.port}`, ...extra]),
      })),
    ];
    let offset = 1;
    for (const f of forwarders) {
      if (interrupt.signal) break;
      const server = f.start();
      try {
        // Ready: a name of the zone answers (through whichever upstream), then a fresh range of names.
        let ready = false;
        for (let i = 0; i < 20 && !ready; i++) ready = (await timedAsk(f.at, `host-${NAMES}.${ZONE}`, 250, 1000)) !== undefined || server.child.exitCode !== null;
        if (server.child.exitCode !== null) throw new Error(`${f.label} exited: ${server.stderr()}`);
        const times = [];
        let lost = 0;
        for (let i = 0; i < f.n && !interrupt.signal; i++) {
          const ms = await timedAsk(f.at, `host-${((offset + i) % (NAMES - 1)) + 1}.${ZONE}`);
          if (ms === undefined) lost++; else times.push(ms);
        }
        offset += f.n;
        const st = summarize(times);
        // An unanswered query counts as the bound (5 s) in the percentiles.
        const all = summarize([...times, ...Array(lost).fill(5000)]);
        if (f.at === VXNET) vxP99 = all.p99;
        rows.push([f.label, f.n, f1(st.p50), f1(all.p99), f1(all.max), lost]);
        say(`#   ${f.label}: ${f.n} queries, p50 ${f1(st.p50)} ms, p99 ${f1(all.p99)} ms, unanswered in 5 s ${lost}`);
      } finally {
        await stop(server);
      }
    }
  } finally {
    await stop(upstream);
    mute.close();
  }
  if (interrupt.signal) return;
  say(table(['forwarder, upstreams: mute + dnsmasq', 'queries', 'p50 ms', 'p99 ms', 'max ms', 'unanswered'], rows));
  say(`vxnet forwarder with one of two upstreams mute: p99 ${f1(vxP99)} ms; target < ${MUTE_TARGET_MS} ms: ${vxP99 < MUTE_TARGET_MS ? 'PASS' : 'MISS'} (the mute upstream swallowed ${swallowed} queries)`);
  say(`SUMMARY dns-mute-upstream vxnet_p99_ms=${f1(vxP99)} ${rows.slice(1).map((r) => `${r[0].split(' (')[0].replace(/[^a-z]+/g, '_')}_p99_ms=${r[3]}`).join(' ')} target=${vxP99 < MUTE_TARGET_MS ? 'PASS' : 'MISS'}`);
}

async function main() {
  for (const tool of ['dnsperf', 'dnsmasq']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing (apt-get install dnsperf dnsmasq-base)`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'bn-dns-'));
  try {
    const { build } = await import('esbuild');
    const bundle = join(tmp, 'dns-server.cjs');
    await build({ entryPoints: [join(root, 'bench', 'dns-server.ts')], outfile: bundle, bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning' });
    const records = [], queries = [];
    for (let i = 1; i <= NAMES; i++) {
      records.push(`host-record=host-${i}.${ZONE},${addressOf(i)}`);
      queries.push(`host-${i}.${ZONE} A`);
    }
    writeFileSync(join(tmp, 'dnsmasq.conf'), records.join('\n') + '\n');
    const queryFile = join(tmp, 'queries.txt');
    writeFileSync(queryFile, queries.join('\n') + '\n');

    const systems = [
      { name: 'dnsmasq', label: 'dnsmasq (1 process)' },
      { name: 'vxnet', label: `vxnet (${WORKERS} workers)`, workers: WORKERS },
      ...(WORKERS > 1 ? [{ name: 'vxnet', label: 'vxnet (1 process)', workers: 1 }] : []),
      // vxnetd's handler counts every query (dns/metrics.ts): the same server with that counting, beside the one without.
      { name: 'vxnet', label: 'vxnet + metrics (1 process)', workers: 1, metrics: true },
      { name: 'cached', label: `vxnet cached (${WORKERS} workers)`, workers: WORKERS },
    ];
    say(`# dns bench ${new Date().toISOString()}  node ${process.version}  ${cpus().length} CPU(s)  loadavg ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    say(`# ${NAMES} names, dnsperf -c 1 -T 1 -q 100 -l ${SECONDS}, ${ROUNDS} round(s), order alternating; dnsmasq ${DNSMASQ.addr}:${DNSMASQ.port}, vxnet ${VXNET.addr}:${VXNET.port}`);
    const results = new Map(systems.map((s) => [s.label, []]));
    const rows = [];
    for (let round = 0; round < ROUNDS && !interrupt.signal; round++) {
      const order = round % 2 ? [...systems].reverse() : systems;
      for (const system of order) {
        if (interrupt.signal) break;
        const r = await measure(system, tmp, queryFile, bundle);
        results.get(system.label).push(r);
        rows.push([system.label, round + 1, Math.round(r.qps), f2(r.avgMs), r.sent, r.lost, `${r.noerror}%`, f2(r.cpuUs)]);
        say(`#   round ${round + 1} ${system.label}: ${Math.round(r.qps)} qps, avg ${f2(r.avgMs)} ms, lost ${r.lost}, server CPU ${f2(r.cpuUs)} us/answer`);
      }
    }
    if (interrupt.signal) return 130;
    say(table(['system', 'round', 'qps', 'avg ms', 'sent', 'lost', 'NOERROR', 'server CPU us/answer'], rows));
    const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
    const qps = (label) => median(results.get(label).map((r) => r.qps));
    const lost = (label) => results.get(label).reduce((s, r) => s + r.lost, 0);
    const allNoerror = [...results.values()].flat().every((r) => r.noerror === 100);
    const dnsmasqQps = qps(systems[0].label);
    const vx = systems[1].label;
    const x = ratio(qps(vx), dnsmasqQps);
    const met = x >= 0.5 && lost(vx) === 0;
    say(`${vx}: ${Math.round(qps(vx))} qps = ${f2(x)}x dnsmasq's ${Math.round(dnsmasqQps)} (median of ${ROUNDS}); lost ${lost(vx)}; target >= 0.50x, no loss: ${met ? 'PASS' : 'MISS'}`);
    if (WORKERS > 1) say(`vxnet (1 process): ${Math.round(qps(systems[2].label))} qps = ${f2(ratio(qps(systems[2].label), dnsmasqQps))}x`);
    const cpu = (label) => median(results.get(label).map((r) => r.cpuUs));
    const plain = systems.find((x) => x.workers === 1 && !x.metrics).label;
    const counted = systems.find((x) => x.metrics).label;
    say(`${counted}: ${Math.round(qps(counted))} qps = ${f2(ratio(qps(counted), qps(plain)))}x ${plain}; server CPU ${f2(cpu(counted))} us/answer against ${f2(cpu(plain))} us (${f2(ratio(cpu(counted), cpu(plain)))}x)`);
    const cached = systems[systems.length - 1].label;
    const cx = ratio(qps(cached), qps(vx));
    say(`${cached}: ${Math.round(qps(cached))} qps = ${f2(cx)}x the authoritative rate; lost ${lost(cached)}; target >= 0.90x: ${cx >= 0.9 ? 'PASS' : 'MISS'}`);
    // qps moves with whatever else runs on the shared CPUs; the server's CPU per answer does not.
    say(`server CPU per answer (median): ${systems.map((x) => `${x.label} ${f2(cpu(x.label))} us`).join(', ')}; cached / authoritative ${f2(ratio(cpu(cached), cpu(vx)))}`);
    say(`SUMMARY dns-bench dnsmasq_qps=${Math.round(dnsmasqQps)} vxnet_qps=${Math.round(qps(vx))} workers=${WORKERS} ratio=${f2(x)} vxnet_lost=${lost(vx)} cached_qps=${Math.round(qps(cached))} cached_ratio=${f2(cx)} cpu_us_vxnet=${f2(cpu(vx))} cpu_us_cached=${f2(cpu(cached))} cpu_us_dnsmasq=${f2(cpu(systems[0].label))} all_noerror=${allNoerror} target=${met ? 'PASS' : 'MISS'}`);
    say('== DNS forwarder: one of two upstreams mute ==');
    await muteUpstream(tmp, bundle);
    if (interrupt.signal) return 130;
    return allNoerror ? 0 : 1;
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err) => {
  say(`dns bench failed: ${err.stack ?? err}`);
  process.exit(1);
});
