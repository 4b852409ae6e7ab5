// The start/stop contract every long-lived part of vxnetd keeps (the Docker plugin server,
// the CNI hand-off, the overlay agent, the Docker watcher, and what comes next: DNS, VIPs,
// the edge balancer, the HTTP API), and the runner that starts them in order and stops them
// in reverse. One place decides what a failed start or a signal undoes, so a new service
// only has to say how it starts and how it stops.
import type { Logger } from './log';

export interface Service {
  /** Shown in the logs ("started", "stopped", failures). */
  readonly name: string;
  /**
   * Resolves once the service does its job (a socket listens, ...). A service that must not
   * hold the others up (one waiting for etcd) starts its work in the background and resolves.
   * A rejection makes the runner stop every service started before it.
   */
  start(): Promise<void>;
  /** Releases what start took. Called at most once, and only after start resolved. */
  stop(): Promise<void>;
}

/** A running list of services: stop() stops them in reverse order, once, whoever calls it. */
export interface Running {
  readonly names: readonly string[];
  stop(): Promise<void>;
}

const msSince = (started: bigint): number => Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;

/** Stops the services in reverse order; an error is logged and the next one stopped anyway. */
async function stopInReverse(started: readonly Service[], log: Logger): Promise<void> {
  for (const svc of [...started].reverse()) {
    const t0 = process.hrtime.bigint();
    try {
      await svc.stop();
      log.info('stopped', { service: svc.name, ms: msSince(t0) });
    } catch (err) {
      log.error('stop failed', { service: svc.name, ms: msSince(t0), error: err instanceof Error ? err.message : String(err) });
    }
  }
}

/**
 * Starts the services one after the other, in the order given (a later one may rely on an
 * earlier one). When one fails to start, those already started are stopped in reverse and
 * its error is thrown.
 */
export async function startServices(services: readonly Service[], log: Logger): Promise<Running> {
  const started: Service[] = [];
  for (const svc of services) {
    const t0 = process.hrtime.bigint();
    try {
      await svc.start();
    } catch (err) {
      log.error('start failed', { service: svc.name, ms: msSince(t0), error: err instanceof Error ? err.message : String(err) });
      await stopInReverse(started, log);
      throw err;
    }
    started.push(svc);
    log.info('started', { service: svc.name, ms: msSince(t0) });
  }
  let stopping: Promise<void> | undefined;
  return {
    names: started.map((s) => s.name),
    stop: () => (stopping ??= stopInReverse(started, log)),
  };
}

/** What delivers signals: the process, or a stand-in in tests. */
export interface SignalSource {
  once(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

/**
 * Calls onSignal once, for the first of the signals (default SIGTERM, SIGINT), then stops
 * listening to all of them. Returns a function that stops listening without a signal.
 */
export function onFirstSignal(onSignal: (signal: NodeJS.Signals) => void, signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
  source: SignalSource = process): () => void {
  const off = (): void => { for (const s of signals) source.off(s, listener); };
  const listener = (signal: NodeJS.Signals): void => { off(); onSignal(signal); };
  for (const s of signals) source.once(s, listener);
  return off;
}
