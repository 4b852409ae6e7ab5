// Structured logs: one JSON object per line on stderr (CNI plugins must keep stdout for the
// result; runtimes show stderr when a plugin fails). VXNET_LOG_LEVEL sets the threshold.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(component: string, level: Level = (process.env.VXNET_LOG_LEVEL as Level) || 'warn',
  write: (line: string) => void = (line) => process.stderr.write(line), base: Record<string, unknown> = {}): Logger {
  const threshold = ORDER[level] ?? ORDER.warn;
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < threshold) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, component, msg, ...base, ...fields }) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(component, level, write, { ...base, ...fields }),
  };
}
