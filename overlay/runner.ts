// The overlay agent as one of vxnetd's services (lib/service.ts): start() starts the agent in
// the background and returns, so vxnetd serves Docker and CNI calls whatever etcd does; a
// failed start (etcd unreachable, no default route yet) is logged and tried again with
// backoff (1 s doubling to 30 s). stop() waits (a few seconds at most) for a start in
// progress, then stops the agent and revokes its lease.
import { asVxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { Service } from '../lib/service';
import type { OverlayService, OverlayServiceConfig } from './service';

export type StartAgent = (config: OverlayServiceConfig, log: Logger) => Promise<OverlayService>;

export interface OverlayRunnerOptions {
  /** First delay before a retry (default 1 s), doubling up to 30 s. */
  readonly initialBackoffMs?: number;
  /** How long stop() waits for a start in progress (default 5 s). */
  readonly stopWaitMs?: number;
  /** Default: overlay/service.ts's startOverlayService (tests give a stand-in). */
  readonly startAgent?: StartAgent;
}

export class OverlayRunner implements Service {
  readonly name = 'overlay agent';
  private service: OverlayService | undefined;
  private starting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private backoffMs: number;
  private readonly listeners: Array<(s: OverlayService) => void> = [];
  private readonly startAgent: StartAgent;

  constructor(private readonly config: OverlayServiceConfig, private readonly log: Logger, private readonly o: OverlayRunnerOptions = {}) {
    this.backoffMs = o.initialBackoffMs ?? 1000;
    this.startAgent = o.startAgent ?? defaultStart;
  }

  async start(): Promise<void> {
    this.log.info('starting the overlay agent', {
      endpoints: this.config.endpoints, networks: this.config.networks.map((n) => n.name), join: this.config.join ?? [],
    });
    this.attempt();
  }

  private attempt(): void {
    if (this.stopped || this.starting) return;
    this.starting = (async () => {
      try {
        const svc = await this.startAgent(this.config, this.log);
        if (this.stopped) {
          // stop() gave up waiting for this start: undo it now.
          await svc.stop({ revoke: true }).catch(() => undefined);
          return;
        }
        this.service = svc;
        this.log.info('overlay agent running', { hostId: svc.hostId, networks: svc.agent.networks });
        for (const l of this.listeners.splice(0)) l(svc);
      } catch (err) {
        if (this.stopped) return;
        this.log.warn('overlay agent cannot start; retrying', { error: asVxnetError(err).message, retryInMs: this.backoffMs });
        this.timer = setTimeout(() => { this.timer = undefined; this.attempt(); }, this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
      }
    })().finally(() => { this.starting = undefined; });
  }

  /** The running agent, once started (tests). */
  get current(): OverlayService | undefined {
    return this.service;
  }

  /** Resolves once the agent runs. */
  ready(): Promise<OverlayService> {
    if (this.service) return Promise.resolve(this.service);
    return new Promise((resolve) => this.listeners.push(resolve));
  }

  /** Stops the agent and revokes its lease; a start still in progress (etcd slow to answer) is waited for up to stopWaitMs. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.starting) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.starting, new Promise<void>((r) => { timer = setTimeout(r, this.o.stopWaitMs ?? 5000); })]);
      clearTimeout(timer);
    }
    const svc = this.service;
    this.service = undefined;
    if (svc) {
      await svc.stop({ revoke: true });
      this.log.info('overlay agent stopped; lease revoked');
    }
  }
}

async function defaultStart(config: OverlayServiceConfig, log: Logger): Promise<OverlayService> {
  // Required here, not imported: etcd3 and gRPC load only when vxnetd runs with --store.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startOverlayService } = require('./service') as typeof import('./service');
  return startOverlayService(config, log);
}
