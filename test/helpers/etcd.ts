// A real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: one or three members, each with
// its own temp data dir and client + peer ports, started and SIGKILLed by pid (never by name),
// torn down by the test that started it. Readiness is bounded polling of each member's
// GET /health, never a sleep.
//
// Where members listen: 127.0.0.1 by default (ports the kernel hands out for a throw-away
// listener, so parallel test files do not collide); or, for the multi-host harness, member i
// inside network namespace netns[i] (`ip netns exec`, which execs etcd in place, so the pid we
// hold is etcd's) bound to hosts[i]. Nothing else is allowed: on a shared machine an etcd must
// not listen on a routable host address. Members die with the test process, however it ends
// (setpriv --pdeathsig, see spawnMember).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestLike } from './netns';
import { exec, pollUntil } from './sh';

export const ETCD = '/usr/bin/etcd';
const SETPRIV = '/usr/bin/setpriv';

export interface EtcdOptions {
  /** How many members (default 1). */
  members?: 1 | 3;
  /** The IP every member binds when netns is not given (default 127.0.0.1; loopback only). */
  host?: string;
  /** Run member i inside network namespace netns[i] (`ip netns exec`), bound to hosts[i]. */
  netns?: string[];
  /** The IP member i binds (one per member). Outside namespaces, loopback addresses only. */
  hosts?: string[];
  /** How long start and restart wait for health (default 20 s). */
  readyTimeoutMs?: number;
}

export interface EtcdCluster {
  /** Client endpoints as host:port, one per member (what `etcd://a,b,c` and etcd/client.ts take). */
  readonly endpoints: string[];
  /** The same as http:// URLs. */
  readonly clientUrls: string[];
  /** `etcd://host:port,host:port,...`: the form vxnetd --store and vxnetctl --store take. */
  readonly storeUrl: string;
  /** SIGKILLs member i (by pid) and waits until it has exited. No-op if it is not running. */
  kill(i: number): Promise<void>;
  /**
   * Starts member i again on its data dir and ports (SIGKILLing it first if it runs), and waits
   * until it reports healthy; when fewer than a quorum of members would run, only until it
   * answers /health at all (a lone member of three never becomes healthy).
   */
  restart(i: number): Promise<void>;
  /** True while member i's process runs. */
  running(i: number): boolean;
  /** SIGKILLs every member and removes the data dirs. Idempotent; t.teardown calls it. */
  stop(): Promise<void>;
}

interface Member {
  readonly name: string;
  readonly host: string;
  readonly netns?: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  proc?: ChildProcess;
  exited?: Promise<void>;
  /** The last lines etcd wrote to stderr, for error messages. */
  log: string[];
}

// Pids this process started and has not seen exit; SIGKILLed on exit if no teardown ran.
const live = new Set<number>();
process.once('exit', () => {
  for (const pid of live) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

const urlHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);
const isLoopback = (host: string): boolean => /^127\./.test(host) || host === '::1';

/** A port the kernel considers free on host right now (listen on 0, read it, close). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Inside a fresh test namespace nothing else listens: any port in the dynamic range will do. */
const randomPort = (): number => 20000 + (randomBytes(2).readUInt16BE(0) % 30000);

/** GET /health once: the parsed {"health": "true"|"false"} or undefined if it did not answer. */
async function health(m: Member): Promise<boolean | undefined> {
  const url = `http://${urlHost(m.host)}:${m.clientPort}/health`;
  if (m.netns) {
    // The member's address is usually not reachable from the test's namespace: ask from inside.
    const script = `require('http').get(${JSON.stringify(url)},{timeout:1000},(r)=>{let b='';r.on('data',(c)=>b+=c);` +
      `r.on('end',()=>{process.stdout.write(b)})}).on('error',()=>process.exit(1)).on('timeout',function(){this.destroy()})`;
    const r = await exec('ip', ['netns', 'exec', m.netns, process.execPath, '-e', script], { timeoutMs: 5000 });
    if (r.code !== 0) return undefined;
    return parseHealth(r.stdout);
  }
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve(parseHealth(body)));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

function parseHealth(body: string): boolean | undefined {
  try {
    return (JSON.parse(body) as { health?: unknown }).health === 'true';
  } catch {
    return undefined;
  }
}

const peerUrl = (m: Member): string => `http://${urlHost(m.host)}:${m.peerPort}`;
const clientUrl = (m: Member): string => `http://${urlHost(m.host)}:${m.clientPort}`;

function spawnMember(m: Member, members: readonly Member[], token: string): void {
  const args = [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', clientUrl(m),
    '--advertise-client-urls', clientUrl(m),
    '--listen-peer-urls', peerUrl(m),
    '--initial-advertise-peer-urls', peerUrl(m),
    '--initial-cluster', members.map((x) => `${x.name}=${peerUrl(x)}`).join(','),
    '--initial-cluster-token', token,
    '--initial-cluster-state', 'new', // ignored when the data dir already holds a member (restart)
    '--heartbeat-interval', '100',
    '--election-timeout', '1000',
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    '--log-level', 'warn',
  ];
  // ETCD_* variables would override flags: start from an environment without them.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
  // setpriv --pdeathsig: the kernel SIGKILLs etcd when this process dies, even by SIGKILL (a
  // tap timeout), when no 'exit' handler runs. It survives both execs (setpriv, ip netns exec).
  const etcd = [SETPRIV, '--pdeathsig', 'KILL', ETCD, ...args];
  const [cmd, ...argv] = m.netns ? ['ip', 'netns', 'exec', m.netns, ...etcd] : etcd;
  const proc = spawn(cmd, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  m.log = [];
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line) m.log.push(line);
    if (m.log.length > 40) m.log.splice(0, m.log.length - 40);
  });
  const pid = proc.pid;
  if (pid !== undefined) live.add(pid);
  m.proc = proc;
  m.exited = new Promise((resolve) => {
    const done = (): void => {
      if (pid !== undefined) live.delete(pid);
      if (m.proc === proc) m.proc = undefined;
      resolve();
    };
    if (proc.exitCode !== null || proc.signalCode !== null) done();
    else proc.once('exit', done);
    proc.once('error', (err) => { m.log.push(`spawn: ${err.message}`); done(); });
  });
}

