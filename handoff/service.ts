// vxnetd's side of the CNI hand-off (./protocol.ts): takes whole CNI calls from `vxnet` plugins
// of its own build in its own network namespace, and runs them through the function vxnetd
// gives it (the same dispatch and handlers the plugin runs in-process: cni/skel.ts,
// cni/vxnet.ts), on warm code. Calls run concurrently; what must be serialized already is
// (the IPAM store's transactions, the per-bridge host setup), and namespace entry is
// synchronous (net/netns.ts). cniHandoffService makes it one of vxnetd's services.
import * as net from 'node:net';
import type { Logger } from '../lib/log';
import { BUILD_ID } from '../lib/version';
import { listenOnSocket } from '../lib/unix-socket';
import type { Service } from '../lib/service';
import { LineReader, Refused, netnsId, parseCall, refusal } from './protocol';
import { trace } from '../lib/trace';

/** How long a connection may take to send its hello and its call. */
const IDLE_TIMEOUT_MS = 30_000;

/** What a plugin run would have printed and exited with (cni/skel's Outcome). */
export interface CallOutcome { readonly stdout: string; readonly exitCode: number }

export interface CniService {
  readonly socketPath: string;
  close(): Promise<void>;
}

export interface CniServiceOptions {
  readonly socketPath: string;
  /** Runs one call: its environment and stdin in, what the plugin would print and exit with out. */
  readonly run: (env: Record<string, string>, stdin: string) => Promise<CallOutcome>;
  readonly log: Logger;
  /** Default: this build's (lib/version.ts). */
  readonly build?: string;
}

export async function startCniService(o: CniServiceOptions): Promise<CniService> {
  const own = { build: o.build ?? BUILD_ID, netns: netnsId() };
  /** Open connections and whether each is running a call. */
  const conns = new Map<net.Socket, () => boolean>();
  const server = net.createServer((sock) => {
    trace('handoff:accepted');
    conns.set(sock, () => phase === 'busy');
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(IDLE_TIMEOUT_MS, () => sock.destroy());
    sock.setEncoding('utf8');
    const lines = new LineReader();
    let phase: 'hello' | 'call' | 'busy' = 'hello';
    sock.on('data', (chunk: string) => {
      trace('handoff:data');
      for (const line of lines.feed(chunk)) {
        let msg: unknown;
        try { msg = JSON.parse(line); } catch { sock.destroy(); return; }
        if (phase === 'hello') {
          const why = refusal(msg, own);
          if (why !== undefined) {
            o.log.debug('CNI call left to the plugin', { reason: why });
            phase = 'busy';
            sock.end(JSON.stringify({ fallback: why } satisfies Refused) + '\n');
            return;
          }
          phase = 'call';
        } else if (phase === 'call') {
          const call = parseCall(msg);
          if (!call) { sock.destroy(); return; }
          phase = 'busy';
          sock.setTimeout(0);
          const started = process.hrtime.bigint();
          void o.run(call.env, call.stdin).then((outcome) => {
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            const fields = { command: call.env.CNI_COMMAND, container: call.env.CNI_CONTAINERID, ifname: call.env.CNI_IFNAME, exitCode: outcome.exitCode, ms: Math.round(ms * 10) / 10 };
            if (outcome.exitCode === 0) o.log.debug('CNI call', fields);
            else o.log.info('CNI call failed', { ...fields, error: outcome.stdout.trim() });
            sock.end(JSON.stringify(outcome) + '\n');
            trace('handoff:answered');
          });
        }
      }
    });
  });
  await listenOnSocket(server, o.socketPath);
  o.log.info('serving CNI calls', { socket: o.socketPath, build: own.build });
  return {
    socketPath: o.socketPath,
    close: () => new Promise<void>((resolve) => {
      // Calls in progress finish (their sockets close when answered); new ones fall back.
      server.close(() => resolve());
      for (const [c, busy] of conns) if (!busy()) c.destroy();
    }),
  };
}

/** The hand-off as one of vxnetd's services (lib/service.ts). */
export function cniHandoffService(o: CniServiceOptions): Service {
  let running: CniService | undefined;
  return {
    name: 'cni hand-off',
    async start() { running = await startCniService(o); },
    async stop() { await running?.close(); },
  };
}
