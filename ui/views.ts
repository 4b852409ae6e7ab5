// The page's sections, each drawn from its resource (or the error that resource got): plain
// DOM, rebuilt whole on each refresh (the sections are small; the allocation table shows at
// most MAX_ROWS rows).
import type { ApiError } from './api';
import type { Allocation, Big, Block, DnsRecords, History, HistoryEvent, Host, Network, Summary, Vips } from './types';
import { h } from './dom';
import { ago, blocksByHost, clock, compareAddresses, count, num, percent, searchAllocations, shortId, sortAllocations, timeline } from './format';

export const MAX_ROWS = 500;

/** A resource as the page holds it: not fetched yet, its data, or why it failed. */
export type Loaded<T> = { state: 'loading' } | { state: 'ok'; data: T } | { state: 'error'; error: ApiError };

/** The placeholder for a resource without data (loading, or its error); undefined when it has data. */
function pending<T>(r: Loaded<T>): HTMLElement | undefined {
  if (r.state === 'loading') return h('p', { class: 'muted' }, 'Loading…');
  if (r.state === 'error') return h('p', { class: 'error', role: 'alert' }, r.error.status === 404 ? `Not available from this vxnetd (${r.error.message})` : `${r.error.code}: ${r.error.message}`);
  return undefined;
}

/** A usage bar: used of size, the text beside it. */
export function usage(used: number | null, size: Big): HTMLElement {
  if (used === null) return h('span', { class: 'muted' }, `${count(size)} addresses, use not published`);
  const fill = h('span', { class: 'fill' });
  const ratio = num(size) > 0 ? used / num(size) : 0;
  fill.style.width = `${Math.min(100, Math.max(ratio > 0 ? 1 : 0, ratio * 100)).toFixed(1)}%`;
  if (ratio >= 0.9) fill.classList.add('hot');
  else if (ratio >= 0.75) fill.classList.add('warm');
  return h('div', { class: 'usage', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': num(size), 'aria-valuenow': used, 'aria-label': `${count(used)} of ${count(size)} used` },
    h('div', { class: 'bar' }, fill),
    h('span', { class: 'usage-text' }, `${count(used)} / ${count(size)} used`, h('span', { class: 'muted' }, ` (${percent(used, size)})`)));
}

function badge(text: string, kind: 'ok' | 'warn' | 'bad' | 'info'): HTMLElement {
  return h('span', { class: `badge ${kind}` }, text);
}

export function renderSummary(r: Loaded<Summary>): HTMLElement[] {
  const s = r.state === 'ok' ? r.data : undefined;
  const card = (label: string, value: number | undefined, id: string): HTMLElement =>
    h('div', { class: 'card', id: `count-${id}` }, h('div', { class: 'card-value' }, value === undefined ? '–' : count(value)), h('div', { class: 'card-label' }, label));
  return [card('networks', s?.networks, 'networks'), card('hosts', s?.hosts, 'hosts'), card('allocations', s?.allocations, 'allocations'),
    card('endpoints', s?.endpoints, 'endpoints'), card('VIPs', s?.vips, 'vips')];
}

export function renderNetworks(r: Loaded<Network[]>): HTMLElement {
  const p = pending(r);
  if (p || r.state !== 'ok') return p!;
  if (r.data.length === 0) return h('p', { class: 'muted' }, 'No networks yet.');
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Network'), h('th', {}, 'Mode'), h('th', {}, 'Subnets'), h('th', { class: 'wide' }, 'Pool usage'), h('th', { class: 'num' }, 'Free'))),
    h('tbody', {}, r.data.map((n) => h('tr', { 'data-network': n.name },
      h('td', { class: 'strong' }, n.name),
      h('td', {}, badge(n.mode, 'info'), n.vni !== undefined && n.vni !== null ? h('span', { class: 'muted' }, ` vni ${n.vni}`) : null),
      h('td', { class: 'mono wrap' }, n.subnets.join(' ')),
      h('td', {}, usage(n.used, n.size)),
      h('td', { class: 'num' }, count(n.free))))));
}

