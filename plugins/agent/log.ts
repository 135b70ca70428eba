/**
 * flaxd's logger: stderr only, one line per event, in flanneld's (klog's)
 * format by default so that existing log parsing keeps working:
 *   `I1207 05:48:29.123456   12345 flaxd:1] message`
 * (severity I/W/E, month and day, local time with microseconds, the pid
 * right-aligned in 7 columns, then klog's file:line — flaxd's module name
 * with line 1, klog's own choice when the caller is unknown). With
 * `--log-format json`, one JSON object a line for pipelines:
 *   `{"ts":"2024-12-07T05:48:29.123Z","level":"info","pid":12345,"msg":"message"}`.
 * Debug lines (klog's V(1) lines: severity I) only with -v 1 or more.
 * Newlines inside a message are flattened so an event stays one line.
 */
export type Level = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'klog' | 'json';

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

const SEVERITY: Record<Level, string> = { error: 'E', warn: 'W', info: 'I', debug: 'I' };
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** klog's header: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] ` (local time, as klog). */
export function klogHeader(level: Level, t: Date, pid: number, file = 'flaxd', line = 1): string {
  const us = t.getMilliseconds() * 1000;
  return `${SEVERITY[level]}${pad(t.getMonth() + 1)}${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(us, 6)} ${String(pid).padStart(7)} ${file}:${line}] `;
}

export interface LoggerOptions {
  format?: LogFormat;
  write?: (line: string) => void;
  now?: () => Date;
  pid?: number;
}

export function createLogger(verbosity: number, o: LoggerOptions | ((line: string) => void) = {}, now?: () => Date): Logger {
  const opts: LoggerOptions = typeof o === 'function' ? { write: o, now, format: 'klog' } : o;
  const write = opts.write ?? ((l: string) => { process.stderr.write(l); });
  const clock = opts.now ?? (() => new Date());
  const pid = opts.pid ?? process.pid;
  const json = opts.format === 'json';
  const emit = (level: Level, msg: string) => {
    try {
      const text = msg.replace(/\s*\n\s*/g, ' ');
      const t = clock();
      write(json ? `${JSON.stringify({ ts: t.toISOString(), level, pid, msg: text })}\n` : `${klogHeader(level, t, pid)}${text}\n`);
    } catch { /* logging never fails the agent */ }
  };
  return {
    error: (m) => emit('error', m),
    warn: (m) => emit('warn', m),
    info: (m) => emit('info', m),
    debug: (m) => { if (verbosity >= 1) emit('debug', m); },
  };
}
