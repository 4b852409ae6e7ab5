// What a vxnetctl command gets from its caller: where to write, the environment, the clock and
// the kernel operations it may perform. bin/vxnetctl.ts passes the real ones; tests pass their own.
import type { VethOps } from './veth';

export interface Io {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Epoch milliseconds. */
  readonly now: () => number;
  /** The built dist/ directory this vxnetctl runs from (what `install` copies). */
  readonly distDir: string;
  /** Host veth lookups and deletion; defaults to ./veth's. */
  readonly veth?: VethOps;
}

export interface Ctx extends Io {
  readonly json: boolean;
  /** Absolute directory of the embedded store. */
  readonly dataDir: string;
  readonly veth: VethOps;
}

/** Machine output: two-space indented JSON, one document per command. */
export const writeJson = (ctx: Ctx, value: unknown): void => ctx.stdout(JSON.stringify(value, null, 2) + '\n');
