// Operator labels on endpoint names, kept in one JSON file in vxnet's data directory
// (endpoint-labels.json): `vxnetctl endpoint label` edits it under a lock with an atomic
// replace, and vxnetd's OperatorLabelsFile follows it (fs.watch on the directory, debounced)
// and tells the catalog at once. The rules (names, keys, values, the document) are
// ./label-rules.ts; which label wins is ./derive.ts (operator over runtime over CNI args).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DecodingFailure, IoFailure } from '../lib/errors';
import { withFileLock, writeFileAtomic } from '../lib/file-lock';
import type { Logger } from '../lib/log';
import type { Service } from '../lib/service';
import { UsageError } from '../lib/usage';
import { applyLabelEdit, type LabelEdit, type Labels, type LabelsByName, labelsOf, parseLabelsDocument, serializeLabelsDocument } from './label-rules';
import type { OperatorLabelSource } from './sources';

export const LABELS_FILE_NAME = 'endpoint-labels.json';

export const labelsFilePath = (dataDir: string): string => path.join(dataDir, LABELS_FILE_NAME);

/** The file's labels; {} when it does not exist. Throws DecodingFailure (naming the file) when malformed. */
export function readLabelsFile(file: string): LabelsByName {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new IoFailure(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseLabelsDocument(text);
  } catch (err) {
    if (err instanceof UsageError) throw new DecodingFailure(`${file}: ${err.message}`);
    throw err;
  }
}

/**
 * Applies `edit` to `name`'s labels in `file` (created with its directory when missing) under
 * `file`.lock, so concurrent editors each see the other's result; returns the name's labels after.
 */
export async function editLabelsFile(file: string, name: string, edit: LabelEdit, lockTimeoutMs?: number): Promise<Labels> {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (err) {
    throw new IoFailure(`cannot create ${path.dirname(file)}: ${(err as Error).message}`);
  }
  return withFileLock(`${file}.lock`, async () => {
    const next = applyLabelEdit(readLabelsFile(file), name, edit);
    writeFileAtomic(file, serializeLabelsDocument(next));
    return labelsOf(next, name) ?? {};
  }, { timeoutMs: lockTimeoutMs });
}

export type LabelsChangeListener = (names: readonly string[]) => void;

export interface OperatorLabelsFileOptions {
  /** vxnet's data directory; the file is DIR/endpoint-labels.json. */
  readonly dataDir: string;
  readonly log: Logger;
  /** Events within this long are one reload (default 50 ms): an editor's rename is several events. */
  readonly debounceMs?: number;
}

/** Names whose labels differ between two documents. */
function changedNames(a: LabelsByName, b: LabelsByName): string[] {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...names].filter((n) => JSON.stringify(labelsOf(a, n) ?? null) !== JSON.stringify(labelsOf(b, n) ?? null)).sort();
}

/**
 * vxnetd's view of the labels file: labelsFor() from memory, reloaded when the file changes.
 * A malformed file is logged and the last good labels kept (an operator's half-done hand
 * edit must not strip every endpoint's labels); a removed file means no labels.
 */
export class OperatorLabelsFile implements OperatorLabelSource, Service {
  readonly name = 'operator labels';
  readonly file: string;
  private labels: LabelsByName = {};
  private readonly listeners = new Set<LabelsChangeListener>();
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: OperatorLabelsFileOptions) {
    this.file = labelsFilePath(o.dataDir);
  }

  labelsFor(name: string): Labels | undefined {
    return labelsOf(this.labels, name.toLowerCase());
  }

  /** Every name's labels, as last loaded. */
  all(): LabelsByName {
    return this.labels;
  }

  /** Calls listener with the names whose labels changed, after every reload that changed some; returns the unsubscribe. */
  onChange(listener: LabelsChangeListener): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  /** Loads the file, then watches its directory (created when missing). */
  async start(): Promise<void> {
    try {
      fs.mkdirSync(this.o.dataDir, { recursive: true });
    } catch (err) {
      throw new IoFailure(`cannot create ${this.o.dataDir}: ${(err as Error).message}`);
    }
    this.reload();
    // The directory, not the file: an atomic replace is a rename onto the name, which a watch
    // on the old file's inode would not see.
    const base = path.basename(this.file);
    this.watcher = fs.watch(this.o.dataDir, { persistent: false }, (_event, filename) => {
      if (filename === null || filename === base) this.reloadSoon();
    });
    this.watcher.on('error', (err) => this.o.log.warn('cannot watch the operator labels file; labels stay as they are', { file: this.file, error: err.message }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
  }

  /** Reads the file now; returns the names whose labels changed. */
  reload(): string[] {
    let next: LabelsByName;
    try {
      next = readLabelsFile(this.file);
    } catch (err) {
      this.o.log.warn('operator labels file unusable; keeping the labels last read', { file: this.file, error: (err as Error).message });
      return [];
    }
    const changed = changedNames(this.labels, next);
    if (changed.length === 0) return [];
    this.labels = next;
    this.o.log.info('operator labels changed', { file: this.file, endpoints: changed });
    for (const l of this.listeners) {
      try {
        l(changed);
      } catch (err) {
        this.o.log.warn('operator labels listener failed', { error: (err as Error).message });
      }
    }
    return changed;
  }

  private reloadSoon(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = undefined; if (!this.stopped) this.reload(); }, this.o.debounceMs ?? 50);
  }
}
