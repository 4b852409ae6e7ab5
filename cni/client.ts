// The `vxnet` plugin's fast path: hands the whole CNI call to vxnetd over its CNI socket
// (./handoff.ts) and prints vxnetd's answer, so a call costs Node's start-up plus vxnetd's
// work on warm code, open stores and sockets. Loads nothing but node:net and node:fs (and
// node:child_process on the rare fallback).
//
// Hello and call go out in one write (one round trip). When vxnetd cannot be reached (a stale
// socket), refuses the call (another build, another network namespace) or fails mid-call, the
// launcher (scripts/build.mjs) is run again with the hand-off off: with this process's stdin
// when it was not read yet, else with what was read. The runtime gets the plugin's own answer
// either way; only the time differs.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { BUILD_ID } from '../lib/version';
import { Call, HANDOFF_VERSION, Hello, LineReader, callEnv, netnsId } from './handoff';
import { readStdin } from './stdin';

/** Runs the launcher again with the hand-off off (the in-process plugin) and exits with its status. */
function runInProcess(stdin: string | undefined): never {
  const launcher = process.env.VXNET_LAUNCHER;
  if (!launcher) {
    fs.writeSync(2, 'vxnet: VXNET_LAUNCHER is not set: the hand-off client is started by the vxnet launcher\n');
    process.exit(1);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(launcher, [], {
    ...(stdin === undefined ? { stdio: 'inherit' as const } : { input: stdin, stdio: ['pipe', 'inherit', 'inherit'] as const }),
    env: { ...process.env, VXNET_CNI_SOCKET: '' },
  });
  process.exit(r.status ?? 1);
}

export function runClient(socketPath: string): void {
  let stdin: string | undefined;
  let phase: 'connecting' | 'hello' | 'call' | 'done' = 'connecting';
  const lines = new LineReader();
  const sock = net.connect(socketPath);
  const fail = (): void => {
    if (phase === 'done') return;
    phase = 'done';
    sock.destroy();
    runInProcess(stdin);
  };
  sock.on('error', fail);
  sock.on('close', fail);
  sock.on('connect', () => {
    phase = 'hello';
    void readStdin().then((text) => {
      stdin = text;
      const hello: Hello = { v: HANDOFF_VERSION, build: BUILD_ID, netns: netnsId() };
      const call: Call = { env: callEnv(process.env), stdin: text };
      sock.write(`${JSON.stringify(hello)}\n${JSON.stringify(call)}\n`);
    });
  });
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    for (const line of lines.feed(chunk)) {
      let msg: Record<string, unknown>;
      try { msg = JSON.parse(line) as Record<string, unknown>; } catch { fail(); return; }
      if (phase === 'hello') {
        if (msg.ok !== true) { fail(); return; }
        phase = 'call';
      } else if (phase === 'call') {
        if (typeof msg.stdout !== 'string' || typeof msg.exitCode !== 'number') { fail(); return; }
        phase = 'done';
        fs.writeSync(1, msg.stdout);
        process.exit(msg.exitCode);
      }
    }
  });
}
