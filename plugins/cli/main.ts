// `flax`: the cnitool-style client, netns helper, node status and demo.
import { main } from './cli';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`flax: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
