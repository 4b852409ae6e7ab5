// Config generation for the edge (issue 14): 1,000 apps x 3 servers through the pure path
// vxnet-lb runs on every catalog change: labels -> model (edge/labels.ts) -> placed
// (edge/slots.ts) -> haproxy.cfg text (edge/config.ts), and the classifier (edge/diff.ts) for
// one server added with the 1,000 apps present. Bundled and run by bench/edge.mjs; prints one
// JSON line: the median milliseconds of each phase over ROUNDS runs (after one warm-up).
import type { Endpoint } from '../catalog/endpoint';
import { renderConfig } from '../edge/config';
import { classify } from '../edge/diff';
import { edgeModel } from '../edge/labels';
import { place } from '../edge/slots';

const APPS = Number(process.argv[2] ?? 1000);
const SERVERS = Number(process.argv[3] ?? 3);
const ROUNDS = Number(process.argv[4] ?? 15);

const endpoint = (app: number, k: number): Endpoint => ({
  id: `h${k}/blue/c${app}-${k}`, host: `h${k}`, runtime: 'cni', containerId: `c${app}-${k}`, network: 'blue', name: `app${app}-${k}`,
  aliases: [], addresses: [`10.${(app >> 8) & 255}.${app & 255}.${k + 2}`], ports: [{ port: 8080, protocol: 'tcp' }], service: `app${app}`,
  labels: { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: `app${app}.example`, ...(app % 10 === 0 ? { HAPROXY_0_PATH: '/api', HAPROXY_0_HEALTHCHECK_PATH: '/health' } : {}) },
});

const endpoints: Endpoint[] = [];
for (let a = 0; a < APPS; a++) for (let k = 0; k < SERVERS; k++) endpoints.push(endpoint(a, k));
const opts = { group: 'external', strictMode: false };
const cfg = { statsSocket: '/run/vxnet-lb/admin.sock', httpPort: 80, httpBind: '*', hardStopAfterS: 30 };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const times: Record<string, number[]> = { labels: [], place: [], render: [], total: [], change: [] };
let bytes = 0;
for (let r = 0; r <= ROUNDS; r++) {
  const t0 = performance.now();
  const { model } = edgeModel(endpoints, opts);
  const t1 = performance.now();
  const placed = place(undefined, model, 8);
  const t2 = performance.now();
  const text = renderConfig(placed, cfg);
  const t3 = performance.now();
  bytes = text.length;
  // One change with everything present: a fourth server for one app, as the controller sees it
  // (the whole catalog -> model -> placed on the running one -> classify).
  const more = [...endpoints, endpoint(7, SERVERS)];
  const t4 = performance.now();
  const next = place(placed, edgeModel(more, opts).model, 8);
  const change = classify(placed, next);
  const t5 = performance.now();
  if (change.kind !== 'servers' || change.ops.length !== 1) throw new Error(`expected one server op, got ${JSON.stringify(change).slice(0, 200)}`);
  if (r === 0) continue;
  times.labels!.push(t1 - t0); times.place!.push(t2 - t1); times.render!.push(t3 - t2); times.total!.push(t3 - t0); times.change!.push(t5 - t4);
}
process.stdout.write(`${JSON.stringify({ apps: APPS, servers: SERVERS, rounds: ROUNDS, bytes, ...Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) })}\n`);
