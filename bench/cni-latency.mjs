// CNI ADD/DEL latency and ADD throughput: vxnet (its calls handed to a vxnetd this bench starts,
// and in-process) against Debian's reference bridge+host-local, side by side in one run, plus
// the floor any Node entry point pays (`node -e 0`).
//
// The runtime here executes a conflist the way libcni does: ADD runs the plugins in order,
// each with its plugin object plus the list's name and cniVersion and the previous plugin's
// result as prevResult; the final result is cached; DEL runs them in reverse with the cached
// result as prevResult. Environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
// CNI_PATH and PATH only. (Same method as /work/shared/bench/cnitool-lite, without Go.)
//
// Timed: per sandbox, the whole chain's wall clock (every plugin's fork/exec and work). For
// each concurrency C the systems run in rounds, alternating which goes first (ABBA), each
// round a full cycle over N fresh netns: ADD all (C in flight), verify, DEL all, verify.
// Untimed: netns creation/deletion, the checks, one warm-up ADD+DEL per system.
//
// node -e 0 runs in phases of its own next to vxnet's in-process c=1 phase (the figure the
// target uses), and once after each of vxnetd's c=1 ADDs (for information: the floor at the
// same moments, with the same containers attached and their background traffic).
//
// Deferred work: vxnet's DEL detaches and renames the host veth and deletes it from a
// background `ip link del` it does not wait for; the bridge plugin deletes its veth before it
// exits. So besides the per-DEL latency (what a runtime waits for) every DEL phase reports the
// time until the last of the run's veths is really gone ("settled"), and the next phase only
// starts after that.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Interrupted, checkInterrupt, f1, f2, interrupt, pool, run, say, summarize } from './lib.mjs';

const IFNAME = 'eth0';
const STEP_TIMEOUT_MS = 60_000;
const SETTLE_BOUND_MS = 60_000;
const SETTLE_POLL_MS = 10;

/** The two systems; names are the bench's own (bn*) except what plugins choose (veths). dist: vxnet's build. */
export function systems(root, dist, tmp) {
  const load = (file) => JSON.parse(readFileSync(join(root, 'bench', 'conf', file), 'utf8'));
  const ref = load('bn-bridge-hostlocal.conflist');
  ref.plugins[0].ipam.dataDir = join(tmp, 'host-local');
  const vx = load('bnvx.conflist');
  vx.plugins[0].ipam.dataDir = join(tmp, 'vxnet-ipam');
  return [
    {
      key: 'ref', label: 'bridge+host-local', list: ref, cniPath: '/usr/lib/cni', nsPrefix: 'bnrf-',
      bridge: ref.plugins[0].bridge, subnet: ref.plugins[0].ipam.ranges[0][0].subnet, dataDir: ref.plugins[0].ipam.dataDir,
    },
    {
      // In-process: the plugin does all the work itself (no vxnetd; VXNET_CNI_SOCKET empty).
      key: 'vx', label: 'vxnet', list: vx, cniPath: join(dist, 'bin'), nsPrefix: 'bnvx-', vxnetctl: join(dist, 'bin', 'vxnetctl'),
      bridge: vx.plugins[0].bridge, natTable: vx.plugins[0].natTable, subnet: vx.plugins[0].ipam.ranges[0][0].subnet,
      dataDir: vx.plugins[0].ipam.dataDir, env: { VXNET_CNI_SOCKET: '' },
    },
    {
      // The same network, the calls handed to a vxnetd the bench starts (what a host running
      // vxnetd does by default).
      key: 'vxd', label: 'vxnet via vxnetd', list: vx, cniPath: join(dist, 'bin'), nsPrefix: 'bnvd-', vxnetctl: join(dist, 'bin', 'vxnetctl'),
      bridge: vx.plugins[0].bridge, natTable: vx.plugins[0].natTable, subnet: vx.plugins[0].ipam.ranges[0][0].subnet,
      dataDir: vx.plugins[0].ipam.dataDir, env: { VXNET_CNI_SOCKET: join(tmp, 'vxnetd', 'cni.sock') },
      vxnetd: { bin: join(dist, 'bin', 'vxnetd'), dir: join(tmp, 'vxnetd'), socket: '/run/docker/plugins/bnvxd.sock' },
    },
  ];
}

