/**
 * Logging for plugins: stderr only (stdout carries the result), plus an
 * optional file named by FLAX_LOG_FILE. Never throws.
 */
import { appendFileSync } from 'node:fs';

export function log(component: string, msg: string): void {
  const line = `${new Date().toISOString()} flax ${component}: ${msg}\n`;
  try {
    process.stderr.write(line);
    const f = process.env.FLAX_LOG_FILE;
    if (f) appendFileSync(f, line);
  } catch { /* logging must never fail a plugin */ }
}
