// `flax`: the cnitool-style client, netns helper, node status and demo.
import { runMain } from '../pkg/skel/skel';
import { main } from './cli';

/** Exits once stdout and stderr are flushed: on a pipe their writes are
 * asynchronous, and process.exit() would cut a large report short. */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => { if (--pending === 0) process.exit(code); };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

runMain(() => {
  main(process.argv.slice(2)).then(
    (code) => exitAfterFlush(code),
    (e) => {
      process.stderr.write(`flax: ${e instanceof Error ? e.message : String(e)}\n`);
      exitAfterFlush(1);
    },
  );
});
