// vxnet-lb's command line, parsed once into typed values. Pure: the environment is an argument.
import { parseArgs } from 'node:util';
import { parseEtcdUrl } from '../etcd/url';
import { parseIp } from '../ipam/addr';
import type { Level } from '../lib/log';
import { UsageError } from '../lib/usage';
import { VERSION } from '../lib/version';
import { DEFAULT_GROUP } from './labels';
import { DEFAULT_MIN_SLOTS } from './slots';

export const DEFAULT_API = 'http://127.0.0.1:8123';
export const DEFAULT_DIR = '/run/vxnet-lb';
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9091';

export interface LbFlags {
  readonly help: boolean;
  readonly api: string;
  readonly group: string;
  readonly strictMode: boolean;
  readonly dir: string;
  readonly haproxy: string;
  readonly httpPort: number;
  readonly httpBind: string;
  readonly statsListen: string | undefined;
  readonly drainTimeoutMs: number;
  readonly minSlots: number;
  readonly keep: number;
  readonly hardStopAfterS: number;
  readonly keepHaproxy: boolean;
  readonly printConfig: boolean;
  readonly json: boolean;
  readonly logLevel: Level;
  /** --cert-dir: PEM files (key and chain) for the HTTPS frontend; undefined: none. */
  readonly certDir: string | undefined;
  /** --https-port: the HTTPS frontend's port (default 443), served when a certificate exists. */
  readonly httpsPort: number;
  /** etcd endpoints (host:port) of --store: follow every host's endpoints from etcd instead of --api. */
  readonly store: string[] | undefined;
  /** `ADDRESS:PORT` of /metrics and /v1/lb; undefined: none. */
  readonly metricsListen: string | undefined;
}

export const HELP = `vxnet-lb ${VERSION}: the vxnet edge balancer. Follows the endpoint catalog of the local
vxnetd (or every host's, from etcd with --store) and serves the endpoints that carry
Marathon-LB's HAPROXY_* labels through HAProxy, which
it starts (master-worker) and supervises. Containers starting and stopping change HAProxy's
servers through its Runtime API, with no reload; other changes reload it without dropping a
connection. A server leaving is drained first. See edge/README.md for the labels.
Prometheus metrics on GET /metrics and what it serves on GET /v1/lb (vxnetctl lb ls), on
--metrics-listen.

Usage: vxnet-lb [options]

Options:
  --api URL               vxnetd's HTTP API (default $VXNET_API, else ${DEFAULT_API}); its
                          /v1/endpoints?watch=1 stream is followed, reconnecting when it drops
  --group NAME            serve endpoints whose HAPROXY_GROUP (or HAPROXY_n_GROUP) names NAME
                          (default ${DEFAULT_GROUP}); * serves every endpoint with HAPROXY_n labels
  --strict-mode           serve a port only when HAPROXY_n_ENABLED=true
  --dir DIR               config, kept configs, state and sockets (default ${DEFAULT_DIR})
  --haproxy PATH          the haproxy binary (default haproxy, Debian 12's 2.6)
  --http-port N           the shared HTTP frontend's port for HAPROXY_n_VHOST (default 80)
  --http-bind ADDR        its address (default *, all)
  --stats-listen A:P      HAProxy's stats page (/haproxy?stats) on this address (default none)
  --drain-timeout SEC     how long a leaving server may finish its requests (default 10)
  --min-slots N           server slots per backend (default ${DEFAULT_MIN_SLOTS}); a backend outgrowing
                          its slots reloads with twice as many
  --keep N                previous configs kept as haproxy.cfg.1..N (default 5)
  --hard-stop-after SEC   how long an old worker may serve its connections after a reload (default 30)
  --keep-haproxy          on SIGTERM/SIGINT leave HAProxy serving (a restarted vxnet-lb takes it
                          over without a reload); by default it is stopped softly. Killed
                          (SIGKILL, a crash), vxnet-lb always leaves it serving.
  --print-config          read the catalog once, print the config it gives, and exit
                          (with --json: the model, its slots and the label notes)
  --json                  with --print-config
  --log-level LEVEL       debug, info (default), warn, error
  --cert-dir DIR          PEM files (certificate, chain, key; or the key beside it as FILE.key)
                          for the HTTPS frontend, picked by the names they hold (SNI); the first
                          by name is the default. Checked before use: a bad one is logged and
                          left out. HAPROXY_n_SSL_CERT adds files per backend (see edge/README.md)
  --https-port N          the HTTPS frontend's port (default 443, address --http-bind); it
                          exists only while some certificate does
  --store etcd://HOST:PORT[,HOST:PORT...]
                          follow every host's endpoints straight from the cluster store (read
                          only: vxnet-lb publishes nothing) instead of a vxnetd's stream (--api)
  --metrics-listen A:P    GET /metrics (Prometheus text) and GET /v1/lb (what vxnetctl lb ls
                          shows) on this address (default ${DEFAULT_METRICS_LISTEN}; none: off)
  --help                  this text
`;

