// Live updates: the API's server-sent events (/api/v1/events) read with fetch, so the request
// can carry the bearer token (EventSource cannot set headers). Each `change` event names the
// resource that changed; the page refetches it. While the stream is not open (the API has none,
// a proxy cuts it, vxnetd restarts) the page polls instead, every POLL_MS.
import { type Api, authHeaders, errorOf } from './api';
import { parseSse } from './sse';

export const POLL_MS = 2000;
const RETRY_MS = 5000;

export type LiveState = 'connecting' | 'live' | 'polling';

export interface LiveOptions {
  api: Api;
  /** A resource changed (its name from the event; "*" for a poll or a (re)connect: everything). */
  onChange(resource: string): void;
  onState(state: LiveState): void;
}

export function startLive(o: LiveOptions): { stop(): void } {
  let stopped = false;
  let abort: AbortController | undefined;
  let poller: ReturnType<typeof setInterval> | undefined;
  const poll = (on: boolean): void => {
    if (on && !poller) poller = setInterval(() => o.onChange('*'), POLL_MS);
    if (!on && poller) { clearInterval(poller); poller = undefined; }
  };

  const connect = async (): Promise<void> => {
    while (!stopped) {
      abort = new AbortController();
      try {
        const res = await fetch(`${o.api.base}/events`, { headers: authHeaders(o.api.getToken(), 'text/event-stream'), signal: abort.signal });
        if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          if (!res.ok) await errorOf(res, o.api);
          throw new Error(`no event stream (HTTP ${res.status})`);
        }
        poll(false);
        o.onState('live');
        o.onChange('*');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          const { events, rest } = parseSse(buffer);
          buffer = rest;
          for (const ev of events) {
            if (ev.event !== 'change') continue;
            let resource = '*';
            try { resource = String((JSON.parse(ev.data) as { resource?: unknown }).resource ?? '*'); } catch { /* not JSON: refetch everything */ }
            o.onChange(resource);
          }
        }
      } catch { /* fall through to polling */ }
      if (stopped) return;
      o.onState('polling');
      poll(true);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  };
  o.onState('connecting');
  void connect();
  return { stop() { stopped = true; abort?.abort(); poll(false); } };
}
