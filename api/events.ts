// GET /api/v1/events: server-sent events telling a viewer (the web view) which resource changed,
// so it refetches that one. `event: change` with `data: {"resource": R}`, R one of allocations,
// endpoints, vips, hosts, blocks, networks, dns; `: ping` every heartbeat. The catalog pushes
// its changes; the rest (the IPAM store is written by CNI plugin processes vxnetd does not see,
// etcd by other hosts) is compared once a second while at least one viewer listens.
import type { Request, Response } from 'express';
import * as r from './resources';
import type { ApiSources } from './sources';

export const POLL_MS = 1000;
export const HEARTBEAT_MS = 10_000;

export type Resource = 'allocations' | 'endpoints' | 'vips' | 'hosts' | 'blocks' | 'networks' | 'dns';

export class ApiEvents {
  private readonly clients = new Set<Response>();
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly seen = new Map<Resource, string>();
  private polling = false;

  constructor(private readonly src: ApiSources, private readonly pollMs = POLL_MS) {}

  serve(req: Request, res: Response): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`retry: 2000\n: vxnetd operator API events\n\n`);
    this.clients.add(res);
    req.on('close', () => { this.clients.delete(res); if (this.clients.size === 0) this.stop(); });
    if (this.clients.size === 1) this.start();
  }

  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.stop();
  }

  private emit(resource: Resource): void {
    const text = `event: change\ndata: ${JSON.stringify({ resource })}\n\n`;
    for (const c of this.clients) c.write(text);
  }

  private start(): void {
    this.unsubscribe = this.src.catalog.subscribe(() => this.emit('endpoints'));
    void this.poll(true);
    this.timer = setInterval(() => void this.poll(false), this.pollMs);
    this.heartbeat = setInterval(() => { for (const c of this.clients) c.write(': ping\n\n'); }, HEARTBEAT_MS);
  }

  private stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearInterval(this.timer);
    clearInterval(this.heartbeat);
    this.timer = this.heartbeat = undefined;
    this.seen.clear();
  }

  /** Compares each polled resource's fingerprint with the last; the first poll only records them. */
  private async poll(first: boolean): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const prints: Array<[Resource, () => Promise<string> | string]> = [
        ['allocations', async () => JSON.stringify((await this.src.store.view((tx) => tx.list())).map((a) => [a.network, a.address, a.containerId, a.name])) ],
        ['vips', () => JSON.stringify(r.vips(this.src))],
        ['dns', () => String(r.dnsRecords(this.src).serial)],
      ];
      if (this.src.cluster) {
        prints.push(['hosts', async () => JSON.stringify((await r.hosts(this.src)).hosts.map((h) => [h.id, h.state, h.blocks]))]);
        prints.push(['blocks', async () => JSON.stringify((await r.blocks(this.src)).blocks.map((b) => [b.cidr, b.host, b.state, b.used]))]);
      }
      for (const [resource, print] of prints) {
        let p: string;
        try { p = await print(); } catch { continue; }
        const before = this.seen.get(resource);
        this.seen.set(resource, p);
        if (!first && before !== undefined && before !== p) {
          this.emit(resource);
          if (resource === 'allocations' || resource === 'blocks') this.emit('networks');
        }
      }
    } finally {
      this.polling = false;
    }
  }
}
