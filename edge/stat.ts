// HAProxy's `show stat` (the Runtime API's CSV) as rows, and what a row's status means. Pure.
// Counters in it are the serving worker's own: a reload starts them at zero again.

export interface StatRow {
  /** Proxy (frontend or backend) name. */
  readonly proxy: string;
  /** Server (slot) name, or FRONTEND / BACKEND for the proxy's own row. */
  readonly server: string;
  /** HAProxy's words: UP, DOWN, MAINT, DRAIN, NOLB, no check, "UP 1/3", OPEN, ... */
  readonly status: string;
  /** Current sessions. */
  readonly scur: number;
  /** Sessions since the worker started. */
  readonly stot: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** HTTP responses with a 5xx status (0 in TCP mode). */
  readonly http5xx: number;
  /** Connection errors to the server, responses with errors. */
  readonly econ: number;
  readonly eresp: number;
  readonly weight: number;
}

const num = (v: string | undefined): number => (v === undefined || v === '' ? 0 : Number(v) || 0);

/** `show stat` CSV -> rows; unknown or missing columns read as 0 / ''. */
export function parseStat(csv: string): StatRow[] {
  const lines = csv.split('\n');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const at = (name: string): number => header.indexOf(name);
  const col = { px: at('pxname'), sv: at('svname'), status: at('status'), scur: at('scur'), stot: at('stot'), bin: at('bin'), bout: at('bout'),
    h5: at('hrsp_5xx'), econ: at('econ'), eresp: at('eresp'), weight: at('weight') };
  if (col.px < 0 || col.sv < 0) return [];
  const rows: StatRow[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    if (f.length < header.length - 1) continue;
    rows.push({
      proxy: f[col.px] ?? '', server: f[col.sv] ?? '', status: f[col.status] ?? '', scur: num(f[col.scur]), stot: num(f[col.stot]),
      bytesIn: num(f[col.bin]), bytesOut: num(f[col.bout]), http5xx: num(f[col.h5]), econ: num(f[col.econ]), eresp: num(f[col.eresp]), weight: num(f[col.weight]),
    });
  }
  return rows;
}

export type ServerState = 'up' | 'down' | 'drain' | 'maint' | 'nolb' | 'unknown';

/** A server's status in one word: "no check" is up (nothing says otherwise), "UP 1/3" is up (going down), "DOWN 1/2" down. */
export function serverState(status: string): ServerState {
  const s = status.trim().toLowerCase();
  if (s === 'no check' || s.startsWith('up')) return 'up';
  if (s.startsWith('down')) return 'down';
  if (s.startsWith('drain')) return 'drain';
  if (s.startsWith('maint')) return 'maint';
  if (s.startsWith('nolb')) return 'nolb';
  return 'unknown';
}