async function killMember(m: Member): Promise<void> {
  const proc = m.proc;
  if (!proc) return;
  if (proc.pid !== undefined) {
    try { process.kill(proc.pid, 'SIGKILL'); } catch { /* exited meanwhile */ }
  }
  await m.exited;
}

const describe = (m: Member): string =>
  `etcd member ${m.name} (${clientUrl(m)}${m.netns ? ` in netns ${m.netns}` : ''})`;

/** Waits until every member in `which` is healthy (or, with answerOnly, answers at all). */
async function waitReady(which: readonly Member[], timeoutMs: number, answerOnly = false): Promise<void> {
  await pollUntil(async () => {
    for (const m of which) {
      if (!m.proc) throw new Error(`${describe(m)} exited: ${m.log.slice(-5).join(' | ')}`);
      const h = await health(m);
      if (answerOnly ? h === undefined : h !== true) return false;
    }
    return true;
  }, { timeoutMs, intervalMs: 50, what: `etcd ${which.map((m) => m.name).join(',')} ${answerOnly ? 'answering' : 'healthy'}` })
    .catch((err: Error) => {
      const logs = which.map((m) => `${m.name}: ${m.log.slice(-5).join(' | ')}`).join('\n');
      throw new Error(`${err.message}\n${logs}`);
    });
}

/**
 * Starts an etcd cluster of opts.members (default 1) and registers t.teardown to stop it.
 * Resolves once every member reports healthy (a leader is elected and reads go through).
 */
export async function startEtcd(t: TestLike, opts: EtcdOptions = {}): Promise<EtcdCluster> {
  const count = opts.members ?? 1;
  const hosts = opts.hosts ?? Array.from({ length: count }, () => opts.host ?? '127.0.0.1');
  if (hosts.length !== count) throw new Error(`startEtcd: ${count} members need ${count} hosts, got ${hosts.length}`);
  if (opts.netns && opts.netns.length !== count) throw new Error(`startEtcd: ${count} members need ${count} netns, got ${opts.netns.length}`);
  if (opts.netns && count > 1 && !opts.hosts) throw new Error('startEtcd: members in namespaces need hosts (addresses their peers can reach)');
  for (const h of hosts) {
    if (!opts.netns && !isLoopback(h)) throw new Error(`startEtcd: refusing to bind ${h} outside a test namespace (loopback only)`);
    if (net.isIP(h) === 0) throw new Error(`startEtcd: ${h} is not an IP address`);
  }
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'vxnet-etcd-'));
  const token = `vxt-${randomBytes(6).toString('hex')}`;
  const members: Member[] = hosts.map((host, i) => ({
    name: `m${i}`, host, ...(opts.netns ? { netns: opts.netns[i] } : {}),
    clientPort: 0, peerPort: 0, dataDir: path.join(root, `m${i}`), log: [],
  }));

  let stopped = false;
  const stop = async (): Promise<void> => {
    stopped = true;
    await Promise.all(members.map(killMember));
    await fs.rm(root, { recursive: true, force: true });
  };
  t.teardown(stop);

  // A port picked by freePort can be taken again before etcd binds it: start over with new
  // ports (and fresh data dirs) when a member dies of that; give up after a few attempts.
  for (let attempt = 1; ; attempt++) {
    for (const m of members) {
      m.clientPort = m.netns ? randomPort() : await freePort(m.host);
      do m.peerPort = m.netns ? randomPort() : await freePort(m.host); while (m.peerPort === m.clientPort);
      await fs.rm(m.dataDir, { recursive: true, force: true });
      await fs.mkdir(m.dataDir, { recursive: true, mode: 0o700 });
    }
    for (const m of members) spawnMember(m, members, token);
    try {
      await waitReady(members, readyTimeoutMs);
      break;
    } catch (err) {
      const portClash = members.some((m) => m.log.some((l) => l.includes('address already in use')));
      await Promise.all(members.map(killMember));
      if (!portClash || attempt >= 3) {
        await stop();
        throw err;
      }
    }
  }

  const member = (i: number): Member => {
    const m = members[i];
    if (!m) throw new Error(`etcd member ${i} does not exist (${members.length} members)`);
    return m;
  };
  return {
    endpoints: members.map((m) => `${urlHost(m.host)}:${m.clientPort}`),
    clientUrls: members.map(clientUrl),
    storeUrl: `etcd://${members.map((m) => `${urlHost(m.host)}:${m.clientPort}`).join(',')}`,
    kill: (i) => killMember(member(i)),
    running: (i) => member(i).proc !== undefined,
    async restart(i) {
      if (stopped) throw new Error('etcd cluster already stopped');
      const m = member(i);
      await killMember(m);
      spawnMember(m, members, token);
      const up = members.filter((x) => x.proc !== undefined).length;
      await waitReady([m], readyTimeoutMs, up <= members.length / 2);
    },
    stop,
  };
}