/** Starts the vxnetd of a system that hands its calls over; resolves once it serves CNI calls. */
async function startVxnetd(sys) {
  const { spawn } = await import('node:child_process');
  mkdirSync(sys.vxnetd.dir, { recursive: true });
  const child = spawn(sys.vxnetd.bin, ['--no-docker', '--no-dns', '--no-vip', '--http-listen', '', '--socket', sys.vxnetd.socket, '--cni-socket', sys.env.VXNET_CNI_SOCKET,
    '--data-dir', sys.vxnetd.dir, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  let log = '';
  child.stderr.on('data', (b) => { log += b.toString(); });
  const deadline = performance.now() + 10_000;
  while (!existsSync(sys.env.VXNET_CNI_SOCKET)) {
    if (child.exitCode !== null) throw new Error(`vxnetd exited ${child.exitCode}: ${log}`);
    if (performance.now() > deadline) { child.kill('SIGKILL'); throw new Error(`vxnetd did not open ${sys.env.VXNET_CNI_SOCKET} within 10 s: ${log}`); }
    await new Promise((r) => setTimeout(r, 20));
  }
  say(`# ${sys.key}: vxnetd pid ${child.pid} serves CNI calls on ${sys.env.VXNET_CNI_SOCKET}`);
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    if (log.trim()) say(`# ${sys.key}: vxnetd said: ${log.trim().split('\n').slice(-5).join(' | ')}`);
  };
}

// ---- the libcni-like runtime --------------------------------------------------------------

function cniEnv(command, cid, netns, cniPath, extra = {}) {
  return {
    CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: IFNAME, CNI_PATH: cniPath,
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...extra,
  };
}

function pluginFile(sys, type) {
  for (const dir of sys.cniPath.split(':')) {
    const p = join(dir, type);
    if (existsSync(p)) return p;
  }
  throw new Error(`plugin ${type} not found in ${sys.cniPath}`);
}

function oneConfig(list, plugin, prev) {
  const conf = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  if (prev !== undefined) conf.prevResult = prev;
  else delete conf.prevResult;
  return JSON.stringify(conf);
}

async function execPlugin(sys, plugin, command, sb, prev) {
  const r = await run(pluginFile(sys, plugin.type), [], {
    input: oneConfig(sys.list, plugin, prev), env: cniEnv(command, sb.cid, sb.netns, sys.cniPath, sys.env), timeoutMs: STEP_TIMEOUT_MS,
  });
  if (r.code !== 0) {
    throw new Error(`${plugin.type} ${command} ${sb.cid}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stdout.trim()} ${r.stderr.trim()}`.trim());
  }
  return r.stdout;
}

async function addChain(sys, sb) {
  let prev;
  for (const plugin of sys.list.plugins) prev = JSON.parse(await execPlugin(sys, plugin, 'ADD', sb, prev));
  return prev;
}

async function delChain(sys, sb, cached) {
  const prev = versionAtLeast(sys.list.cniVersion, '0.4.0') ? cached : undefined;
  for (const plugin of [...sys.list.plugins].reverse()) await execPlugin(sys, plugin, 'DEL', sb, prev);
}

function versionAtLeast(v, min) {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

const firstIpv4 = (result) => (result?.ips ?? []).map((ip) => ip.address).find((a) => typeof a === 'string' && a.includes('.'));

// ---- host state ---------------------------------------------------------------------------

async function ip(args, input) {
  return run('ip', args, { input, timeoutMs: STEP_TIMEOUT_MS, env: { PATH: process.env.PATH } });
}

async function mustIp(args, input) {
  const r = await ip(args, input);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

async function listNetns() {
  const r = await ip(['netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

const linkExists = async (name) => (await ip(['link', 'show', 'dev', name])).code === 0;

/** Host veths whose peer sits in one of the netns named PREFIX* (ip -o link shows "link-netns NAME"). */
async function vethsInto(prefix) {
  const out = await mustIp(['-o', 'link', 'show']);
  return out.split('\n').filter((l) => l.includes(` link-netns ${prefix}`)).length;
}

// The tracker of what this run created, for cleanup: netns, and sandboxes whose ADD started
// and whose DEL has not succeeded yet.
const created = { netns: new Set(), attached: new Map(), bridges: false };

async function addNetns(names) {
  for (const n of names) created.netns.add(n);
  await mustIp(['-batch', '-'], names.map((n) => `netns add ${n}`).join('\n') + '\n');
}

async function delNetns(names) {
  const live = new Set(await listNetns());
  const gone = names.filter((n) => live.has(n));
  if (gone.length) await ip(['-batch', '-'], gone.map((n) => `netns del ${n}`).join('\n') + '\n');
  for (const n of names) created.netns.delete(n);
}

// ---- one phase ----------------------------------------------------------------------------

/**
 * Runs op over the sandboxes with conc in flight; returns latencies (ms, submission order) and
 * wall (s). `between` (optional, c=1 only) runs after each operation, outside its latency and
 * the wall time.
 */
async function timedPhase(sys, op, sandboxes, conc, between) {
  const lat = new Array(sandboxes.length).fill(NaN);
  const errors = [];
  const t0 = performance.now();
  let betweenMs = 0;
  await pool(sandboxes, conc, async (sb, i) => {
    if (interrupt.signal || errors.length > 0) return;
    const key = `${sys.key}/${sb.cid}`;
    if (op === 'ADD') created.attached.set(key, { sys, sb });
    const s = performance.now();
    try {
      if (op === 'ADD') sb.result = await addChain(sys, sb);
      else await delChain(sys, sb, sb.result);
      lat[i] = performance.now() - s;
      if (op === 'DEL') created.attached.delete(key);
      if (between && conc === 1) {
        const b = performance.now();
        await between();
        betweenMs += performance.now() - b;
      }
    } catch (err) {
      errors.push(err.message);
    }
  });
  const wall = (performance.now() - t0 - betweenMs) / 1000;
  checkInterrupt();
  if (errors.length) throw new Error(`${sys.label} ${op} failed for ${errors.length} sandbox(es):\n  ${errors.slice(0, 5).join('\n  ')}`);
  return { lat, wall };
}

/** Waits (bounded) until no host veth leads into the system's netns any more; returns when (performance.now()). */
async function settle(sys) {
  const deadline = performance.now() + SETTLE_BOUND_MS;
  for (;;) {
    const left = await vethsInto(sys.nsPrefix);
    if (left === 0) return performance.now();
    if (performance.now() > deadline) throw new Error(`${sys.label}: ${left} veth(s) into ${sys.nsPrefix}* still present ${SETTLE_BOUND_MS / 1000}s after DEL`);
    checkInterrupt();
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
  }
}

function inSubnet(addr, subnet) {
  const toInt = (a) => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const [net, bits] = subnet.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toInt(addr.split('/')[0]) / size) === Math.floor(toInt(net) / size);
}

async function verifyAdd(sys, sandboxes, every) {
  const problems = [];
  const seen = new Map();
  for (const sb of sandboxes) {
    const a = firstIpv4(sb.result);
    if (!a) { problems.push(`${sb.cid}: no IPv4 address in the ADD result`); continue; }
    if (!inSubnet(a, sys.subnet)) problems.push(`${sb.cid}: ${a} is outside ${sys.subnet}`);
    const bare = a.split('/')[0];
    if (seen.has(bare)) problems.push(`${sb.cid}: ${bare} was also given to ${seen.get(bare)}`);
    seen.set(bare, sb.cid);
  }
  const sample = sandboxes.filter((_, i) => i % every === 0);
  await pool(sample, 8, async (sb) => {
    const a = firstIpv4(sb.result);
    if (!a) return;
    const r = await ip(['-n', sb.ns, '-4', '-o', 'addr', 'show', 'dev', IFNAME]);
    if (!r.stdout.includes(` inet ${a} `)) problems.push(`${sb.ns}: ${IFNAME} does not carry ${a} (${r.stdout.trim() || r.stderr.trim()})`);
  });
  return { checked: sample.length, distinct: seen.size, problems };
}

async function verifyDel(sys, sandboxes, every) {
  const problems = [];
  const sample = sandboxes.filter((_, i) => i % every === 0);
  await pool(sample, 8, async (sb) => {
    const r = await ip(['-n', sb.ns, 'link', 'show', 'dev', IFNAME]);
    if (r.code === 0) problems.push(`${sb.ns}: ${IFNAME} still present after DEL`);
  });
  const ports = (await mustIp(['-o', 'link', 'show', 'master', sys.bridge])).split('\n').filter(Boolean).length;
  if (ports) problems.push(`bridge ${sys.bridge} still has ${ports} port(s)`);
  let left;
  if (sys.vxnetctl) {
    const r = await run(sys.vxnetctl, ['--data-dir', sys.dataDir, '--json', 'ipam', 'ls'], { timeoutMs: STEP_TIMEOUT_MS });
    if (r.code !== 0) problems.push(`vxnetctl ipam ls failed: ${r.stderr.trim()}`);
    else left = JSON.parse(r.stdout).allocations.length;
  } else {
    const dir = join(sys.dataDir, sys.list.name);
    left = existsSync(dir) ? readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')).length : 0;
  }
  if (left !== 0) problems.push(`${left} address allocation(s) left in the ${sys.vxnetctl ? 'vxnet store' : 'host-local dataDir'}`);
  const rules = await iptablesMentioning(sys.nsPrefix);
  if (rules) problems.push(`${rules} iptables rule(s) still mention a container id ${sys.nsPrefix}*`);
  return { checked: sample.length, leftAllocations: left, problems };
}

async function iptablesMentioning(text) {
  let n = 0;
  for (const t of ['nat', 'filter']) {
    const r = await run('iptables-save', ['-t', t], { timeoutMs: STEP_TIMEOUT_MS });
    n += r.stdout.split('\n').filter((l) => l.includes(text)).length;
  }
  return n;
}

/** One system, one round at one concurrency: fresh netns, ADD, verify, DEL, settle, verify. */
async function cycle(sys, n, conc, round, verifyEvery, betweenAdds) {
  const names = Array.from({ length: n }, (_, i) => `${sys.nsPrefix}${i + 1}`);
  // The container id is the netns name: the cleanup can run DEL for a netns left behind.
  const sandboxes = names.map((ns) => ({ ns, cid: ns, netns: `/run/netns/${ns}`, result: undefined }));
  await addNetns(names);
  try {
    const add = await timedPhase(sys, 'ADD', sandboxes, conc, betweenAdds);
    const va = await verifyAdd(sys, sandboxes, verifyEvery);
    const delStart = performance.now();
    const del = await timedPhase(sys, 'DEL', sandboxes, conc);
    const settledAt = await settle(sys);
    const vd = await verifyDel(sys, sandboxes, verifyEvery);
    const out = {
      sys: sys.key, conc, round, add: add.lat, del: del.lat, addWall: add.wall, delWall: del.wall,
      delSettledWall: (settledAt - delStart) / 1000, verifyAdd: va, verifyDel: vd,
    };
    say(phaseLine(sys, out));
    const problems = [...va.problems, ...vd.problems];
    if (problems.length) throw new Error(`${sys.label} c=${conc} round ${round}: verification failed:\n  ${problems.slice(0, 8).join('\n  ')}`);
    return out;
  } finally {
    await delNetnsSafely(sys, sandboxes);
  }
}

/** Deletes the netns, after a DEL for any sandbox still attached (interrupted or failed phase). */
async function delNetnsSafely(sys, sandboxes) {
  const still = sandboxes.filter((sb) => created.attached.has(`${sys.key}/${sb.cid}`));
  await pool(still, 4, async (sb) => {
    try {
      await delChain(sys, sb, sb.result);
      created.attached.delete(`${sys.key}/${sb.cid}`);
    } catch (err) {
      say(`# cleanup: DEL ${sb.cid} failed: ${err.message}`);
    }
  });
  await delNetns(sandboxes.map((sb) => sb.ns));
}

function phaseLine(sys, r) {
  const a = summarize(r.add.filter(Number.isFinite));
  const d = summarize(r.del.filter(Number.isFinite));
  const tenth = Math.max(1, Math.floor(r.add.length / 10));
  const first = summarize(r.add.slice(0, tenth)).p50;
  const last = summarize(r.add.slice(-tenth)).p50;
  return `PHASE ${sys.key.padEnd(3)} c=${r.conc} round=${r.round} n=${a.n}` +
    ` ADD p50=${f1(a.p50)} p95=${f1(a.p95)} p99=${f1(a.p99)} max=${f1(a.max)} ms adds/s=${f1(a.n / r.addWall)} first10%p50=${f1(first)} last10%p50=${f1(last)}` +
    ` | DEL p50=${f1(d.p50)} p95=${f1(d.p95)} p99=${f1(d.p99)} max=${f1(d.max)} ms dels/s=${f1(d.n / r.delWall)} settled_dels/s=${f1(d.n / r.delSettledWall)}` +
    ` | verified add=${r.verifyAdd.checked - r.verifyAdd.problems.length}/${r.verifyAdd.checked} distinct_ips=${r.verifyAdd.distinct}/${a.n} del=${r.verifyDel.checked}${r.verifyDel.problems.length ? ' PROBLEMS' : ' ok'} allocations_left=${r.verifyDel.leftAllocations}`;
}

// ---- node -e 0 ----------------------------------------------------------------------------

/** One `node -e 0`, timed like a plugin. */
async function nodeOnce() {
  const s = performance.now();
  const r = await run(process.execPath, ['-e', '0'], { env: { PATH: process.env.PATH }, timeoutMs: STEP_TIMEOUT_MS });
  if (r.code !== 0) throw new Error(`node -e 0 exited ${r.code}: ${r.stderr}`);
  return performance.now() - s;
}

async function nodeFloor(n, round) {
  const lat = [];
  for (let i = 0; i < n; i++) {
    checkInterrupt();
    const s = performance.now();
    const r = await run(process.execPath, ['-e', '0'], { env: { PATH: process.env.PATH }, timeoutMs: STEP_TIMEOUT_MS });
    lat.push(performance.now() - s);
    if (r.code !== 0) throw new Error(`node -e 0 exited ${r.code}: ${r.stderr}`);
  }
  const s = summarize(lat);
  say(`PHASE node-e0 c=1 round=${round} n=${n} p50=${f1(s.p50)} p95=${f1(s.p95)} p99=${f1(s.p99)} min=${f1(s.min)} max=${f1(s.max)} ms`);
  return lat;
}

// ---- warm-up, checks, cleanup -------------------------------------------------------------

async function warmup(sys) {
  const sb = { ns: `${sys.nsPrefix}w`, cid: `${sys.nsPrefix}w`, netns: `/run/netns/${sys.nsPrefix}w`, result: undefined };
  await addNetns([sb.ns]);
  try {
    const key = `${sys.key}/${sb.cid}`;
    created.attached.set(key, { sys, sb });
    sb.result = await addChain(sys, sb);
    await delChain(sys, sb, sb.result);
    created.attached.delete(key);
    await settle(sys);
  } finally {
    await delNetnsSafely(sys, [sb]);
  }
}

/** What of the bench's names exists now (leftovers of a killed run, or another run). */
export async function existing(syss) {
  const found = [];
  const prefixes = syss.map((s) => s.nsPrefix);
  for (const n of await listNetns()) if (prefixes.some((p) => n.startsWith(p))) found.push(`netns ${n}`);
  for (const s of syss) if (await linkExists(s.bridge)) found.push(`bridge ${s.bridge}`);
  for (const s of syss) {
    if (!s.natTable) continue;
    for (const fam of ['ip', 'ip6']) if ((await run('nft', ['list', 'table', fam, s.natTable])).code === 0) found.push(`nft table ${fam} ${s.natTable}`);
  }
  for (const s of syss) if ((await forwardRules(s.bridge, 'iptables')).length) found.push(`iptables FORWARD rules "vxnet:${s.bridge}"`);
  return found;
}

/** FORWARD rules carrying vxnet's comment for the bridge, as `iptables -S` argument lists. */
async function forwardRules(bridge, tool) {
  const r = await run(tool, ['-w', '-S', 'FORWARD'], { timeoutMs: STEP_TIMEOUT_MS });
  return r.stdout.split('\n')
    .filter((l) => l.startsWith('-A FORWARD '))
    .map((l) => shellWords(l).slice(2))
    .filter((words) => words.some((w, i) => w === `vxnet:${bridge}` && words[i - 1] === '--comment'));
}

/** Splits an `iptables -S` line into its arguments: double quotes group, backslash escapes. */
export function shellWords(line) {
  const words = [];
  let cur = null;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\' && i + 1 < line.length) { cur = (cur ?? '') + line[++i]; continue; }
    if (ch === '"') { quoted = !quoted; cur = cur ?? ''; continue; }
    if (ch === ' ' && !quoted) { if (cur !== null) words.push(cur); cur = null; continue; }
    cur = (cur ?? '') + ch;
  }
  if (cur !== null) words.push(cur);
  return words;
}

/**
 * Removes everything the bench creates, and only that: DEL for attached sandboxes, the netns
 * bnvx-* / bnvd-* / bnrf-*, the bridges bnvx0 and bn-cni0, the nft table bnvx, the FORWARD rules vxnet
 * added for bnvx0. The reference bridge plugin's CNI-* nat chains go with its DEL, which runs
 * for every bnrf-* netns that still has an eth0 (container id = netns name). Idempotent.
 */
export async function cleanup(syss, { log = say } = {}) {
  // Sandboxes this process knows to be attached: DEL with their cached result.
  const known = [...created.attached.values()];
  await pool(known, 4, async ({ sys, sb }) => {
    try { await delChain(sys, sb, sb.result); created.attached.delete(`${sys.key}/${sb.cid}`); } catch (err) { log(`# cleanup: DEL ${sb.cid}: ${err.message}`); }
  });
  const live = await listNetns();
  for (const sys of syss) {
    const mine = live.filter((n) => n.startsWith(sys.nsPrefix));
    // A netns that still has an interface from the plugin: DEL without a cached result.
    await pool(mine, 4, async (ns) => {
      if ((await ip(['-n', ns, 'link', 'show', 'dev', IFNAME])).code !== 0) return;
      try { await delChain(sys, { ns, cid: ns, netns: `/run/netns/${ns}` }, undefined); } catch (err) { log(`# cleanup: DEL ${ns}: ${err.message}`); }
    });
    if (mine.length) {
      await ip(['-batch', '-'], mine.map((n) => `netns del ${n}`).join('\n') + '\n');
      log(`# cleanup: deleted ${mine.length} netns ${sys.nsPrefix}*`);
    }
  }
  created.netns.clear();
  for (const sys of syss) {
    if (await linkExists(sys.bridge)) {
      await ip(['link', 'del', 'dev', sys.bridge]);
      log(`# cleanup: deleted bridge ${sys.bridge}`);
    }
    if (sys.natTable) {
      for (const fam of ['ip', 'ip6']) {
        if ((await run('nft', ['delete', 'table', fam, sys.natTable])).code === 0) log(`# cleanup: deleted nft table ${fam} ${sys.natTable}`);
      }
    }
    for (const tool of ['iptables', 'ip6tables']) {
      for (const rule of await forwardRules(sys.bridge, tool)) {
        const r = await run(tool, ['-w', '-D', 'FORWARD', ...rule], { timeoutMs: STEP_TIMEOUT_MS });
        log(`# cleanup: ${tool} -D FORWARD ${rule.join(' ')}${r.code === 0 ? '' : ` failed: ${r.stderr.trim()}`}`);
      }
    }
  }
  for (const sys of syss) {
    const n = await iptablesMentioning(sys.nsPrefix);
    if (n) log(`# cleanup: WARNING ${n} iptables rule(s) still mention ${sys.nsPrefix}* (not removed)`);
  }
}

// ---- the whole CNI bench ------------------------------------------------------------------

export async function runCniBench({ root, dist, tmp, n, concs, rounds, nodeN, verifyEvery }) {
  const syss = systems(root, dist, tmp);
  mkdirSync(tmp, { recursive: true });
  for (const s of syss) writeFileSync(join(tmp, `${s.list.name}.conflist`), JSON.stringify(s.list, null, 2));
  for (const s of syss) {
    say(`# ${s.key}: ${s.label}  CNI_PATH=${s.cniPath}  netns ${s.nsPrefix}1..${n}  conflist ${JSON.stringify(s.list)}`);
  }

  const left = await existing(syss);
  if (left.length) {
    const shown = left.length > 12 ? [...left.slice(0, 12), `... and ${left.length - 12} more`] : left;
    throw new Error(`the bench's names exist already (another bench run, a cni-latency.sh run on bn-cni0, or leftovers of a killed run):\n  ${shown.join('\n  ')}\n` +
      'remove leftovers with: npm run bench -- --cleanup');
  }

  // node: node -e 0 in phases of its own next to vxnet's in-process c=1 phase (the target's
  // figure); nodeBeside: one node -e 0 after each of vxnetd's c=1 ADDs (untimed in the ADD),
  // i.e. at the same moments and with the same containers attached as those ADDs.
  const results = { phases: [], node: [], nodeBeside: [] };
  const stops = [];
  try {
    for (const s of syss) if (s.vxnetd) stops.push(await startVxnetd(s));
    created.bridges = true;
    for (const s of syss) await warmup(s);
    await nodeFloor(3, 'warmup');
    const vx = syss.find((s) => s.key === 'vx');
    say(`# warm-up done: bridges ${syss.map((s) => s.bridge).join(', ')} exist; vxnet nft table ${vx.natTable}: ` +
      `${(await run('nft', ['list', 'table', 'ip', vx.natTable])).code === 0 ? 'present' : 'MISSING'}, FORWARD rules vxnet:${vx.bridge}: ${(await forwardRules(vx.bridge, 'iptables')).length}`);

    // ABBA over the whole sequence: the order flips every round, and node -e 0 always runs
    // next to vxnet's c=1 phase.
    let flip = false;
    for (const conc of concs) {
      for (let r = 1; r <= rounds; r++) {
        const order = flip ? [...syss].reverse() : syss;
        flip = !flip;
        for (const s of order) {
          if (conc === 1 && s.key === 'vx' && order[0] === s) results.node.push(...(await nodeFloor(nodeN, r)));
          const beside = conc === 1 && s.key === 'vxd' ? async () => { results.nodeBeside.push(await nodeOnce()); } : undefined;
          results.phases.push(await cycle(s, n, conc, r, verifyEvery, beside));
          if (conc === 1 && s.key === 'vx' && order[0] !== s) results.node.push(...(await nodeFloor(nodeN, r)));
        }
      }
    }
    return { syss, results };
  } finally {
    const was = interrupt.signal;
    for (const stop of stops) await stop();
    await cleanup(syss);
    if (was) say(`# cleanup after ${was} done`);
  }
}

// ---- figures ------------------------------------------------------------------------------

/** Aggregates the rounds per (system, concurrency). */
export function aggregate(results) {
  const out = new Map();
  for (const p of results.phases) {
    const k = `${p.sys}/${p.conc}`;
    const a = out.get(k) ?? { sys: p.sys, conc: p.conc, add: [], del: [], addWall: 0, delWall: 0, delSettledWall: 0, rounds: 0 };
    a.add.push(...p.add); a.del.push(...p.del);
    a.addWall += p.addWall; a.delWall += p.delWall; a.delSettledWall += p.delSettledWall; a.rounds += 1;
    out.set(k, a);
  }
  for (const a of out.values()) {
    a.addS = summarize(a.add); a.delS = summarize(a.del);
    a.addsPerS = a.addS.n / a.addWall; a.delsPerS = a.delS.n / a.delWall; a.settledDelsPerS = a.delS.n / a.delSettledWall;
  }
  return out;
}

export { Interrupted, f2 };