export function renderHosts(hosts: Loaded<Host[]>, blocks: Loaded<Block[]>): HTMLElement {
  const p = pending(hosts);
  if (p || hosts.state !== 'ok') return p!;
  const byHost = blocks.state === 'ok' ? blocksByHost(blocks.data) : new Map<string, Block[]>();
  const rows: HTMLElement[] = [];
  for (const host of hosts.data) {
    const state = host.state === 'alive' ? badge('alive', 'ok') : badge(host.state, 'bad');
    rows.push(h('tr', { class: 'host-row', 'data-host': host.id },
      h('td', { class: 'strong' }, host.id, host.self ? h('span', { class: 'tag' }, 'this host') : null),
      h('td', { class: 'mono' }, host.address ?? '-'),
      h('td', {}, state),
      h('td', { class: 'muted' }, host.leaseExpiresAt ? `lease ${ago(host.leaseExpiresAt)}` : 'no lease'),
      h('td', { class: 'num' }, `${count(host.blocks)} block${host.blocks === 1 ? '' : 's'}`)));
    for (const b of byHost.get(host.id) ?? []) {
      rows.push(h('tr', { class: 'block-row' },
        h('td', { class: 'indent mono' }, b.cidr),
        h('td', { class: 'muted' }, b.network),
        h('td', { colspan: 3 }, usage(b.used, b.size))));
    }
  }
  const note = blocks.state === 'error' ? h('p', { class: 'error' }, `Blocks: ${blocks.error.message}`) : null;
  return h('div', {}, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Host'), h('th', {}, 'Address'), h('th', {}, 'State'), h('th', {}, 'Lease'), h('th', { class: 'num' }, 'Blocks'))),
    h('tbody', {}, rows)), note);
}

export function renderAllocations(r: Loaded<Allocation[]>, query: string, onAddress: (a: Allocation) => void): { table: HTMLElement; status: string } {
  const p = pending(r);
  if (p || r.state !== 'ok') return { table: p!, status: '' };
  const found = sortAllocations(searchAllocations(r.data, query));
  const shown = found.slice(0, MAX_ROWS);
  const status = query.trim()
    ? `${count(found.length)} of ${count(r.data.length)} match “${query.trim()}”`
    : `${count(r.data.length)} allocation${r.data.length === 1 ? '' : 's'}`;
  if (found.length === 0) return { table: h('p', { class: 'muted' }, query.trim() ? 'Nothing matches.' : 'No allocations.'), status };
  const table = h('table', { id: 'allocation-table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Address'), h('th', {}, 'Name'), h('th', {}, 'Network'), h('th', {}, 'Container'), h('th', {}, 'Interface'),
      h('th', {}, 'Runtime'), h('th', {}, 'Host'), h('th', {}, 'Since'))),
    h('tbody', {}, shown.map((a) => h('tr', { class: 'allocation', 'data-address': a.address },
      h('td', { class: 'mono' }, h('button', { class: 'link', type: 'button', title: `History of ${a.address}`, onclick: () => onAddress(a) }, a.address)),
      h('td', { class: 'strong' }, a.name ?? ''),
      h('td', {}, a.network),
      h('td', { class: 'mono', title: a.containerId }, shortId(a.containerId)),
      h('td', { class: 'mono' }, a.ifname ?? ''),
      h('td', {}, a.runtime ?? ''),
      h('td', {}, a.host ?? ''),
      // Another host's container (the API's `remote`): known from the endpoint catalog in etcd; its
      // interface, since and history are in its own host's store.
      a.endpoint !== undefined
        ? h('td', { class: 'muted', title: `${a.host ?? 'another host'}'s container, from the endpoint catalog (etcd); its history is on its host's API` }, 'via etcd')
        : h('td', { class: 'muted', title: clock(a.since ?? undefined) }, ago(a.since ?? undefined))))));
  return { table: found.length > MAX_ROWS ? h('div', {}, table, h('p', { class: 'muted' }, `Showing the first ${MAX_ROWS}; search to narrow.`)) : table, status };
}

function eventLine(e: HistoryEvent): HTMLElement[] {
  return [
    h('span', { class: 'strong' }, e.name ?? shortId(e.containerId)),
    h('span', { class: 'muted' }, ` ${e.name ? `${shortId(e.containerId)} · ` : ''}${e.network}${e.runtime ? ` · ${e.runtime}` : ''}${e.action === 'release' && e.reason ? ` · ${e.reason}` : ''}`),
  ];
}

