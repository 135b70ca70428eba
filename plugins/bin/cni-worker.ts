// The resident CNI server's worker threads (scripts/cni-worker-bundle.mjs → cni-worker.js): the suite's plugins, served.
// Loaded on dist/bin flaxd's main thread instead (pkg/cniserver/inline.ts), it serves there while the first worker starts.
import { runCniWorker } from '../pkg/cniserver/worker';
import { inCniWorker, warmSkel } from '../pkg/skel/skel';
import { warmBridge } from '../main/bridge/warm';
import { warmPortmap } from '../meta/portmap/warm';
import { servedPlugins } from '../suite';

export { inlineServer } from '../suite';

const plugins = servedPlugins();
if (inCniWorker()) {
  // before the worker says it is ready (the main thread serves meanwhile, issue 24): its first bridge chain does
  // not compile on the caller's time what the executables' snapshots hold compiled (pure: no file, no kernel)
  warmSkel(plugins.bridge.plugin, plugins.bridge.about);
  warmBridge();
  warmPortmap();
}
runCniWorker(plugins);
