// `flax`: the cnitool-style client, netns helper, node status and demo.
import { runMain } from '../pkg/skel/skel';
import { main } from './cli';

runMain(() => {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`flax: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
});
