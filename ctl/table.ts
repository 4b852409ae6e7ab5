// Human output for vxnetctl: aligned tables with a header row, and the time and id forms the
// tables use. Pure: callers pass `now`, so tests pin the output.

export type Align = 'left' | 'right';

export interface Column {
  readonly header: string;
  /** Numbers read best right-aligned; everything else is left-aligned. */
  readonly align?: Align;
}

const GAP = '  ';

/**
 * Control characters in a cell (a container name from CNI_ARGS, say) would move the cursor or
 * recolour the operator's terminal: show them as '?'. Empty cells print as '-' so columns stay
 * readable and `awk` sees a field.
 */
export function cell(value: string | number | bigint | undefined | null): string {
  if (value === undefined || value === null || value === '') return '-';
  // eslint-disable-next-line no-control-regex
  return String(value).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Renders rows under a header, columns separated by two spaces, no trailing blanks. */
export function renderTable(columns: readonly Column[], rows: ReadonlyArray<ReadonlyArray<string | number | bigint | undefined | null>>): string {
  const text = rows.map((row) => columns.map((_, i) => cell(row[i])));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...text.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (columns[i].align === 'right' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(GAP).trimEnd();
  return [line(columns.map((c) => c.header)), ...text.map(line)].join('\n') + '\n';
}

/** Renders "Key: value" lines with the values aligned. */
export function renderFields(fields: ReadonlyArray<readonly [string, string | number | bigint | undefined | null]>): string {
  const width = Math.max(...fields.map(([k]) => k.length + 1));
  return fields.map(([k, v]) => `${(k + ':').padEnd(width)} ${cell(v)}`.trimEnd()).join('\n') + '\n';
}

/** Container ids are 64 hex characters; tables show the first 12, as docker ps does. */
export const shortId = (id: string): string => id.slice(0, 12);

/** ISO 8601 in UTC to the second: "2026-11-25T13:31:27Z". */
export const isoTime = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** "42s ago", "5m ago", "3h ago", "12d ago"; "just now" under a second or for a clock ahead of ours. */
export function relativeTime(ms: number, now: number): string {
  const s = Math.floor((now - ms) / 1000);
  if (s < 1) return 'just now';
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ago`;
  return `${Math.floor(h / 24)}d ago`;
}

/** "2026-11-25T13:31:27Z (5m ago)". */
export const timeWithAge = (ms: number, now: number): string => `${isoTime(ms)} (${relativeTime(ms, now)})`;

/** "1 address", "3 addresses". */
export const plural = (n: number | bigint, one: string, many: string): string => `${n} ${n === 1 || n === 1n ? one : many}`;