export function renderHistory(address: string, at: string, r: Loaded<History> | undefined): HTMLElement {
  if (!address) return h('p', { class: 'muted' }, 'Pick an address in the table, or type one, to see who held it and when.');
  if (!r) return h('p', { class: 'muted' }, 'Loading…');
  const p = pending(r);
  if (p || r.state !== 'ok') return p!;
  const events = timeline(r.data.events);
  const holder = r.data.holder;
  const answer = at
    ? h('p', { class: 'holder' }, `At ${clock(at)}: `, holder ? [h('span', { class: 'strong' }, holder.name ?? shortId(holder.containerId)), ` held ${address}`] : `${address} was free`)
    : null;
  if (events.length === 0) return h('div', {}, answer, h('p', { class: 'muted' }, `${address} has no history.`));
  return h('div', {}, answer, h('ol', { class: 'timeline', 'aria-label': `History of ${address}` }, events.map((e) =>
    h('li', { class: `event ${e.action}` },
      h('span', { class: 'dot' }),
      h('div', { class: 'event-head' }, h('span', { class: 'action' }, e.action === 'allocate' ? 'allocated to' : e.action === 'release' ? 'released by' : e.action), ' ', ...eventLine(e)),
      h('div', { class: 'event-time muted', title: e.at }, `${clock(e.at)} · ${ago(e.at)}`)))));
}

export function renderDns(r: Loaded<DnsRecords>): HTMLElement {
  const p = pending(r);
  if (p || r.state !== 'ok') return p!;
  const records = [...r.data.records].sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type));
  if (r.data.running === false) return h('p', { class: 'muted' }, 'This vxnetd does not serve DNS (--no-dns).');
  if (records.length === 0) return h('p', { class: 'muted' }, 'No names served.');
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Type'), h('th', {}, 'Value'), h('th', { class: 'num' }, 'TTL'))),
    h('tbody', {}, records.slice(0, MAX_ROWS).map((d) => h('tr', { class: 'record' },
      h('td', { class: 'mono strong' }, d.name), h('td', {}, d.type), h('td', { class: 'mono' }, d.value), h('td', { class: 'num' }, d.ttl ?? '')))));
}

/** ADDR:PORT, [ADDR]:PORT for IPv6. */
const hostPort = (address: string, port: number): string => `${address.includes(':') ? `[${address}]` : address}:${port}`;

function backendState(state: string): HTMLElement {
  const s = state.toLowerCase();
  return badge(state, /^(up|healthy|ok|alive|active|reachable)$/.test(s) ? 'ok' : /^(unknown|draining|pending|starting)$/.test(s) ? 'warn' : 'bad');
}

export function renderVips(r: Loaded<Vips>): HTMLElement {
  const p = pending(r);
  if (p || r.state !== 'ok') return p!;
  if (r.data.running === false) return h('p', { class: 'muted' }, 'This vxnetd does not serve VIPs (--no-vip).');
  if (r.data.vips.length === 0) return h('p', { class: 'muted' }, 'No VIPs.');
  return h('div', { class: 'vips' }, r.data.vips.map((v) => {
    const healthy = v.backends.filter((b) => /^(up|healthy|ok|alive|active|reachable)$/i.test(b.state)).length;
    const title = v.name ?? v.vip ?? v.addresses[0] ?? '';
    const at = v.addresses.length ? v.addresses.map((a) => `${hostPort(a, v.port)}${v.protocol ? `/${v.protocol}` : ''}`).join(', ') : 'no address yet';
    return h('div', { class: 'vip', 'data-vip': title },
      h('div', { class: 'vip-head' },
        h('span', { class: 'strong' }, title),
        h('span', { class: 'mono muted' }, ` ${at}`),
        h('span', { class: 'vip-health' }, badge(`${healthy}/${v.backends.length} healthy`, healthy === v.backends.length && healthy > 0 ? 'ok' : healthy > 0 ? 'warn' : 'bad'))),
      v.backends.length === 0 ? h('p', { class: 'muted' }, 'No backends.') : h('table', { class: 'backends' },
        h('tbody', {}, [...v.backends].sort((a, b) => compareAddresses(a.address, b.address) || a.port - b.port).map((b) => h('tr', { class: 'backend' },
          h('td', { class: 'mono' }, hostPort(b.address, b.port)),
          h('td', { class: 'muted' }, b.name ?? ''),
          h('td', { class: 'muted' }, b.host ?? ''),
          h('td', { class: 'muted num' }, b.weight !== undefined ? `weight ${b.weight}` : ''),
          h('td', { class: 'num' }, backendState(b.state)))))));
  }));
}
