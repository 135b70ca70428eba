// The resident CNI server's worker bundle (issue 15): flaxd's server runs each
// call on a worker thread that loads `cni-worker.js` from beside flaxd
// (dist/bin by scripts/build.mjs, dist/pkg by scripts/package.mjs) — the
// plugins only (~1 MB), not flaxd's 17 MB bundle, and a plain file, which a
// worker of the packaged single executable can load.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { asciiOnly, BUNDLE_OPTIONS, CNI_WORKER_ENTRY, loadAddonBanner, netlinkNative, zodEnglishOnly } from './entries.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CNI_WORKER = 'cni-worker.js';
/** The executables the static client stands in for: what the server serves (plugins/suite.ts servedPlugins; a unit test checks). */
export const CNI_CLIENT_NAMES = ['bridge', 'host-local', 'loopback', 'flannel', 'portmap'];

// __flaxDir / __flaxLoadAddon as in build.mjs's banner: the addons are beside the worker file
const banner = [
  '// flax CNI server worker (scripts/cni-worker-bundle.mjs)',
  'var __imu=require("url").pathToFileURL(__filename).href;',
  'var __flaxLoadDir=__dirname;',
  'Object.defineProperty(globalThis,"__flaxDir",{configurable:true,get(){return __flaxLoadDir}});',
  loadAddonBanner('__flaxLoadDir'),
].join('\n');

/** Writes <dir>/cni-worker.js; returns its path. */
export async function buildCniWorker(dir) {
  const outfile = path.join(dir, CNI_WORKER);
  await build({
    ...BUNDLE_OPTIONS,
    entryPoints: [path.join(root, CNI_WORKER_ENTRY)],
    outfile,
    banner: { js: banner },
    plugins: [netlinkNative, zodEnglishOnly],
  });
  asciiOnly(outfile);
  return outfile;
}
