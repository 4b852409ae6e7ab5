// vxnet-lb: the edge balancer (edge/README.md). Flags: edge/flags.ts and `vxnet-lb --help`.
// Composition only: the catalog source (vxnetd's stream, or etcd with --store), HAProxy, the
// controller between, and the local listener for /metrics and /v1/lb.
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { EndpointCatalog } from '../catalog/catalog';
import { ClusterEndpoints } from '../catalog/cluster';
import { EtcdClient } from '../etcd/client';
import { startLbApi, type LbApi } from '../edge/api';
import { DEFAULT_CONFIG, renderConfig, type ConfigOptions } from '../edge/config';
import { CertFiles, withTls } from '../edge/certs';
import { EdgeController } from '../edge/controller';
import { CatalogFeed } from '../edge/feed';
import { HELP, parseFlags, type LbFlags } from '../edge/flags';
import { Haproxy } from '../edge/haproxy';
import { edgeModel } from '../edge/labels';
import { EdgeMetrics } from '../edge/metrics';
import { formatNote } from '../edge/model';
import { place } from '../edge/slots';
import { asVxnetError } from '../lib/errors';
import { createLogger, type Logger } from '../lib/log';
import { UsageError } from '../lib/usage';

/** The catalog source: vxnetd's stream (--api) or every host's endpoints from etcd (--store, read only). */
interface Source {
  start(waitMs?: number): Promise<void>;
  stop(): Promise<void>;
  reconnects(): number;
  readonly what: string;
}

function catalogSource(f: LbFlags, catalog: EndpointCatalog, log: Logger): Source {
  if (f.store) {
    const client = EtcdClient.connect(f.store);
    const cluster = new ClusterEndpoints({ client, catalog, host: `vxnet-lb@${hostname()}`, readOnly: true, log: log.child({ component: 'catalog' }) });
    return {
      what: `etcd://${f.store.join(',')}`,
      start: async (waitMs = 5000) => {
        await cluster.start();
        if (!(await cluster.synced(waitMs))) log.warn('no answer from etcd yet; starting with an empty catalog and following it when etcd answers', { store: f.store });
      },
      stop: async () => { try { await cluster.stop(); } finally { client.close(); } },
      reconnects: () => cluster.interruptions,
    };
  }
  const feed = new CatalogFeed({ api: f.api, catalog, log });
  return { what: f.api, start: (waitMs) => feed.start(waitMs), stop: async () => feed.stop(), reconnects: () => feed.reconnects };
}

async function printConfig(f: LbFlags, config: ConfigOptions): Promise<number> {
  const catalog = new EndpointCatalog();
  const source = catalogSource(f, catalog, createLogger('vxnet-lb', 'error'));
  let got = false;
  const off = catalog.subscribe(() => { got = true; });
  await source.start(3000);
  await source.stop();
  off();
  if (!got && catalog.size === 0 && !f.store) {
    // An empty catalog and an unreachable vxnetd look alike from here; ask once more to tell.
    const ok = await fetch(`${f.api}/v1/version`).then((r) => r.ok, () => false);
    if (!ok) throw new UsageError(`cannot reach vxnetd's HTTP API at ${f.api} (--api)`);
  }
  const labelled = edgeModel(catalog.list(), { group: f.group, strictMode: f.strictMode });
  // The certificates as the running edge would check them (a bad one is a note and left out).
  const certs = new CertFiles();
  const dirCerts = f.certDir ? certs.dir(f.certDir) : [];
  const tls = withTls(labelled.model, (p) => certs.check(p), dirCerts.flatMap((d) => (d.check.ok ? [d.check.cert] : [])));
  const model = tls.model;
  const notes = [...labelled.notes, ...tls.notes];
  for (const d of dirCerts) if (!d.check.ok) process.stderr.write(`vxnet-lb: --cert-dir: certificate ${d.path} ${d.check.reason}; left out\n`);
  const placed = place(undefined, model, f.minSlots);
  if (f.json) process.stdout.write(`${JSON.stringify({ backends: placed.backends, notes: notes.map((n) => ({ ...n, text: formatNote(n) })) }, null, 2)}\n`);
  else {
    for (const n of notes) process.stderr.write(`vxnet-lb: ${formatNote(n)}\n`);
    process.stdout.write(renderConfig(placed, config));
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const f = parseFlags(argv, process.env);
  if (f.help) { process.stdout.write(HELP); return 0; }
  const paths = {
    binary: f.haproxy, config: join(f.dir, 'haproxy.cfg'), masterSocket: join(f.dir, 'master.sock'),
    statsSocket: join(f.dir, 'admin.sock'), pidFile: join(f.dir, 'haproxy.pid'),
  };
  const config: ConfigOptions = {
    ...DEFAULT_CONFIG, statsSocket: paths.statsSocket, httpPort: f.httpPort, httpBind: f.httpBind, hardStopAfterS: f.hardStopAfterS,
    ...(f.statsListen ? { statsListen: f.statsListen } : {}),
    httpsPort: f.httpsPort, crtListDir: f.dir,
  };
  if (f.printConfig) return printConfig(f, config);

  const log = createLogger('vxnet-lb', f.logLevel);
  mkdirSync(f.dir, { recursive: true, mode: 0o700 });
  const catalog = new EndpointCatalog();
  const source = catalogSource(f, catalog, log);
  const haproxy = new Haproxy(paths, log);
  const metrics = new EdgeMetrics(() => source.reconnects());
  const controller = new EdgeController({
    catalog, labels: { group: f.group, strictMode: f.strictMode }, config, dir: f.dir, haproxy, log,
    drainTimeoutMs: f.drainTimeoutMs, minSlots: f.minSlots, keep: f.keep, events: metrics,
    ...(f.certDir ? { certDir: f.certDir } : {}),
  });
  await source.start();
  await controller.start();
  let api: LbApi | undefined;
  if (f.metricsListen) {
    // Not fatal: the edge serves traffic without its metrics (a port taken is logged).
    api = await startLbApi({ listen: f.metricsListen, controller, config, metrics, masterPid: () => haproxy.masterPid(), log })
      .catch((err: unknown) => { log.error('no /metrics and /v1/lb', { error: err instanceof Error ? err.message : String(err) }); return undefined; });
  }
  log.info('vxnet-lb running', { catalog: source.what, dir: f.dir, group: f.group, haproxy: haproxy.masterPid(), ...(api ? { metrics: f.metricsListen } : {}) });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await api?.close();
  await source.stop();
  await controller.stop();
  if (f.keepHaproxy) { haproxy.detach(); log.info('stopped; HAProxy left serving', { pid: haproxy.masterPid() }); }
  else { await haproxy.stop(); log.info('stopped, and HAProxy with it'); }
  return 0;
}

main(process.argv.slice(2)).then((code) => { process.exit(code); }, (err: unknown) => {
  if (err instanceof UsageError) { process.stderr.write(`vxnet-lb: ${err.message}\n`); process.exit(2); }
  const e = asVxnetError(err);
  process.stderr.write(`vxnet-lb: ${e.message}${e.details ? `\n${e.details}` : ''}\n`);
  process.exit(1);
});
