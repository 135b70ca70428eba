/**
 * flaxd's logger: stderr only, one line per event,
 * `<ISO time> flaxd <LEVEL> <message>`; debug lines only with -v 1 or more.
 * Newlines inside a message are flattened so an event stays one line.
 */
export type Level = 'error' | 'warn' | 'info' | 'debug';

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

export function createLogger(verbosity: number, write: (line: string) => void = (l) => { process.stderr.write(l); }, now: () => Date = () => new Date()): Logger {
  const emit = (level: Level, msg: string) => {
    try {
      write(`${now().toISOString()} flaxd ${level.toUpperCase()} ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
    } catch { /* logging never fails the agent */ }
  };
  return {
    error: (m) => emit('error', m),
    warn: (m) => emit('warn', m),
    info: (m) => emit('info', m),
    debug: (m) => { if (verbosity >= 1) emit('debug', m); },
  };
}
