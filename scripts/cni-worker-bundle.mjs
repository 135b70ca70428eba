// The resident CNI server's worker bundle (issue 15): flaxd's server runs each
// call on a worker thread that loads `cni-worker.js` from beside flaxd
// (dist/bin by scripts/build.mjs, dist/pkg by scripts/package.mjs) — the
// plugins only (~1 MB), not flaxd's 17 MB bundle, and a plain file, which a
// worker of the packaged single executable can load.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
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

/** Writes <dir>/cni-worker.js (and, unless codeCache is false, cni-worker.cache); returns its path. */
export async function buildCniWorker(dir, { codeCache: withCache = true } = {}) {
  const outfile = path.join(dir, CNI_WORKER);
  await build({
    ...BUNDLE_OPTIONS,
    entryPoints: [path.join(root, CNI_WORKER_ENTRY)],
    outfile,
    banner: { js: banner },
    plugins: [netlinkNative, zodEnglishOnly],
  });
  asciiOnly(outfile);
  if (withCache && process.env.FLAX_CODE_CACHE !== '0') codeCache(outfile);
  return outfile;
}

/**
 * cni-worker.cache beside the script: V8's code cache of Module.wrap(source),
 * as plugins/pkg/cniserver/inline.ts compiles it when dist/bin's flaxd serves
 * on its main thread while its first worker starts (issue 24; the package's
 * snapshot holds that code already).
 * Made after the module ran in a node of its own (the functions its load ran
 * are in it too); one V8 does not accept (another node, other flags) is a
 * plain compile.
 */
function codeCache(script) {
  const src = `
const fs = require('fs'), vm = require('vm'), Module = require('module'), path = require('path');
const file = ${JSON.stringify(script)};
const s = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), { filename: file });
try {
  const m = new Module(file, null); m.filename = file; m.paths = Module._nodeModulePaths(path.dirname(file));
  s.runInThisContext().call(m.exports, m.exports, Module.createRequire(file), m, file, path.dirname(file));
} catch { /* the compile's cache alone */ }
fs.writeFileSync(file.replace(/\.js$/, '') + '.cache', s.createCachedData());
`;
  const r = spawnSync(process.execPath, ['-e', src], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  if (r.status !== 0) console.error(`build: no code cache for ${script}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
}
