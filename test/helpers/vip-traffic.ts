// Traffic for the VIP tests, run as small Node programs inside a namespace of the test's own
// (`ip netns exec NS node -e ...`; `ip netns exec` execs node in place, so the pid held is
// node's and is killed by pid at teardown):
// - `serveEcho`: a backend answering its name to UDP datagrams (port `udp`) and to HTTP GETs
//   (port `http`), on IPv4 and IPv6 (a dual-stack socket on "::");
// - `udpClient`: a client holding one UDP socket per family (a fixed source port: one conntrack
//   flow, so every datagram goes where the first went) and able to send from a fresh socket (a
//   new flow, balanced again). Commands on stdin, one answer line each on stdout.
import { type ChildProcess, spawn } from 'node:child_process';
import type { TestLike } from './netns';

const ECHO = `
const [name, udp, http] = process.argv.slice(1);
const dgram = require('node:dgram');
const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
s.on('message', (m, r) => s.send(name, r.port, r.address));
s.bind(Number(udp), '::');
if (http !== '0') require('node:http').createServer((q, a) => a.end(name + '\\n')).listen({ port: Number(http), host: '::', ipv6Only: false });
`;

/** A backend answering `name` on UDP `udp` and (unless 0) HTTP `http`, in namespace `ns`. */
export function serveEcho(t: TestLike, ns: string, name: string, udp: number, http = 0): void {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', ECHO, name, String(udp), String(http)], { stdio: 'ignore' });
  t.teardown(() => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
}

const CLIENT = `
const dgram = require('node:dgram');
const sticky = {};
const readline = require('node:readline');
const ask = (sock, ip, port, close) => new Promise((resolve) => {
  const done = (answer) => { clearTimeout(timer); sock.removeAllListeners('message'); if (close) sock.close(); resolve(answer); };
  const timer = setTimeout(() => done('timeout'), 1500);
  sock.on('message', (m) => done(m.toString()));
  sock.send('hi', Number(port), ip);
});
const socketFor = (ip) => dgram.createSocket(ip.includes(':') ? 'udp6' : 'udp4');
let chain = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  chain = chain.then(async () => {
    const [cmd, ip, port] = line.trim().split(' ');
    let answer;
    if (cmd === 'fresh') answer = await ask(socketFor(ip), ip, port, true);
    else {
      const fam = ip.includes(':') ? 6 : 4;
      if (!sticky[fam]) { sticky[fam] = socketFor(ip); await new Promise((r) => sticky[fam].bind(0, r)); }
      answer = await ask(sticky[fam], ip, port, false);
    }
    process.stdout.write(answer + '\\n');
  });
});
`;

export interface UdpClient {
  /** A datagram from the client's one socket of the family (one flow); the answer or 'timeout' (1.5 s). */
  sticky(ip: string, port: number): Promise<string>;
  /** A datagram from a new socket (a new flow). */
  fresh(ip: string, port: number): Promise<string>;
}

/** A UDP client in namespace `ns` (`host` for the host's own namespace), killed by pid at teardown. */
export function udpClient(t: TestLike, ns: string | 'host'): UdpClient {
  const p: ChildProcess = ns === 'host'
    ? spawn(process.execPath, ['-e', CLIENT], { stdio: ['pipe', 'pipe', 'ignore'] })
    : spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT], { stdio: ['pipe', 'pipe', 'ignore'] });
  t.teardown(() => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
  const waiting: Array<(line: string) => void> = [];
  let rest = '';
  p.stdout!.on('data', (b: Buffer) => {
    const lines = (rest + b.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) waiting.shift()?.(l);
  });
  const ask = (cmd: string, ip: string, port: number): Promise<string> => new Promise((resolve) => {
    waiting.push(resolve);
    p.stdin!.write(`${cmd} ${ip} ${port}\n`);
  });
  return { sticky: (ip, port) => ask('sticky', ip, port), fresh: (ip, port) => ask('fresh', ip, port) };
}
