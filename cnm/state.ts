// vxnetd's own records of the Docker networks it drives, one JSON file per network under
// <data-dir>/docker/networks/ (written to a temporary file and renamed, so a kill -9 leaves
// the old record or the new one). Addresses are not here: they live in the IPAM store with
// everyone else's. Endpoints are not here either: an endpoint is its allocation (containerId =
// endpoint id) plus names derived from its id, so nothing about it can go stale.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IoFailure } from '../lib/errors';
import type { NetworkOptions } from './model';

export interface NetworkRecord {
  /** Docker's network id. */
  readonly id: string;
  /** The Docker network's name, once known (Docker's CreateNetwork does not carry it). */
  readonly dockerName?: string;
  /** The vxnet network (the IPAM store's key): -o network, else the Docker network's name. */
  readonly name?: string;
  /** IPv4 subnet (CIDR). */
  readonly pool: string;
  /** Gateway, "ip/len". */
  readonly gateway: string;
  readonly options: NetworkOptions;
  /** A network of another driver that only uses vxnet's IPAM (no CreateNetwork came). */
  readonly ipamOnly?: boolean;
  /** Epoch ms. */
  readonly created: number;
}

export class NetworkRecords {
  private readonly dir: string;
  private readonly byId = new Map<string, NetworkRecord>();

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'docker', 'networks');
  }

  /** Reads every record; unreadable files are reported and skipped. */
  load(onBad: (file: string, err: Error) => void): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const f of fs.readdirSync(this.dir)) {
      if (!f.endsWith('.json')) continue;
      const file = path.join(this.dir, f);
      try {
        const r = JSON.parse(fs.readFileSync(file, 'utf8')) as NetworkRecord;
        if (typeof r.id !== 'string' || typeof r.pool !== 'string') throw new Error('not a network record');
        this.byId.set(r.id, r);
      } catch (err) {
        onBad(file, err as Error);
      }
    }
  }

  get(id: string): NetworkRecord | undefined {
    return this.byId.get(id);
  }

  all(): NetworkRecord[] {
    return [...this.byId.values()];
  }

  put(r: NetworkRecord): void {
    const file = path.join(this.dir, `${r.id}.json`);
    const tmp = `${file}.tmp`;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeSync(fd, JSON.stringify(r, null, 2) + '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
    } catch (err) {
      throw new IoFailure(`cannot record docker network ${r.id.slice(0, 12)} in ${this.dir}: ${(err as Error).message}`);
    }
    this.byId.set(r.id, r);
  }

  delete(id: string): void {
    try {
      fs.rmSync(path.join(this.dir, `${id}.json`), { force: true });
    } catch (err) {
      throw new IoFailure(`cannot remove the record of docker network ${id.slice(0, 12)}: ${(err as Error).message}`);
    }
    this.byId.delete(id);
  }
}
