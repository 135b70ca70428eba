// Bundles every executable into dist/bin/<name> (one self-contained CJS file
// each, run by node through its shebang) and copies the native addons beside
// them. Executables: scripts/entries.mjs EXECUTABLES (plugins/bin/<name>.ts, the CLI, flaxd).
import { build } from 'esbuild';
import { etcd3Protos } from './esbuild-etcd3.mjs';
import { asciiOnly, BUNDLE_OPTIONS, loadAddonBanner, MINIFY, executableEntries, netlinkNative, yargsNoLocaleFiles, zodEnglishOnly } from './entries.mjs';
import { buildCniWorker, CNI_CLIENT_NAMES } from './cni-worker-bundle.mjs';
import { spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Module from 'node:module';
import vm from 'node:vm';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// Built beside dist/bin and swapped in at the end, so that a test running
// dist/bin while a build goes on never sees it half-written.
const final = path.join(root, 'dist/bin');
const out = path.join(root, `dist/bin.new-${process.pid}`);

const entries = executableEntries(root);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(path.join(root, 'dist/package.json'), '{"type":"commonjs"}\n');

// `__flaxDir` is the directory holding the executable and its addons. It is
// a getter, not a value: in a V8 startup snapshot the load-time __dirname is
// the build directory, so a deserialize callback the banner registers while
// the snapshot is built sets it from argv[1] (the launcher passes the
// bundle's real path there). The plugins' code knows nothing of it.
const banner = [
  '#!/usr/bin/env node',
  '// flax-executable',
  'var __imu=require("url").pathToFileURL(__filename).href;',
  'var __flaxLoadDir=__dirname;',
  '(function(s){if(s&&s.isBuildingSnapshot())s.addDeserializeCallback(function(){__flaxLoadDir=require("path").dirname(process.argv[1])})})(require("v8").startupSnapshot);',
  'Object.defineProperty(globalThis,"__flaxDir",{configurable:true,get(){return __flaxLoadDir}});',
  loadAddonBanner('globalThis.__flaxDir'),
].join('\n');

// flaxd_build_info{version,commit} (plugins/agent/metrics.ts): package.json's version and the
// checkout's commit at build time ("-dirty" with uncommitted changes; "unknown" outside a git checkout)
const gitOut = (...args) => {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
};
const commit = gitOut('rev-parse', '--short=12', 'HEAD');
const buildCommit = commit ? `${commit}${gitOut('status', '--porcelain', '--untracked-files=no') ? '-dirty' : ''}` : 'unknown';
const buildVersion = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version;

await Promise.all(entries.map((e) => build({
  ...BUNDLE_OPTIONS,
  define: { ...BUNDLE_OPTIONS.define, 'process.env.FLAX_BUILD_COMMIT': JSON.stringify(buildCommit), 'process.env.FLAX_BUILD_VERSION': JSON.stringify(buildVersion) },
  // flaxd is a daemon (no snapshot, below): its start-up matters little, its stack traces do
  // (FLAX_MINIFY=0: readable bundles, e.g. for --cpu-prof)
  ...(e.name === 'flaxd' || process.env.FLAX_MINIFY === '0' ? {} : MINIFY),
  entryPoints: [e.file],
  outfile: path.join(out, e.name + '.js'),
  banner: { js: banner },
  plugins: [netlinkNative, zodEnglishOnly, yargsNoLocaleFiles, etcd3Protos],
}).then(() => asciiOnly(path.join(out, e.name + '.js')))));
// the resident CNI server's worker threads load this one (issue 15)
await buildCniWorker(out);

// Each executable: a V8 startup snapshot of its bundle (the modules already
// evaluated: ~40% less start-up) behind a tiny sh launcher; the plain bundle
// is the fallback when the snapshot cannot be built (FLAX_SNAPSHOT=0 skips it).
const useSnapshot = process.env.FLAX_SNAPSHOT !== '0';
// A blob only loads in the node binary that built it: any other node (an
// upgrade, another node first in PATH) exits 14 before any JS runs, with no
// CNI error on stdout. So the launcher uses the blob only when `node` is
// still that binary (same device:inode:size:mtime), else the plain bundle.
const st = statSync(process.execPath);
const nodeId = `${st.dev}:${st.ino}:${st.size}:${Math.floor(st.mtimeMs / 1000)}`;
const launcher = (name) => `#!/bin/sh
# flax-executable launcher: node with ${name}'s V8 startup snapshot (scripts/build.mjs)
case $0 in */*) d=\${0%/*} ;; *) d=$(dirname "$(command -v "$0")") ;; esac
[ -L "$0" ] && d=$(dirname "$(readlink -f "$0")")
n=$(command -v node) && [ "$(stat -Lc %d:%i:%s:%Y "$n" 2>/dev/null)" = "${nodeId}" ] &&
  exec node --snapshot-blob "$d/${name}.blob" "$d/${name}.js" "$@"
exec node "$d/${name}.js" "$@"
`;
// flaxd (no snapshot, above): dist/bin/flaxd loads flaxd.js with V8's code cache of its compile (flaxd.cache, made
// here: ~30 ms less start-up, which is the first call of an auto-started CNI server, issue 24); a cache V8 does
// not accept (another node, other flags) is a plain compile
const CODE_CACHED = new Set(['flaxd']);
const cachedSource = (js) => Module.wrap(readFileSync(js, 'utf8').replace(/^#!.*/, ''));
const codeCacheLoader = (name) => `#!/usr/bin/env node
// flax-executable loader: ${name}.js compiled with V8's code cache of it, ${name}.cache (scripts/build.mjs)
'use strict';
const fs = require('fs'), path = require('path'), vm = require('vm'), Module = require('module');
const file = path.join(path.dirname(fs.realpathSync(__filename)), '${name}.js');
let cachedData;
try { cachedData = fs.readFileSync(file.slice(0, -3) + '.cache'); } catch { /* none: a plain compile */ }
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(path.dirname(file));
// the source exactly as cachedSource() in scripts/build.mjs made it for the cache
const fn = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8').replace(/^#!.*/, '')), { filename: file, cachedData }).runInThisContext();
fn.call(m.exports, m.exports, Module.createRequire(file), m, file, path.dirname(file));
`;
for (const e of entries) {
  const js = path.join(out, e.name + '.js');
  chmodSync(js, 0o755);
  let snapped = false;
  // flaxd is a daemon: start-up time matters little, memory does — every
  // worker thread of its CNI server (issue 15) would carry the snapshot's
  // heap too (~53 MiB a worker instead of ~23): the plain bundle
  if (useSnapshot && e.name !== 'flaxd') {
    const r = spawnSync(process.execPath, ['--snapshot-blob', path.join(out, e.name + '.blob'), '--build-snapshot', js], { cwd: out, encoding: 'utf8' });
    snapped = r.status === 0;
    if (!snapped) console.error(`build: no snapshot for ${e.name}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
  if (snapped) writeFileSync(path.join(out, e.name), launcher(e.name), { mode: 0o755 });
  else if (CODE_CACHED.has(e.name) && process.env.FLAX_CODE_CACHE !== '0') {
    writeFileSync(path.join(out, `${e.name}.cache`), new vm.Script(cachedSource(js), { filename: js }).createCachedData());
    writeFileSync(path.join(out, e.name), codeCacheLoader(e.name), { mode: 0o755 });
  } else copyFileSync(js, path.join(out, e.name));
  chmodSync(path.join(out, e.name), 0o755);
}

copyFileSync(path.join(root, 'node_modules/netlink/prebuilds/linux-x64/node.napi.node'), path.join(out, 'netlink.node'));
const addon = path.join(root, 'native/build/Release/flax.node');
if (existsSync(addon)) copyFileSync(addon, path.join(out, 'flax.node'));
for (const helper of ['pause', 'nsexec']) {
  const bin = path.join(root, 'native/build', helper);
  if (existsSync(bin)) copyFileSync(bin, path.join(out, helper));
}
// Issue 15: dist/bin/<plugin> is the static client of the resident CNI
// server (native/cniclient; plugins/suite.ts servedPlugins names what it
// serves), and the Node executable above stays as <plugin>.standalone: the
// client runs it when no server answers. FLAX_CNI_CLIENT=0 skips this.
const cniClient = path.join(root, 'native/build/cniclient');
if (process.env.FLAX_CNI_CLIENT !== '0' && existsSync(cniClient)) {
  for (const name of CNI_CLIENT_NAMES) {
    if (!existsSync(path.join(out, name))) continue;
    renameSync(path.join(out, name), path.join(out, `${name}.standalone`));
    copyFileSync(cniClient, path.join(out, name));
    chmodSync(path.join(out, name), 0o755);
  }
}
const old = path.join(root, `dist/bin.old-${process.pid}`);
if (existsSync(final)) renameSync(final, old);
renameSync(out, final);
rmSync(old, { recursive: true, force: true });
console.error(`build: ${entries.map((e) => e.name).join(' ')} -> dist/bin`);
