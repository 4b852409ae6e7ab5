// One host's named-VIP address claims, kept in a small JSON file under vxnetd's data directory
// (`{"version": 1, "claims": {"ADDRESS": "NAME"}}`), so the first-claim-wins rule of ./address.ts
// survives a restart: two colliding names keep their addresses instead of being placed again in
// the catalog's order at start (which could trade them). The file is replaced atomically (temp
// file, fsync, rename) on each new claim; claims are never released, so it only grows, by one
// entry per name and family. A file that is not a claims file fails the first read (the service
// logs it) and the claims then start empty, as before there was a file, overwriting it on the
// next claim; a file that cannot be written fails the claim, which the service retries.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IoFailure, InvalidVip } from '../lib/errors';
import { writeFileAtomic } from '../lib/file-lock';
import type { ClaimStore } from './address';

interface ClaimsFile { version: 1; claims: Record<string, string> }

/** Parses the file's text; InvalidVip when it is not a claims file. */
export function parseClaimsFile(text: string, file: string): Map<string, string> {
  let v: unknown;
  try { v = JSON.parse(text); } catch (err) { throw new InvalidVip(`${file}: not JSON (${(err as Error).message})`); }
  const claims = (v as Partial<ClaimsFile> | null)?.claims;
  if ((v as Partial<ClaimsFile> | null)?.version !== 1 || typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new InvalidVip(`${file}: not a VIP claims file ({"version": 1, "claims": {"ADDRESS": "NAME"}})`);
  }
  const out = new Map<string, string>();
  for (const [address, name] of Object.entries(claims)) {
    if (typeof name !== 'string') throw new InvalidVip(`${file}: the claim of ${address} is not a name`);
    out.set(address, name);
  }
  return out;
}

export function formatClaimsFile(claims: ReadonlyMap<string, string>): string {
  const sorted = [...claims].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${JSON.stringify({ version: 1, claims: Object.fromEntries(sorted) } satisfies ClaimsFile, null, 1)}\n`;
}

export class FileClaims implements ClaimStore {
  readonly description: string;
  private claims: Map<string, string> | undefined;

  constructor(private readonly file: string) {
    this.description = `claims in ${file}`;
  }

  /**
   * The claims made since the last write, written together on the next turn of the event loop
   * (a first start with 10,000 named VIPs is 10,000 claims: one whole-file write each was
   * quadratic). A claim resolves once the file holding it is written; a failed write takes its
   * claims back out and rejects them.
   */
  private batch: Array<[string, string]> = [];
  private saving: Promise<void> | undefined;

  async claim(address: string, name: string): Promise<string> {
    const claims = this.read();
    const holder = claims.get(address);
    if (holder !== undefined) {
      // Claimed, maybe not written yet: answered once it is.
      if (this.saving && this.batch.some(([a]) => a === address)) await this.saving;
      return holder;
    }
    claims.set(address, name);
    this.batch.push([address, name]);
    await this.save();
    return name;
  }

  private save(): Promise<void> {
    this.saving ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const batch = this.batch;
      this.batch = [];
      this.saving = undefined;
      const claims = this.read();
      try {
        fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o755 });
        writeFileAtomic(this.file, formatClaimsFile(claims), 0o600);
      } catch (err) {
        for (const [a, n] of batch) if (claims.get(a) === n) claims.delete(a);
        throw err;
      }
    });
    return this.saving;
  }

  async list(): Promise<ReadonlyMap<string, string>> {
    return new Map(this.read());
  }

  /** The file's claims, read once; a missing file is no claims. */
  private read(): Map<string, string> {
    if (this.claims) return this.claims;
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new IoFailure(`cannot read ${this.file}: ${(err as Error).message}`);
      text = '';
    }
    try {
      this.claims = text === '' ? new Map() : parseClaimsFile(text, this.file);
    } catch (err) {
      this.claims = new Map();
      throw err;
    }
    return this.claims;
  }
}
