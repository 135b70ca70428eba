/**
 * Logging for plugins: stderr only (stdout carries the result), plus an
 * optional file named by FLAX_LOG_FILE — both the caller's (a plugin passes
 * its Host; default this process's). Never throws.
 */
import { appendFileSync } from 'node:fs';

/** Where a log line goes: an environment (FLAX_LOG_FILE) and a stderr (a Host is one). */
export interface LogSink {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stderr: { write(s: string): unknown };
}

export function log(component: string, msg: string, to: LogSink = process): void {
  const line = `${new Date().toISOString()} flax ${component}: ${msg}\n`;
  try {
    to.stderr.write(line);
    const f = to.env.FLAX_LOG_FILE;
    if (f) appendFileSync(f, line);
  } catch { /* logging must never fail a plugin */ }
}
