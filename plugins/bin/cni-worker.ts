// The resident CNI server's worker threads (scripts/cni-worker-bundle.mjs → cni-worker.js): the suite's plugins, served.
// Loaded on dist/bin flaxd's main thread instead (pkg/cniserver/inline.ts), it serves there while the first worker starts.
import { runCniWorker } from '../pkg/cniserver/worker';
import { servedPlugins } from '../suite';

export { inlineServer } from '../suite';

runCniWorker(servedPlugins());
