// `flaxd`: the flannel-compatible overlay agent (see flaxd.ts, agent.ts).
import { FLAX_VERSION, runMain } from '../pkg/skel/skel';
import { runFlaxd } from './flaxd';
import { ConfigError } from './config';
import { flagWarnings, parseFlags, usage, UsageError } from './flags';
import { createLogger } from './log';
import { releaseStartupMemory } from '../pkg/footprint';

/** V8 flags flaxd sets for itself (FLAX_V8_FLAGS replaces them). */
const DAEMON_V8_FLAGS = '--no-opt';

function exit(code: number): void {
  process.stderr.write('', () => process.exit(code));
}

runMain(() => {
  // V8 flags of the daemon (issue 24): without the optimizing compiler (TurboFan) its code, ~5 MiB of the
  // executable, is never paged in; the CNI server's and the overlay's figures hold (README "Footprint").
  // FLAX_V8_FLAGS replaces them ('' for V8's defaults).
  process.getBuiltinModule('node:v8').setFlagsFromString(process.env.FLAX_V8_FLAGS ?? DAEMON_V8_FLAGS);
  let opts;
  try {
    opts = parseFlags(process.argv.slice(2), process.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`flaxd: ${e.message} (see flaxd --help)\n`);
    return exit(2);
  }
  if (opts.help) {
    process.stdout.write(usage());
    return exit(0);
  }
  if (opts.version) {
    process.stdout.write(`flaxd ${FLAX_VERSION}\n`);
    return exit(0);
  }
  const log = createLogger(opts.v, { format: opts.logFormat });
  for (const w of flagWarnings(opts)) log.warn(w);
  runFlaxd(opts, { log, afterStart: () => releaseStartupMemory() }).then(exit, (e: Error) => {
    log.error(e instanceof ConfigError ? `config: ${e.message}` : e.message);
    exit(1);
  });
});
