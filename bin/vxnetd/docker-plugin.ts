// The Docker plugin API server (cnm/server.ts: express on the plugin's unix socket) as one of
// vxnetd's services (lib/service.ts). stop() lets calls in progress finish (Docker's own time
// out after a while, so at most 5 s), then closes the socket.
import type { Server } from 'node:http';
import type { Logger } from '../../lib/log';
import type { Service } from '../../lib/service';
import { type Methods, createApp, listenUnix } from '../../cnm/server';

/** How long stop() lets calls in progress finish before cutting their connections. */
const CLOSE_GRACE_MS = 5000;

export function dockerPluginServer(o: { readonly socket: string; readonly methods: Methods; readonly log: Logger }): Service {
  let server: Server | undefined;
  return {
    name: 'docker plugin',
    async start() {
      server = await listenUnix(createApp(o.methods, o.log), o.socket);
    },
    stop() {
      const s = server;
      if (!s) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => s.closeAllConnections(), CLOSE_GRACE_MS);
        s.close(() => { clearTimeout(force); resolve(); });
        s.closeIdleConnections();
      });
    },
  };
}
