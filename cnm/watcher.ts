// vxnetd's Docker watcher: follows Docker's events (reconnecting with backoff) and has the
// driver reconcile with Docker at start, after events that may leave addresses behind and on
// a timer. One of vxnetd's services (lib/service.ts): start() returns at once, Docker being
// away is logged and retried, never fatal.
import type { Logger } from '../lib/log';
import type { Service } from '../lib/service';
import type { DockerApi, DockerEvent, EventStream } from './docker';

/** What the watcher needs of the driver (cnm/driver.ts). */
export interface Reconciler {
  learnName(networkId: string, dockerName: string): Promise<void>;
  refreshNames(networkId: string): Promise<unknown>;
  reconcile(): Promise<{ checked: number; released: readonly unknown[]; named: number; networksRemoved: readonly unknown[]; orphansRemoved: readonly unknown[] }>;
}

export interface WatcherOptions {
  readonly docker: DockerApi;
  readonly driver: Reconciler;
  /** The plugin's name: events of other drivers' networks are not ours. */
  readonly plugin: string;
  readonly log: Logger;
  /** Reconcile this often besides events (0: never on a timer). */
  readonly intervalMs: number;
  /** How long a burst of events is gathered into one reconcile (default 1 s). */
  readonly coalesceMs?: number;
  /** How long stop() waits for a reconcile in progress (default 5 s; Docker calls time out after 10). */
  readonly stopWaitMs?: number;
  /**
   * Called at once (before the coalesced reconcile) for container start, die, destroy, rename
   * and health_status (a health check changing state) and network connect and disconnect, of any driver: vxnetd refreshes the endpoint
   * catalog from it so a name resolves right after `docker run` returns. Runs outside any
   * driver call, so it may inspect containers; it must not throw (errors are logged).
   */
  readonly onContainerEvent?: (e: DockerEvent) => void;
}

/** The events that change which containers are attached, their names, or their health (VIP backends follow it). */
const CONTAINER_EVENTS: ReadonlySet<string> = new Set(['container start', 'container die', 'container destroy', 'container rename', 'network connect', 'network disconnect']);

/** Docker's health events: action "health_status: healthy" (the state after the colon; Docker 25+ may send it bare). */
export const isHealthEvent = (e: { type: string; action: string }): boolean => e.type === 'container' && /^health_status(:|$)/.test(e.action);

const FIRST_BACKOFF_MS = 500;

export class DockerWatcher implements Service {
  readonly name = 'docker watcher';
  private stream: EventStream | undefined;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private intervalTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private backoffMs = FIRST_BACKOFF_MS;
  private connectedOnce = false;

  constructor(private readonly o: WatcherOptions) {}

  async start(): Promise<void> {
    void this.connect();
    if (this.o.intervalMs > 0) this.intervalTimer = setInterval(() => this.reconcileNow(), this.o.intervalMs);
  }

  /** Stops following Docker; a reconcile in progress is waited for, so the store can close after it. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.close();
    for (const t of [this.reconnectTimer, this.intervalTimer, this.reconcileTimer]) if (t) clearTimeout(t);
    if (this.running) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.running, new Promise<void>((r) => { timer = setTimeout(r, this.o.stopWaitMs ?? 5000); })]);
      clearTimeout(timer);
    }
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      const stream = await this.o.docker.events((e) => this.onEvent(e), (err) => this.onEnd(err));
      if (this.stopped) { stream.close(); return; }
      this.stream = stream;
      if (!this.connectedOnce || this.backoffMs > FIRST_BACKOFF_MS) this.o.log.info('following Docker events');
      this.connectedOnce = true;
      this.backoffMs = FIRST_BACKOFF_MS;
      this.reconcileNow();
    } catch (err) {
      if (this.stopped) return;
      this.o.log.warn('cannot reach the Docker API; retrying', { error: (err as Error).message, retryInMs: this.backoffMs });
      this.schedule();
    }
  }

  private onEnd(err?: Error): void {
    if (this.stopped) return;
    this.o.log.warn('Docker event stream ended; reconnecting', { error: err?.message });
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.reconnectTimer = setTimeout(() => { void this.connect(); }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
  }

  private onEvent(e: DockerEvent): void {
    const ours = e.attributes.type === this.o.plugin;
    const { driver, log } = this.o;
    if (this.o.onContainerEvent && (CONTAINER_EVENTS.has(`${e.type} ${e.action}`) || isHealthEvent(e))) {
      try {
        this.o.onContainerEvent(e);
      } catch (err) {
        log.warn('container event callback failed', { event: `${e.type} ${e.action}`, id: e.id.slice(0, 12), error: (err as Error).message });
      }
    }
    if (e.type === 'network' && ours && e.action === 'create') {
      void driver.learnName(e.id, e.attributes.name).catch((err: unknown) =>
        log.warn('cannot bind a new docker network', { networkId: e.id.slice(0, 12), error: (err as Error).message }));
    } else if (e.type === 'network' && ours && e.action === 'connect') {
      void driver.refreshNames(e.id).catch((err: unknown) =>
        log.debug('cannot refresh container names', { networkId: e.id.slice(0, 12), error: (err as Error).message }));
    } else if ((e.type === 'network' && (e.action === 'disconnect' || e.action === 'destroy')) || (e.type === 'container' && e.action === 'destroy')) {
      this.reconcileSoon();
    }
  }

  /** Coalesces bursts of events (a `docker rm` of many containers) into one reconcile. */
  private reconcileSoon(): void {
    if (this.reconcileTimer || this.stopped) return;
    this.reconcileTimer = setTimeout(() => { this.reconcileTimer = undefined; this.reconcileNow(); }, this.o.coalesceMs ?? 1000);
  }

  /** Reconciles now, or right after the reconcile in progress (never two at once). */
  reconcileNow(): void {
    if (this.stopped) return;
    if (this.running) { this.again = true; return; }
    this.running = (async () => {
      try {
        const r = await this.o.driver.reconcile();
        if (r.released.length || r.named || r.networksRemoved.length || r.orphansRemoved.length) {
          this.o.log.info('reconciled with Docker', { checked: r.checked, released: r.released.length, named: r.named, networksRemoved: r.networksRemoved.length, orphansRemoved: r.orphansRemoved.length });
        }
      } catch (err) {
        this.o.log.warn('reconcile with Docker failed', { error: (err as Error).message });
      }
    })().finally(() => {
      this.running = undefined;
      if (this.again) { this.again = false; this.reconcileNow(); }
    });
  }
}
