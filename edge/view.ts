// What vxnet-lb serves, as an operator reads it (`vxnetctl lb ls`, GET /v1/lb): frontends with
// their routing rules, backends with their servers, each server with its endpoint and the
// state HAProxy reports for its slot. Built from the running placed model (what vxnet-lb gave
// HAProxy), the drains in progress and `show stat` (what HAProxy makes of it). Pure.
import { bindOf, ruleOrder, serverAddr, type ConfigOptions } from './config';
import type { Server } from './model';
import type { PlacedModel } from './slots';
import { serverState, type ServerState, type StatRow } from './stat';

export interface LbServerView {
  readonly slot: string;
  /** The endpoint id (HOST/NETWORK/CONTAINERID). */
  readonly endpoint: string;
  /** ADDRESS:PORT ([v6]:PORT). */
  readonly address: string;
  readonly weight: number;
  /** up, down, drain, maint, nolb, unknown (HAProxy's status in one word; unknown: no `show stat`). */
  readonly state: ServerState;
  /** HAProxy's own words for it ("no check", "UP", "DOWN 1/2", ...); "" without `show stat`. */
  readonly status: string;
  readonly sessions: number;
  /** Leaving: no new requests, those in flight finish. */
  readonly draining: boolean;
}

export interface LbBackendView {
  readonly name: string;
  readonly mode: 'http' | 'tcp';
  readonly balance: string;
  readonly sticky: boolean;
  /** `GET /path every 2000 ms rise 2 fall 3`, `tcp every ...`; absent: no check. */
  readonly health?: string;
  /** HAProxy's status of the backend (UP, DOWN); "" without `show stat`. */
  readonly status: string;
  readonly slots: number;
  readonly servers: readonly LbServerView[];
}

export interface LbRuleView {
  readonly vhosts: readonly string[];
  readonly path?: string;
  readonly redirectToHttps?: boolean;
  readonly backend: string;
}

export interface LbFrontendView {
  readonly name: string;
  readonly bind: string;
  readonly mode: 'http' | 'tcp';
  /** In the order HAProxy evaluates them; a service port's frontend has one rule, no vhosts. */
  readonly rules: readonly LbRuleView[];
}

export interface LbView {
  readonly haproxy: { readonly pid: number | undefined; readonly up: boolean };
  readonly reloads: number;
  readonly runtimeChanges: number;
  readonly refused: number;
  readonly frontends: readonly LbFrontendView[];
  readonly backends: readonly LbBackendView[];
}

export interface ViewInput {
  readonly running: PlacedModel | undefined;
  /** Slots being drained: `BACKEND/SLOT` -> the leaving server. */
  readonly drains: ReadonlyMap<string, Server>;
  /** `show stat` rows; undefined when HAProxy did not answer. */
  readonly stat: readonly StatRow[] | undefined;
  readonly config: Pick<ConfigOptions, 'httpBind' | 'httpPort'>;
  readonly pid: number | undefined;
  readonly counts: { readonly reloads: number; readonly runtimeChanges: number; readonly refused: number };
}

const healthText = (h: NonNullable<PlacedModel['backends'][number]['health']>): string =>
  `${h.path ? `GET ${h.path}` : 'tcp'} every ${h.intervalMs} ms rise ${h.rise} fall ${h.fall}`;

export function lbView(i: ViewInput): LbView {
  const stat = new Map((i.stat ?? []).map((r) => [`${r.proxy}/${r.server}`, r]));
  const backends = [...(i.running?.backends ?? [])];
  const vhosted = backends.filter((b) => b.vhosts.length).sort(ruleOrder);
  const frontends: LbFrontendView[] = [{
    name: 'http_in', bind: bindOf(i.config.httpBind, i.config.httpPort), mode: 'http',
    rules: vhosted.map((b) => ({ vhosts: b.vhosts, ...(b.path ? { path: b.path } : {}), ...(b.redirectToHttps ? { redirectToHttps: true } : {}), backend: b.name })),
  }];
  for (const b of backends) {
    if (b.servicePort !== undefined) frontends.push({ name: `${b.name}_port`, bind: bindOf(b.bindAddr, b.servicePort), mode: b.mode, rules: [{ vhosts: [], backend: b.name }] });
  }
  return {
    haproxy: { pid: i.pid, up: i.stat !== undefined },
    ...i.counts,
    frontends,
    backends: backends.map((b): LbBackendView => {
      const servers: LbServerView[] = [];
      b.slots.forEach((s, k) => {
        const slot = `s${k + 1}`;
        const drained = i.drains.get(`${b.name}/${slot}`);
        const server = s ?? drained;
        if (!server) return;
        const row = stat.get(`${b.name}/${slot}`);
        servers.push({
          slot, endpoint: server.id, address: serverAddr(server), weight: server.weight,
          state: row ? serverState(row.status) : 'unknown', status: row?.status ?? '', sessions: row?.scur ?? 0, draining: !s && drained !== undefined,
        });
      });
      return {
        name: b.name, mode: b.mode, balance: b.balance, sticky: b.sticky, ...(b.health ? { health: healthText(b.health) } : {}),
        status: stat.get(`${b.name}/BACKEND`)?.status ?? '', slots: b.slots.length, servers,
      };
    }),
  };
}
