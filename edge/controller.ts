// The edge's loop: catalog -> model -> placed model -> HAProxy, one sync at a time (changes
// arriving during a sync coalesce into one more).
//
// Design notes:
// - `running` is the placed model HAProxy runs, and the file DIR/haproxy.cfg is always its
//   text: server-only changes go through the Runtime API and then rewrite the file (no
//   reload), so a restart or a reload of HAProxy comes back to the same servers.
// - A config is written to haproxy.cfg.new and checked with `haproxy -c` first. Refused: its
//   words are logged (once per text), the text kept as haproxy.cfg.refused, and HAProxy keeps
//   running the previous config. Accepted: the previous files shift to haproxy.cfg.1..KEEP.
// - A leaving server is drained (state drain: no new requests, those in flight finish) until
//   HAProxy counts no session on it or the drain time is up, then put in maintenance. Drains
//   run beside later syncs; their slots stay reserved (not refilled) while they run, unless a
//   backend has no other free slot, in which case the fill waits for that drain.
// - A failed Runtime API command falls back to a reload of the whole config.
// - Certificates (./certs.ts) are checked when the model is made, before any config names
//   them: a bad one is a note and is left out. The crt-list a config names is written before
//   that config is checked; --cert-dir is watched and every certificate looked at again each
//   30 s (a renewal reloads; unchanged files cost a stat).
// - DIR/state.json holds `running`: a restarted vxnet-lb that finds HAProxy alive and the file
//   equal to that state's text takes it as running, so nothing is reloaded when nothing changed.
import { existsSync, readFileSync, renameSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { dirname, join } from 'node:path';
import type { EndpointCatalog } from '../catalog/catalog';
import type { Logger } from '../lib/log';
import { CertFiles, pruneCrtLists, withTls, writeCrtList } from './certs';
import { blame, crtListOf, haproxyWords, renderConfig, type ConfigOptions } from './config';
import { afterDrain, classify, commandsFor, type ServerOp } from './diff';
import { checkConfig, cliCommand, type Haproxy, parseSessions, ProxyRefused, runtimeCommands } from './haproxy';
import { edgeModel, type LabelOptions } from './labels';
import type { EdgeEvents } from './metrics';
import { formatNote, noteKey, type Backend, type EdgeModel, type Server, type TlsCert } from './model';
import { place, type PlacedBackend, type PlacedModel } from './slots';

export interface ControllerOptions {
  readonly catalog: EndpointCatalog;
  readonly labels: LabelOptions;
  readonly config: ConfigOptions;
  readonly dir: string;
  readonly haproxy: Haproxy;
  readonly log: Logger;
  readonly drainTimeoutMs: number;
  readonly minSlots: number;
  /** Previous configs kept (haproxy.cfg.1 ..). */
  readonly keep: number;
  /** --cert-dir: certificates for the HTTPS frontend. */
  readonly certDir?: string;
  /** Told of reloads, Runtime API commands, generation times, refusals, restarts (metrics). */
  readonly events?: Partial<EdgeEvents>;
}

export interface EdgeStatus {
  readonly running: PlacedModel | undefined;
  readonly reloads: number;
  readonly runtimeChanges: number;
  readonly refused: number;
  readonly draining: readonly string[];
  /** `BACKEND/SLOT` -> the server leaving it. */
  readonly drains: ReadonlyMap<string, Server>;
}

type DrainOp = Extract<ServerOp, { op: 'drain' }>;

const settingsSignature = (b: Backend): string => JSON.stringify({ ...b, servers: undefined });

export class EdgeController {
  private running: PlacedModel | undefined;
  private busy = false;
  private dirty = false;
  private idle: Array<() => void> = [];
  private readonly drains = new Map<string, { op: DrainOp; done: Promise<void> }>();
  private generation = 0;
  private reported = new Set<string>();
  private lastRefused: string | undefined;
  /** Backends HAProxy refused, by name -> their settings then: left out until their settings change. */
  private readonly quarantine = new Map<string, string>();
  private lastModel: EdgeModel | undefined;
  private lastPlaced: PlacedModel | undefined;
  private unsubscribe: (() => void) | undefined;
  private stats = { reloads: 0, runtimeChanges: 0, refused: 0 };
  private readonly certs = new CertFiles();
  private reportedCerts = new Set<string>();
  private certWatch: { watcher: FSWatcher | undefined; timer: NodeJS.Timeout } | undefined;
  readonly file: string;

  constructor(private readonly o: ControllerOptions) {
    this.file = join(o.dir, 'haproxy.cfg');
  }

  status(): EdgeStatus {
    return { running: this.running, ...this.stats, draining: [...this.drains.keys()], drains: new Map([...this.drains].map(([k, d]) => [k, d.op.server])) };
  }

  /** Starts HAProxy (or adopts the running one) on the catalog's current model, then follows the catalog. */
  async start(): Promise<void> {
    let placed = this.desired(undefined);
    const adopted = await this.o.haproxy.findRunning();
    const saved = adopted ? this.loadState() : undefined;
    const trusted = saved !== undefined && existsSync(this.file) && readFileSync(this.file, 'utf8') === this.render(saved);
    if (saved && trusted) {
      this.running = saved;
      this.o.log.info('took over the running HAProxy and its config', { pid: adopted });
    } else {
      // A refusal leaves out the backends it names; without any, HAProxy cannot start on it.
      let ok = false;
      for (let i = 0; i < 10 && !ok; i++) {
        this.writeCrtList(placed);
        ok = this.writeChecked(this.render(placed), true);
        if (!ok && !this.dirty) break;
        if (!ok) placed = this.desired(undefined);
      }
      this.dirty = false;
      if (!ok) throw new ProxyRefused(`HAProxy refuses the config vxnet-lb made (kept as ${this.file}.refused); see the log`);
      this.running = placed;
      this.saveState();
    }
    await this.o.haproxy.start(() => { void this.restartHaproxy(); });
    if (this.o.haproxy.adopted && !trusted) {
      // A live HAProxy without a state we trust (none, or vxnet-lb died between writing a
      // config and recording it as running): make it run the file just written.
      await this.o.haproxy.reload();
      this.stats.reloads++;
    }
    this.unsubscribe = this.o.catalog.subscribe(() => this.schedule());
    this.watchCerts();
    this.schedule();
    await this.settled();
  }

  /** Stops following the catalog; HAProxy is the caller's to stop or leave. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    if (this.certWatch) { this.certWatch.watcher?.close(); clearInterval(this.certWatch.timer); }
    await this.settled();
    await Promise.all([...this.drains.values()].map((d) => d.done));
  }

  /** Resolves when no sync is running or pending. */
  settled(): Promise<void> {
    if (!this.busy && !this.dirty) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  schedule(): void {
    this.dirty = true;
    if (this.busy) return;
    this.busy = true;
    void (async () => {
      while (this.dirty) {
        this.dirty = false;
        try {
          await this.sync();
        } catch (err) {
          this.o.log.error('sync failed', { error: err instanceof Error ? err.message : String(err) });
        }
      }
      this.busy = false;
      for (const r of this.idle.splice(0)) r();
    })();
  }

  private render(m: PlacedModel): string {
    return renderConfig(m, this.o.config);
  }

  /** The running model with slots being drained still held by their leaving server. */
  private withDrains(m: PlacedModel | undefined): PlacedModel | undefined {
    if (!m || !this.drains.size) return m;
    return {
      ...m,
      backends: m.backends.map((b): PlacedBackend => ({
        ...b,
        slots: b.slots.map((s, i) => s ?? this.drains.get(`${b.name}/s${i + 1}`)?.op.server),
      })),
    };
  }

  private desired(base: PlacedModel | undefined): PlacedModel {
    const labelled = edgeModel(this.o.catalog.list(), this.o.labels);
    const { model, notes: certNotes } = withTls(labelled.model, (p) => this.certs.check(p), this.dirCerts());
    const notes = [...labelled.notes, ...certNotes];
    this.lastModel = model;
    const now = new Set<string>();
    for (const n of notes) {
      const k = noteKey(n);
      now.add(k);
      if (!this.reported.has(k)) this.o.log.warn(formatNote(n), { endpoint: n.endpoint, ...(n.label ? { label: n.label } : {}) });
    }
    this.reported = now;
    this.lastPlaced = place(base, this.withoutQuarantined(model), this.o.minSlots);
    return this.lastPlaced;
  }

  private withoutQuarantined(model: EdgeModel): EdgeModel {
    if (!this.quarantine.size) return model;
    const kept: Backend[] = [];
    for (const b of model.backends) {
      const sig = settingsSignature(b);
      if (this.quarantine.get(b.name) === sig) continue;
      this.quarantine.delete(b.name);
      kept.push(b);
    }
    for (const name of this.quarantine.keys()) if (!model.backends.some((b) => b.name === name)) this.quarantine.delete(name);
    return { ...model, backends: kept };
  }

  /** --cert-dir's good certificates; a bad file is logged once (per file and reason). */
  private dirCerts(): TlsCert[] {
    if (!this.o.certDir) return [];
    const good: TlsCert[] = [];
    const now = new Set<string>();
    for (const { path, check } of this.certs.dir(this.o.certDir)) {
      if (check.ok) { good.push(check.cert); continue; }
      const k = `${path}\u0000${check.reason}`;
      now.add(k);
      if (!this.reportedCerts.has(k)) this.o.log.warn(`--cert-dir: certificate ${path} ${check.reason}; left out`, { file: path });
    }
    this.reportedCerts = now;
    return good;
  }

  /** Follows --cert-dir (files added, replaced, removed) and looks at every certificate again each 30 s. */
  private watchCerts(): void {
    let watcher: FSWatcher | undefined;
    if (this.o.certDir) {
      try { watcher = watch(this.o.certDir, () => this.schedule()); } catch (err) {
        this.o.log.warn('cannot watch --cert-dir; looked at every 30 s', { dir: this.o.certDir, error: err instanceof Error ? err.message : String(err) });
      }
    }
    const timer = setInterval(() => { if (this.o.certDir || this.running?.tls) this.schedule(); }, 30_000);
    timer.unref();
    this.certWatch = { watcher, timer };
  }

  /** The crt-list the config of `m` names, written before that config is checked. */
  private writeCrtList(m: PlacedModel): void {
    const list = crtListOf(m, this.o.config);
    if (list) writeCrtList(dirname(list.path), list.text);
  }

  private async sync(): Promise<void> {
    const t0 = performance.now();
    const base = this.withDrains(this.running);
    const next = this.desired(base);
    const change = classify(base, next);
    if (change.kind === 'none') return;
    const text = this.render(next);
    this.o.events?.generated?.((performance.now() - t0) / 1000);
    if (change.kind === 'servers') {
      try {
        await this.applyServers(change.ops);
        this.running = next;
        this.writeFile(text);
        this.saveState();
        this.stats.runtimeChanges++;
        this.o.log.info('servers changed through the Runtime API', { ops: change.ops.map((o) => `${o.op} ${o.backend}/${o.slot}`) });
        return;
      } catch (err) {
        this.o.log.warn('Runtime API change failed; reloading instead', { error: err instanceof Error ? err.message : String(err) });
      }
    }
    await this.reload(next, text, change.kind === 'reload' ? change.reasons : ['a Runtime API change failed']);
  }

  private async applyServers(ops: readonly ServerOp[]): Promise<void> {
    for (const op of ops) {
      const ref = `${op.backend}/${op.slot}`;
      if (op.op === 'drain') {
        if (!this.drains.has(ref)) this.drains.set(ref, { op, done: this.drain(op, this.generation) });
        continue;
      }
      if (op.op === 'fill') await this.drains.get(ref)?.done;
      await this.runtime(op.op, commandsFor(op));
    }
  }

  /** Runtime API commands for one op, told to `events` (ok or failed). */
  private async runtime(op: string, commands: readonly string[]): Promise<void> {
    try {
      await runtimeCommands(this.o.config.statsSocket, commands);
      this.o.events?.runtime?.(op, 'ok');
    } catch (err) {
      this.o.events?.runtime?.(op, 'failed');
      throw err;
    }
  }

  private async drain(op: DrainOp, generation: number): Promise<void> {
    const ref = `${op.backend}/${op.slot}`;
    const socket = this.o.config.statsSocket;
    try {
      await this.runtime('drain', commandsFor(op));
      const end = Date.now() + this.o.drainTimeoutMs;
      for (;;) {
        const sessions = parseSessions(await cliCommand(socket, 'show stat')).get(ref) ?? 0;
        if (sessions === 0 || Date.now() >= end) {
          if (sessions) this.o.log.warn('drain time up with sessions left', { server: ref, sessions });
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      // A reload since the drain began gave this slot a fresh state: leave it alone.
      if (generation === this.generation) await this.runtime('maint', afterDrain(op));
    } catch (err) {
      this.o.log.warn('drain failed', { server: ref, error: err instanceof Error ? err.message : String(err) });
    } finally {
      this.drains.delete(ref);
    }
  }

  /** Writes `text` to haproxy.cfg.new, checks it, then shifts the kept files and puts it in place; false (logged) when refused. */
  private writeChecked(text: string, initial = false): boolean {
    if (!initial && existsSync(this.file) && readFileSync(this.file, 'utf8') === text) return true;
    const candidate = `${this.file}.new`;
    writeFileSync(candidate, text);
    const r = checkConfig(this.o.haproxy.paths.binary, candidate);
    if (!r.ok) {
      this.stats.refused++;
      this.o.events?.refused?.();
      const blamed = blame(text, r.output);
      if (this.lastRefused !== text) {
        const servers = (name: string): string => this.lastPlaced?.backends.find((b) => b.name === name)?.slots.filter((x) => x).map((x) => x?.id).join(', ') ?? '';
        this.o.log.error('HAProxy refuses the new config; the running one stays', {
          haproxy: haproxyWords(r.output), file: `${this.file}.refused`,
          ...(blamed.length ? { backends: blamed.map((b) => `${b} (${servers(b)})`).join('; '), then: 'retrying without them' } : {}),
        });
        writeFileSync(`${this.file}.refused`, text);
      }
      this.lastRefused = text;
      // Leave the refused backends out (until their labels change) so the rest of the edge
      // keeps following the catalog.
      for (const name of blamed) {
        const b = this.lastModel?.backends.find((x) => x.name === name);
        if (b) this.quarantine.set(name, settingsSignature(b));
      }
      if (blamed.length) this.dirty = true;
      return false;
    }
    for (let i = this.o.keep - 1; i >= 1; i--) if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    if (this.o.keep > 0 && existsSync(this.file)) renameSync(this.file, `${this.file}.1`);
    renameSync(candidate, this.file);
    const kept = [this.file, ...Array.from({ length: this.o.keep }, (_, i) => `${this.file}.${i + 1}`)].filter((f) => existsSync(f)).map((f) => readFileSync(f, 'utf8'));
    pruneCrtLists(this.o.config.crtListDir ?? dirname(this.o.config.statsSocket), kept);
    return true;
  }

  /** The file after a Runtime API change: the same config HAProxy now runs, no check or reload needed. */
  private writeFile(text: string): void {
    if (existsSync(this.file) && readFileSync(this.file, 'utf8') === text) return;
    writeFileSync(`${this.file}.new`, text);
    renameSync(`${this.file}.new`, this.file);
  }

  private async reload(next: PlacedModel, text: string, reasons: readonly string[]): Promise<void> {
    this.writeCrtList(next);
    if (!this.writeChecked(text)) return;
    this.generation++;
    try {
      const info = await this.o.haproxy.reload();
      this.stats.reloads++;
      this.o.events?.reload?.('ok');
      this.running = next;
      this.saveState();
      this.o.log.info('reloaded HAProxy', { reasons, reloads: info.reloads, worker: info.workers.find((w) => w.reloads === 0)?.pid });
    } catch (err) {
      this.o.events?.reload?.('failed');
      this.o.log.error('HAProxy reload failed; the previous config keeps running', { error: err instanceof Error ? err.message : String(err) });
      if (existsSync(`${this.file}.1`)) { renameSync(this.file, `${this.file}.refused`); renameSync(`${this.file}.1`, this.file); }
    }
  }

  private async restartHaproxy(): Promise<void> {
    this.generation++;
    try {
      await this.o.haproxy.spawnMaster();
      this.o.events?.haproxyRestarted?.();
      this.o.log.info('HAProxy restarted with the running config');
    } catch (err) {
      this.o.log.error('cannot restart HAProxy; retrying in 1 s', { error: err instanceof Error ? err.message : String(err) });
      setTimeout(() => { void this.restartHaproxy(); }, 1000).unref();
    }
  }

  private loadState(): PlacedModel | undefined {
    try {
      const m = JSON.parse(readFileSync(join(this.o.dir, 'state.json'), 'utf8')) as { backends?: unknown };
      if (!Array.isArray(m.backends)) return undefined;
      // JSON has no undefined: free slots come back as null.
      // A state written before TLS existed has no sslCerts/hsts: none.
      const tls = (m as { tls?: PlacedModel['tls'] }).tls;
      return {
        backends: (m.backends as PlacedBackend[]).map((b) => ({ ...b, sslCerts: b.sslCerts ?? [], hsts: b.hsts ?? false, slots: b.slots.map((s) => s ?? undefined) })),
        ...(tls ? { tls } : {}),
      };
    } catch {
      return undefined;
    }
  }

  private saveState(): void {
    const p = join(this.o.dir, 'state.json');
    writeFileSync(`${p}.new`, JSON.stringify(this.running));
    renameSync(`${p}.new`, p);
  }
}
