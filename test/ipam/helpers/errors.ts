// Pinning errors exactly: tap's t.throws/t.rejects match message patterns as substrings, so
// tests compare { name, code, message } with strictSame instead.
import { VxnetError } from '../../../lib/errors';

export interface ErrorShape {
  readonly name: string;
  readonly code: number | undefined;
  readonly message: string;
}

const shape = (err: unknown): ErrorShape =>
  err instanceof VxnetError ? { name: err.name, code: err.code, message: err.message }
    : err instanceof Error ? { name: err.name, code: undefined, message: err.message }
      : { name: typeof err, code: undefined, message: String(err) };

/** What fn throws, as { name, code, message }; undefined when it returns. */
export function caught(fn: () => unknown): ErrorShape | undefined {
  try { fn(); } catch (err) { return shape(err); }
  return undefined;
}

/** What p rejects with, as { name, code, message }; undefined when it resolves. */
export async function rejected(p: Promise<unknown>): Promise<ErrorShape | undefined> {
  try { await p; } catch (err) { return shape(err); }
  return undefined;
}

export const invalidConf = (message: string): ErrorShape => ({ name: 'InvalidNetworkConfig', code: 7, message });
