// The web view: lays the page out once, fetches each resource of the operator API, redraws the
// section it feeds, and keeps them fresh through the event stream (live.ts). A 401 shows the
// token form; the token then goes with every request (api.ts).
import './style.css';
import { Api, ApiError } from './api';
import type { Allocation, Block, DnsRecords, History, Host, Network, Summary, Vips } from './types';
import { fill, h } from './dom';
import { clock, looksLikeAddress } from './format';
import { startLive, type LiveState } from './live';
import { type Loaded, renderAllocations, renderDns, renderHistory, renderHosts, renderNetworks, renderSummary, renderVips } from './views';

const api = new Api();

interface State {
  summary: Loaded<Summary>;
  networks: Loaded<Network[]>;
  hosts: Loaded<Host[]>;
  blocks: Loaded<Block[]>;
  allocations: Loaded<Allocation[]>;
  dns: Loaded<DnsRecords>;
  vips: Loaded<Vips>;
  history: Loaded<History> | undefined;
}
const state: State = {
  summary: { state: 'loading' }, networks: { state: 'loading' }, hosts: { state: 'loading' }, blocks: { state: 'loading' },
  allocations: { state: 'loading' }, dns: { state: 'loading' }, vips: { state: 'loading' }, history: undefined,
};
let query = '';
let historyAddress = '';
let historyAt = '';

// --- layout ---------------------------------------------------------------------------------
const section = (id: string, title: string, ...extra: HTMLElement[]): { el: HTMLElement; body: HTMLElement; note: HTMLElement } => {
  const body = h('div', { class: 'section-body' });
  const note = h('span', { class: 'section-note muted' });
  const el = h('section', { id, 'aria-labelledby': `${id}-title` }, h('header', {}, h('h2', { id: `${id}-title` }, title), note, ...extra), body);
  return { el, body, note };
};

const hostName = h('span', { class: 'host-name' });
const meta = h('span', { class: 'meta muted' });
const liveDot = h('span', { class: 'live-dot' });
const liveText = h('span', { id: 'live-state' }, 'connecting');
const updated = h('span', { class: 'muted', id: 'updated' });
const signOut = h('button', { type: 'button', class: 'quiet', hidden: true, onclick: () => { api.setToken(undefined); showLogin(); } }, 'Forget token');
const cards = h('div', { class: 'cards' });

const search = h('input', { type: 'search', id: 'search', placeholder: 'Search address, name or container', 'aria-label': 'Search allocations', autocomplete: 'off', spellcheck: 'false' });
const historyInput = h('input', { type: 'text', id: 'history-address', placeholder: '10.1.2.3', 'aria-label': 'Address', autocomplete: 'off', spellcheck: 'false' });
const atInput = h('input', { type: 'datetime-local', id: 'history-at', step: 1, 'aria-label': 'At' });
const historyForm = h('form', { class: 'inline' }, historyInput, atInput, h('button', { type: 'submit' }, 'Show'));

const networks = section('networks', 'Networks');
const hosts = section('hosts', 'Hosts and blocks');
const allocations = section('allocations', 'Allocations', search);
const history = section('history', 'Address history', historyForm);
const dns = section('dns', 'DNS names');
const vips = section('vips', 'VIPs');

const login = h('dialog', { id: 'login' });

document.getElementById('app')!.append(
  h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('span', { class: 'logo' }, 'vxnet'), hostName, meta),
    h('div', { class: 'status' }, liveDot, liveText, updated, signOut)),
  h('main', {},
    cards,
    h('div', { class: 'grid' }, networks.el, hosts.el),
    allocations.el,
    h('div', { class: 'grid' }, history.el, dns.el),
    vips.el),
  login);

// --- drawing --------------------------------------------------------------------------------
function draw(part: keyof State | 'all'): void {
  const all = part === 'all';
  if (all || part === 'summary') {
    fill(cards, renderSummary(state.summary));
    if (state.summary.state === 'ok') {
      const s = state.summary.data;
      hostName.textContent = s.host;
      meta.textContent = `v${s.version} · ${s.store} store`;
      document.title = `vxnet · ${s.host}`;
    }
  }
  if (all || part === 'networks') fill(networks.body, renderNetworks(state.networks));
  if (all || part === 'hosts' || part === 'blocks') fill(hosts.body, renderHosts(state.hosts, state.blocks));
  if (all || part === 'allocations') {
    const { table, status } = renderAllocations(state.allocations, query, (a) => { showHistory(a.address); });
    fill(allocations.body, table);
    allocations.note.textContent = status;
  }
  if (all || part === 'history') fill(history.body, renderHistory(historyAddress, historyAt, state.history));
  if (all || part === 'dns') {
    fill(dns.body, renderDns(state.dns));
    dns.note.textContent = state.dns.state === 'ok' && state.dns.data.domain ? `zone ${state.dns.data.domain}` : '';
  }
  if (all || part === 'vips') fill(vips.body, renderVips(state.vips));
}

