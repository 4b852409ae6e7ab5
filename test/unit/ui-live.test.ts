// The web view's live updates (ui/live.ts, ui/api.ts) under Node against a real HTTP server:
// the event stream read with fetch, carrying the token; `change` events name the resource;
// no stream (404), or a stream that ends: polling every 2 s, and the stream again when it is
// back; a 401 asks for the token.
import t, { type Test } from 'tap';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Api } from '../../ui/api';
import { startLive, type LiveState } from '../../ui/live';
import { pollUntil } from '../helpers/netns';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function server(t: Test, handler: { current: Handler }): Promise<string> {
  const s = http.createServer((req, res) => handler.current(req, res));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/api/v1`;
}

function watch(t: Test, api: Api): { states: LiveState[]; changes: string[] } {
  const seen = { states: [] as LiveState[], changes: [] as string[] };
  const live = startLive({ api, onChange: (r) => seen.changes.push(r), onState: (s) => seen.states.push(s) });
  t.teardown(() => live.stop());
  return seen;
}

t.test('the event stream, with the token; polling while it is away; back to live', async (t) => {
  let auth: string | undefined;
  let streams = 0;
  const open = new Set<http.ServerResponse>();
  const sse: Handler = (req, res) => {
    auth = req.headers.authorization;
    streams++;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': ping\n\nevent: change\ndata: {"resource":"allocations"}\n\n');
    open.add(res);
  };
  const handler = { current: sse };
  const base = await server(t, handler);
  const api = new Api(base);
  api.setToken('s3cret');
  const seen = watch(t, api);
  await pollUntil(() => seen.changes.includes('allocations') || undefined, { timeoutMs: 5000, what: 'the allocations change' });
  t.same(seen.states, ['connecting', 'live'], 'connecting, then live');
  t.equal(auth, 'Bearer s3cret', 'the stream request carries the token');
  t.same(seen.changes, ['*', 'allocations'], 'everything once on open, then the resource the event names');

  // The stream ends and the server has none for a while: polling, a refresh every 2 s.
  handler.current = (_req, res) => { res.writeHead(404, { 'content-type': 'application/json' }); res.end('{"error":{"code":"NotFound","message":"no"}}'); };
  for (const res of open) res.end();
  const t0 = Date.now();
  await pollUntil(() => seen.changes.filter((c) => c === '*').length >= 3 || undefined, { timeoutMs: 8000, what: 'two polls' });
  t.equal(seen.states.at(-1), 'polling', 'polling while there is no stream');
  t.comment(`two polls ${Date.now() - t0} ms after the stream ended (every 2 s)`);

  // The stream is back: live again (retried every 5 s), the polling stops.
  handler.current = sse;
  await pollUntil(() => seen.states.at(-1) === 'live' || undefined, { timeoutMs: 10_000, what: 'live again' });
  t.equal(streams, 2, 'a second stream');
  await pollUntil(() => seen.changes.filter((c) => c === 'allocations').length === 2 || undefined, { timeoutMs: 5000, what: 'the second stream\'s event' });
  t.same(seen.changes.slice(-2), ['*', 'allocations'], 'refreshed everything on reconnect, then the event');
});

t.test('a 401 asks for the token; a server without the stream is polled', async (t) => {
  const handler = { current: ((_req, res) => { res.writeHead(401, { 'content-type': 'application/json' }); res.end('{"error":{"code":"Unauthorized","message":"wrong bearer token"}}'); }) as Handler };
  const base = await server(t, handler);
  const api = new Api(base);
  const asked: string[] = [];
  api.onUnauthorized = (e) => asked.push(`${e.status} ${e.code}: ${e.message}`);
  const seen = watch(t, api);
  await pollUntil(() => asked.length > 0 || undefined, { timeoutMs: 5000, what: 'the token asked for' });
  t.same(asked[0], '401 Unauthorized: wrong bearer token', 'the API\'s code and message');
  t.equal(seen.states.at(-1), 'polling');
  await t.rejects(api.get('/summary'), { status: 401, code: 'Unauthorized' }, 'a read refused the same way');
});
