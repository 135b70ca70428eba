/**
 * A stand-alone runner of the resident CNI server, for tests and benchmarks
 * until flaxd starts it (`flaxd --cni-socket PATH`, `--no-overlay`):
 *   run [--socket PATH] [--workers N] [--max-workers N] [--mode OCTAL]
 * Prints `ready <socket>` on stdout once it accepts calls; SIGTERM/SIGINT
 * close it (calls in flight finish) and print its counts on stderr. Bundled by test/helpers/cniserver.ts.
 */
import { parseArgs } from 'node:util';
import { runMain } from '../skel/skel';
import { startCniServer } from './server';

runMain(() => {
  const { values } = parseArgs({
    options: {
      socket: { type: 'string' }, workers: { type: 'string' }, 'max-workers': { type: 'string' }, mode: { type: 'string' },
    },
  });
  startCniServer({
    socket: values.socket,
    workers: values.workers ? Number(values.workers) : undefined,
    maxWorkers: values['max-workers'] ? Number(values['max-workers']) : undefined,
    mode: values.mode ? parseInt(values.mode, 8) : undefined,
    log: (m) => process.stderr.write(`${m}\n`),
  }).then((srv) => {
    process.stdout.write(`ready ${srv.socket}\n`);
    const stop = () => srv.close().then(() => {
      const st = srv.stats();
      process.stderr.write(`cni server: stopped; served ${st.served}, failed ${st.failed}, refused ${st.refused}\n`);
      process.exit(0);
    });
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  }, (e: Error) => {
    process.stderr.write(`cni server: ${e.message}\n`);
    process.exit(1);
  });
});