// --- fetching -------------------------------------------------------------------------------
const fetchers: { [K in Exclude<keyof State, 'history'>]: () => Promise<NonNullable<State[K]> extends Loaded<infer T> ? T : never> } = {
  summary: () => api.get<Summary>('/summary'),
  networks: async () => (await api.get<{ networks: Network[] }>('/networks')).networks,
  hosts: async () => (await api.get<{ hosts: Host[] }>('/hosts')).hosts,
  blocks: async () => (await api.get<{ blocks: Block[] }>('/blocks')).blocks,
  // This host's allocations, then the other hosts' containers as the catalog has them (with --store).
  allocations: async () => {
    const r = await api.get<{ allocations: Allocation[]; remote?: Allocation[] }>('/allocations');
    return [...r.allocations, ...(r.remote ?? [])];
  },
  dns: () => api.get<DnsRecords>('/dns/records'),
  vips: () => api.get<Vips>('/vips'),
};

/** Which parts of the page an event's resource feeds. */
const FEEDS: Record<string, Array<keyof State>> = {
  allocations: ['summary', 'networks', 'hosts', 'blocks', 'allocations', 'history'],
  networks: ['summary', 'networks', 'blocks'],
  blocks: ['networks', 'hosts', 'blocks'],
  hosts: ['summary', 'hosts', 'blocks'],
  endpoints: ['summary', 'dns', 'vips', 'allocations'],
  dns: ['dns'],
  vips: ['summary', 'vips'],
};

const inFlight = new Set<keyof State>();
const again = new Set<keyof State>();

async function refresh(part: keyof State): Promise<void> {
  if (inFlight.has(part)) { again.add(part); return; }
  inFlight.add(part);
  try {
    if (part === 'history') {
      if (!historyAddress) { state.history = undefined; return; }
      const at = historyAt ? new Date(historyAt).toISOString() : undefined;
      state.history = await load(() => api.get<History>('/history', { address: historyAddress, at }));
    } else {
      (state as unknown as Record<string, Loaded<unknown>>)[part] = await load(fetchers[part] as () => Promise<unknown>);
    }
    draw(part);
    updated.textContent = `updated ${clock(new Date().toISOString()).slice(11)}`;
  } finally {
    inFlight.delete(part);
    if (again.delete(part)) void refresh(part);
  }
}

async function load<T>(f: () => Promise<T>): Promise<Loaded<T>> {
  try { return { state: 'ok', data: await f() }; } catch (e) {
    return { state: 'error', error: e instanceof ApiError ? e : new ApiError(0, 'Error', (e as Error).message) };
  }
}

function refreshAll(): void {
  for (const part of [...Object.keys(fetchers), 'history'] as Array<keyof State>) void refresh(part);
}

function onChange(resource: string): void {
  if (login.open) return; // asking for the token: no requests bound to fail meanwhile
  if (resource === '*' || !(resource in FEEDS)) { refreshAll(); return; }
  for (const part of FEEDS[resource]!) void refresh(part);
}

// --- interactions ---------------------------------------------------------------------------
function showHistory(address: string): void {
  historyAddress = address.trim();
  historyInput.value = historyAddress;
  state.history = undefined;
  draw('history');
  void refresh('history');
}

search.addEventListener('input', () => {
  query = search.value;
  draw('allocations');
  if (looksLikeAddress(query) && query.trim() !== historyAddress) showHistory(query);
});
historyForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  historyAt = atInput.value;
  showHistory(historyInput.value);
});

// --- the token ------------------------------------------------------------------------------
function showLogin(err?: ApiError): void {
  if (login.open) return;
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'current-password', 'aria-label': 'API token', required: true });
  const form = h('form', { method: 'dialog' },
    h('h2', {}, 'This vxnetd asks for its API token'),
    h('p', { class: 'muted' }, 'The token stays in this tab (sessionStorage) and goes with each request as a bearer token.'),
    err && api.hasToken() ? h('p', { class: 'error' }, `${err.message}`) : null,
    input,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    api.setToken(input.value);
    login.close();
    signOut.hidden = false;
    restartLive();
    refreshAll();
  });
  fill(login, form);
  login.showModal();
  input.focus();
}
api.onUnauthorized = (err) => showLogin(err);
signOut.hidden = !api.hasToken();

// --- live -----------------------------------------------------------------------------------
const LIVE_TEXT: Record<LiveState, string> = { connecting: 'connecting', live: 'live', polling: 'polling every 2 s' };
let live = startLive({ api, onChange, onState });
function onState(s: LiveState): void {
  liveText.textContent = LIVE_TEXT[s];
  liveDot.className = `live-dot ${s}`;
}
function restartLive(): void {
  live.stop();
  live = startLive({ api, onChange, onState });
}

draw('all');
refreshAll();
