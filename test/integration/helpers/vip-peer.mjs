// Run inside a test namespace (`ip netns exec NS node vip-peer.mjs ...`) by the VIP tests.
//   serve NAME TCPPORT UDPPORT   TCP: writes "NAME\n" on connect, then echoes; UDP: answers
//                                 "NAME"; IPv4 and IPv6. Prints "ready" once listening.
//   tcp HOST PORT COUNT          COUNT sequential connections; prints a JSON array of the first
//                                 line each got, or "ERR:<code>:<ms>" for a failed connect.
//   udp HOST PORT COUNT          the same over UDP (a fresh socket per request).
//   hold HOST PORT               one connection kept open: prints its first line, then each
//                                 line read from stdin is sent and its echo printed.
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';

const [mode, a, b, c] = process.argv.slice(2);

if (mode === 'serve') {
  const name = a;
  const tcp = net.createServer((s) => { s.on('error', () => {}); s.write(`${name}\n`); s.on('data', (d) => s.write(d)); });
  const udp = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_m, r) => udp.send(name, r.port, r.address));
  let n = 0;
  const up = () => { if (++n === 2) console.log('ready'); };
  tcp.listen({ port: Number(b), host: '::', ipv6Only: false }, up);
  udp.bind({ port: Number(c), address: '::' }, up);
} else if (mode === 'tcp') {
  const out = [];
  for (let i = 0; i < Number(c); i++) {
    const t0 = Date.now();
    out.push(await new Promise((resolve) => {
      const s = net.connect({ host: a, port: Number(b) });
      let buf = '';
      const timer = setTimeout(() => { s.destroy(); resolve(`ERR:TIMEOUT:${Date.now() - t0}`); }, 3000);
      s.on('data', (d) => { buf += d; if (buf.includes('\n')) { clearTimeout(timer); s.end(); resolve(buf.split('\n')[0]); } });
      s.on('error', (e) => { clearTimeout(timer); resolve(`ERR:${e.code}:${Date.now() - t0}`); });
    }));
  }
  console.log(JSON.stringify(out));
} else if (mode === 'udp') {
  const out = [];
  for (let i = 0; i < Number(c); i++) {
    out.push(await new Promise((resolve) => {
      const s = dgram.createSocket(net.isIPv6(a) ? 'udp6' : 'udp4');
      const timer = setTimeout(() => { s.close(); resolve('ERR:TIMEOUT'); }, 2000);
      s.on('message', (m) => { clearTimeout(timer); s.close(); resolve(m.toString()); });
      s.on('error', (e) => { clearTimeout(timer); s.close(); resolve(`ERR:${e.code}`); });
      s.send('?', Number(b), a);
    }));
  }
  console.log(JSON.stringify(out));
} else if (mode === 'hold') {
  const s = net.connect({ host: a, port: Number(b) });
  let first = true;
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { console.log(first ? `HELLO ${buf.slice(0, i)}` : `ECHO ${buf.slice(0, i)}`); first = false; buf = buf.slice(i + 1); }
  });
  s.on('error', (e) => { console.log(`ERR ${e.code}`); process.exit(1); });
  s.on('close', () => { console.log('CLOSED'); process.exit(0); });
  readline.createInterface({ input: process.stdin }).on('line', (l) => s.write(`${l}\n`));
} else {
  console.error(`vip-peer: unknown mode ${mode}`);
  process.exit(2);
}
