// vxnet's DNS server for bench/dns.mjs: a zone of NAMES synthetic endpoints host-1..host-NAMES
// (addresses 10.210.x.y, as /work/shared/bench/dns-dnsmasq-baseline.sh gives dnsmasq), served by
// dns/server.ts on ADDR:PORT, in one process or in WORKERS `cluster` workers sharing the
// sockets (Node 20 has no SO_REUSEPORT). Prints "ready" once every worker listens; SIGTERM
// stops it. With UPSTREAM (ADDR:PORT[,ADDR:PORT...]), the zone is `vxnet` and every name of
// DOMAIN goes to the forwarder (with its cache) instead: the cached-forwarding measurement, and
// with two upstreams (one mute) the racing one. BENCH_DNS_METRICS=1 counts queries as vxnetd
// does (dns/metrics.ts), so bench/dns.mjs can put the cost of that beside the server without it.
//
//   node dns-server.cjs ADDR PORT DOMAIN NAMES WORKERS [UPSTREAM[,UPSTREAM]]
import cluster from 'node:cluster';
import { Forwarder } from '../dns/forwarder';
import { createHandler } from '../dns/handler';
import { countedHandler, queryTable } from '../dns/metrics';
import { DnsServer } from '../dns/server';
import { hostPort } from '../dns/upstreams';
import { Zone } from '../dns/zone';

const [addr, portText, domain, namesText, workersText, upstreamText] = process.argv.slice(2);
const names = Number(namesText), workers = Number(workersText);
if (!addr || !domain || !(names > 0) || !(workers > 0)) {
  process.stderr.write('usage: dns-server ADDR PORT DOMAIN NAMES WORKERS\n');
  process.exit(64);
}
const listen = hostPort(`${addr}:${portText}`, 'listen address');

if (workers > 1 && cluster.isPrimary) {
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    w.on('message', (m) => { if (m === 'ready' && ++ready === workers) process.stdout.write('ready\n'); });
    w.on('exit', (code) => { if (code) { process.stderr.write(`worker exited ${code}\n`); process.exit(1); } });
  }
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const zone = new Zone({ domain: upstreamText ? 'vxnet' : domain });
  for (let i = 1; i <= names; i++) {
    zone.set(`e${i}`, { name: `host-${i}`, network: 'bench', addresses: [{ family: 4, value: (10n << 24n) | (210n << 16n) | (BigInt(Math.floor(i / 250)) << 8n) | BigInt((i % 250) + 1) }], ports: [] });
  }
  const forwarder = upstreamText ? new Forwarder({ upstreams: upstreamText.split(',').map((u) => hostPort(u, 'upstream')) }) : undefined;
  // BENCH_DNS_METRICS=1: the handler counted as vxnetd counts it (dns/metrics.ts), to measure what that costs.
  const plain = createHandler({ zone, forwarder });
  const handler = process.env.BENCH_DNS_METRICS === '1' ? countedHandler(plain, { queries: queryTable(), forwarded: () => undefined }) : plain;
  const server = new DnsServer({ listen: [listen], handler, shared: workers > 1 });
  (forwarder ? forwarder.start() : Promise.resolve()).then(() => server.start()).then(() => {
    if (process.send) process.send('ready');
    else process.stdout.write('ready\n');
  }, (err: Error) => { process.stderr.write(`${err.message}\n`); process.exit(1); });
  process.on('SIGTERM', () => { void server.stop().then(() => process.exit(0)); });
}
