// The hand-off of a CNI call from the `vxnet` plugin to vxnetd (./client.ts, ./service.ts):
// message shapes, framing, and the identity vxnetd checks (netnsId reads /proc).
//
// One connection per call, newline-delimited JSON; the client sends both lines at once and
// vxnetd answers with one line, then closes:
//   client: Hello {v, build, netns}          vxnetd: Outcome {stdout, exitCode}
//   client: Call {env, stdin}                    or: {fallback: reason} (the call not taken)
// vxnetd takes the call only when it runs the same build (the code under test, or an upgrade
// half-done, must not be answered by other code) in the same network namespace as the plugin
// (bridges, veths and routes are made in the caller's namespace). Otherwise, or when vxnetd
// is not there, the plugin does the work itself: the hand-off changes speed, never results.

export const HANDOFF_VERSION = 2;
export const DEFAULT_CNI_SOCKET = '/run/vxnet/cni.sock';

export interface Hello { readonly v: number; readonly build: string; readonly netns: string }
export interface Call { readonly env: Record<string, string>; readonly stdin: string }
export interface Refused { readonly fallback: string }

/** The environment a CNI call depends on: CNI_* and PATH (delegated plugins are exec'd with it). */
export function callEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && (k.startsWith('CNI_') || k === 'PATH')) out[k] = v;
  return out;
}

/** Why vxnetd must not take this call, or undefined when it may. */
export function refusal(hello: unknown, own: { build: string; netns: string }): string | undefined {
  if (typeof hello !== 'object' || hello === null) return 'malformed hello';
  const h = hello as Partial<Hello>;
  if (h.v !== HANDOFF_VERSION) return `hand-off version ${String(h.v)}, vxnetd speaks ${HANDOFF_VERSION}`;
  if (h.build !== own.build) return `plugin build ${String(h.build)}, vxnetd runs ${own.build}`;
  if (h.netns !== own.netns) return `plugin in network namespace ${String(h.netns)}, vxnetd in ${own.netns}`;
  return undefined;
}

export function parseCall(value: unknown): Call | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const c = value as Partial<Call>;
  if (typeof c.stdin !== 'string' || typeof c.env !== 'object' || c.env === null) return undefined;
  if (!Object.values(c.env).every((v) => typeof v === 'string')) return undefined;
  return { env: c.env, stdin: c.stdin };
}

/** Splits a stream into lines: feed chunks, get complete lines. */
export class LineReader {
  private buf = '';
  feed(chunk: string): string[] {
    this.buf += chunk;
    const lines = this.buf.split('\n');
    this.buf = lines.pop() ?? '';
    return lines;
  }
}

/** This thread's network namespace as "dev:inode" (equal for two processes in one namespace). */
export function netnsId(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const st = (require('node:fs') as typeof import('node:fs')).statSync('/proc/thread-self/ns/net');
  return `${st.dev}:${st.ino}`;
}
