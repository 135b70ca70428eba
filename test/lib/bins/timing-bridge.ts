/**
 * Test/benchmark-only entry point: the bridge plugin with its step seam
 * recording timestamps (ms since process start). On exit it prints to
 * stderr `FLAX_TIMING {"loaded":…,"marks":[[step,ms]…],"end":…}` so a
 * benchmark can split start-up, module load and each ADD step.
 */
import { about, pluginMain } from '../../../plugins/pkg/skel/skel';
import { bridge } from '../../../plugins/suite';

const loaded = performance.now();
const marks: [string, number][] = [];
process.on('exit', () => {
  process.stderr.write(`FLAX_TIMING ${JSON.stringify({ loaded, marks, end: performance.now() })}\n`);
});
// as dist/bin/bridge's entry point builds it (host-local in-process), with the seam
pluginMain(bridge({ fault: (s) => { marks.push([s, performance.now()]); } }), about('bridge'));
