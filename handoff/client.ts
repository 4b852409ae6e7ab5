// The `vxnet` plugin's fast path: hands the whole CNI call to vxnetd over its CNI socket
// (./handoff.ts) and prints vxnetd's answer, so a call costs Node's start-up plus vxnetd's
// work on warm code, open stores and sockets. Loads nothing but node:fs, the exchange over
// the socket (./unix-exchange.ts) and vxnet's addon (to exit at once), and node:child_process
// on the rare fallback.
//
// Hello and call go out in one write (one round trip). When vxnetd cannot be reached (a stale
// socket), refuses the call (another build, another network namespace) or fails mid-call, the
// launcher (scripts/build.mjs) is run again with the hand-off off, given the stdin read here.
// The runtime gets the plugin's own answer either way; only the time differs.
import { writeSync } from 'node:fs';
import { netnsBinding } from '../lib/native';
import { BUILD_ID } from '../lib/version';
import { Call, HANDOFF_VERSION, Hello, callEnv, netnsId } from './protocol';
import { exchange } from './unix-exchange';
import { readStdin } from '../lib/stdin';

/** Runs the launcher again with the hand-off off (the in-process plugin) and exits with its status. */
function runInProcess(stdin: string): never {
  const launcher = process.env.VXNET_LAUNCHER;
  if (!launcher) {
    writeSync(2, 'vxnet: VXNET_LAUNCHER is not set: the hand-off client is started by the vxnet launcher\n');
    process.exit(1);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(launcher, [], {
    input: stdin, stdio: ['pipe', 'inherit', 'inherit'],
    env: { ...process.env, VXNET_CNI_SOCKET: '' },
  });
  process.exit(r.status ?? 1);
}

/**
 * Ends the process once the answer is written (writeSync: nothing is buffered): Node's own exit
 * joins its platform's threads and tears the heap down, about 0.6 ms of the runtime's wait.
 */
function exitNow(code: number): never {
  try { netnsBinding().exitNow(code); } catch { /* the addon is missing: Node's exit */ }
  process.exit(code);
}

export function runClient(socketPath: string): void {
  void readStdin({ terminalChecked: true }).then((stdin) => {
    const hello: Hello = { v: HANDOFF_VERSION, build: BUILD_ID, netns: netnsId() };
    const call: Call = { env: callEnv(process.env), stdin };
    exchange(socketPath, `${JSON.stringify(hello)}\n${JSON.stringify(call)}\n`, (err, line) => {
      let msg: Record<string, unknown> | undefined;
      try { msg = err || line === undefined ? undefined : JSON.parse(line) as Record<string, unknown>; } catch { msg = undefined; }
      // Anything but an outcome (a refusal, no answer, a malformed line) leaves the call to the plugin.
      if (!msg || typeof msg.stdout !== 'string' || typeof msg.exitCode !== 'number') runInProcess(stdin);
      writeSync(1, msg.stdout);
      exitNow(msg.exitCode);
    });
  });
}