function num(v: string | undefined, flag: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${flag} ${JSON.stringify(v)}: expected a whole number from ${min} to ${max}`);
  return Number(v);
}

export function parseFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): LbFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv], strict: true, allowPositionals: false,
      options: {
        help: { type: 'boolean' }, api: { type: 'string' }, group: { type: 'string' }, 'strict-mode': { type: 'boolean' },
        dir: { type: 'string' }, haproxy: { type: 'string' }, 'http-port': { type: 'string' }, 'http-bind': { type: 'string' },
        'stats-listen': { type: 'string' }, 'drain-timeout': { type: 'string' }, 'min-slots': { type: 'string' }, keep: { type: 'string' },
        'hard-stop-after': { type: 'string' }, 'keep-haproxy': { type: 'boolean' }, 'print-config': { type: 'boolean' },
        json: { type: 'boolean' }, 'log-level': { type: 'string' },
        'cert-dir': { type: 'string' }, 'https-port': { type: 'string' },
        store: { type: 'string' }, 'metrics-listen': { type: 'string' },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message.split('\n')[0] as string : String(err));
  }
  const s = (k: string): string | undefined => values[k] as string | undefined;
  const api = s('api') ?? env.VXNET_API ?? DEFAULT_API;
  let url: URL;
  try { url = new URL(api); } catch { throw new UsageError(`--api ${JSON.stringify(api)}: not a URL (http://HOST:PORT)`); }
  if (url.protocol !== 'http:') throw new UsageError(`--api ${JSON.stringify(api)}: only http:// is served by vxnetd`);
  const group = s('group') ?? DEFAULT_GROUP;
  if (!/^(\*|[A-Za-z0-9_.-]+)$/.test(group)) throw new UsageError(`--group ${JSON.stringify(group)}: a group name (letters, digits, _ . -) or *`);
  const httpBind = s('http-bind') ?? '*';
  if (httpBind !== '*' && !parseIp(httpBind)) throw new UsageError(`--http-bind ${JSON.stringify(httpBind)}: an IP address or *`);
  const stats = s('stats-listen');
  if (stats !== undefined && !/^(\d{1,3}(\.\d{1,3}){3}|\*|\[[0-9a-fA-F:]+\]):\d{1,5}$/.test(stats)) throw new UsageError(`--stats-listen ${JSON.stringify(stats)}: ADDRESS:PORT`);
  if (s('cert-dir') === '') throw new UsageError('--cert-dir "": a directory of PEM files');
  const storeText = s('store');
  let store: string[] | undefined;
  if (storeText !== undefined) {
    if (s('api') !== undefined) throw new UsageError('--store and --api: one catalog source, not both');
    try { store = parseEtcdUrl(storeText).endpoints; } catch (err) { throw new UsageError(`--store: ${err instanceof Error ? err.message : String(err)}`); }
  }
  const metricsText = s('metrics-listen') ?? DEFAULT_METRICS_LISTEN;
  if (metricsText !== 'none' && !/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}$/.test(metricsText)) {
    throw new UsageError(`--metrics-listen ${JSON.stringify(metricsText)}: ADDRESS:PORT (an IP address) or none`);
  }
  const level = s('log-level') ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`--log-level ${JSON.stringify(level)}: debug, info, warn or error`);
  return {
    help: values.help === true,
    api: url.href.replace(/\/$/, ''),
    group,
    strictMode: values['strict-mode'] === true,
    dir: s('dir') ?? DEFAULT_DIR,
    haproxy: s('haproxy') ?? 'haproxy',
    httpPort: num(s('http-port'), '--http-port', 1, 65535, 80),
    httpBind,
    statsListen: stats,
    drainTimeoutMs: num(s('drain-timeout'), '--drain-timeout', 0, 3600, 10) * 1000,
    minSlots: num(s('min-slots'), '--min-slots', 1, 4096, DEFAULT_MIN_SLOTS),
    keep: num(s('keep'), '--keep', 0, 100, 5),
    hardStopAfterS: num(s('hard-stop-after'), '--hard-stop-after', 1, 86_400, 30),
    keepHaproxy: values['keep-haproxy'] === true,
    printConfig: values['print-config'] === true,
    json: values.json === true,
    logLevel: level as Level,
    certDir: s('cert-dir'),
    httpsPort: num(s('https-port'), '--https-port', 1, 65535, 443),
    store,
    metricsListen: metricsText === 'none' ? undefined : metricsText,
  };
}
