// The resident CNI server's worker threads (scripts/cni-worker-bundle.mjs → cni-worker.js): the suite's plugins, served.
import { runCniWorker } from '../pkg/cniserver/worker';
import { servedPlugins } from '../suite';

runCniWorker(servedPlugins());
