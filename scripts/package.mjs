// `npm run package`: one self-contained multi-call executable for hosts
// without Node.js, in dist/pkg/ (docs: PACKAGING.md, README "Packaging").
//
//   dist/pkg/flax          a Node single executable application (SEA): the
//                          node binary + every executable's bundle, with a V8
//                          startup snapshot of all their modules evaluated
//   dist/pkg/<name>        symlinks to flax: flaxd (when plugins/agent exists);
//                          it runs the executable its name (argv0) says
//   dist/pkg/cniclient     the static client of flaxd's resident CNI server
//                          (native/cniclient), and bridge host-local loopback
//                          flannel portmap: symlinks to it; with no server it
//                          runs `flax` as <name> (the standalone plugin)
//   dist/pkg/cni-worker.js the CNI server's worker threads' script
//   dist/pkg/flax-deps.js  the store clients (etcd3, KubeConfig), outside the
//                          snapshot: loaded on first use
//   dist/pkg/flax.node netlink.node   N-API addons, process.dlopen'ed from
//                          beside the binary (a SEA cannot require() them)
//   dist/pkg/pause nsexec  the static C helpers
//
// FLAX_SEA_SNAPSHOT=0 builds the plain SEA (code cache, no snapshot).
import { build } from 'esbuild';
import { etcd3Protos } from './esbuild-etcd3.mjs';
import { asciiOnly, BUNDLE_OPTIONS, loadAddonBanner, MINIFY, executableEntries, netlinkNative, yargsNoLocaleFiles, zodEnglishOnly } from './entries.mjs';
import { buildCniWorker, CNI_CLIENT_NAMES, CNI_WORKER } from './cni-worker-bundle.mjs';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const final = path.join(root, 'dist/pkg');
const out = path.join(root, `dist/pkg.new-${process.pid}`);
const work = path.join(root, `dist/pkg-work-${process.pid}`);
const SENTINEL = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const entries = executableEntries(root).map(({ name, file }) => {
  // An entry whose main goes through runMain/pluginMain can be evaluated while
  // the snapshot is built (its main is collected, not run); any other entry
  // runs on load, so it is required only when its name is called.
  const collected = /\b(runMain|pluginMain)\(/.test(readFileSync(file, 'utf8'));
  return { name, file, collected };
}).sort((a, b) => a.name.localeCompare(b.name));

// The multi-call entry. Names are exact; `flax-<anything>` (e.g. a renamed
// binary) is the CLI. Unknown names exit 127 with one line.
const rel = (f) => './' + path.relative(root, f).split(path.sep).join('/');
const entrySrc = `
const path = require('path');
const { collectMain } = require(${JSON.stringify(rel(path.join(root, 'plugins/pkg/skel/skel.ts')))});
const mains = Object.create(null);
const lazy = Object.create(null);
${entries.map((e) => e.collected
    ? `collect(${JSON.stringify(e.name)}, () => require(${JSON.stringify(rel(e.file))}));`
    : `lazy[${JSON.stringify(e.name)}] = () => require(${JSON.stringify(rel(e.file))});`).join('\n')}
// the CNI server's plugins for its main thread while its first worker starts (plugins/pkg/cniserver/inline.ts):
// in the snapshot, so an auto-started flaxd serves its first call without loading cni-worker.js
Object.defineProperty(globalThis, '__flaxInlineServer', { value: require(${JSON.stringify(rel(path.join(root, 'plugins/suite.ts')))}).inlineServer });
function collect(name, load) {
  const main = collectMain(load);
  if (!main) throw new Error('multi-call: ' + name + ' registered no main');
  mains[name] = main;
}
function dispatch() {
  let name = path.basename(process.argv0 || process.argv[1] || 'flax');
  if (!(name in mains) && !(name in lazy) && /^flax[-.]/.test(name)) name = 'flax';
  if (name in mains) return mains[name]();
  if (name in lazy) return lazy[name]();
  process.stderr.write('flax: unknown executable name "' + name + '" (one of: ' + [...Object.keys(mains), ...Object.keys(lazy)].sort().join(', ') + ')\\n');
  process.exit(127);
}
const snap = require('v8').startupSnapshot;
if (snap && snap.isBuildingSnapshot()) snap.setDeserializeMainFunction(dispatch);
else dispatch();
`;

// The store clients outside the snapshot (issue 24): etcd3 (with gRPC and
// protobufjs) and @kubernetes/client-node's KubeConfig are ~1.5 MB of the
// bundle that only an etcd- or kube-store flaxd (and the CLI's kube paths)
// load. In the snapshot every process of the package would deserialize
// them, and keep their source and a copy of the blob; here they are
// flax-deps.js beside the binary, required (createRequire) at their first
// dynamic import(). Everything else stays in the snapshot.
const SIDE_DEPS = ['etcd3', '@kubernetes/client-node/dist/config.js'];
const DEPS_FILE = 'flax-deps.js';
const sideDeps = {
  name: 'flax-side-deps',
  setup(b) {
    const filter = new RegExp(`^(${SIDE_DEPS.map((d) => d.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'flax-side-deps' }));
    b.onLoad({ filter: /.*/, namespace: 'flax-side-deps' }, (args) => ({ contents: `module.exports = globalThis.__flaxDeps(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

// As scripts/build.mjs's banner, but the addons are always beside the
// binary: process.execPath is the SEA itself (symlinks resolved).
const banner = [
  '// flax-executable (multi-call SEA)',
  'var __imu=require("url").pathToFileURL(process.execPath).href;',
  'Object.defineProperty(globalThis,"__flaxDir",{configurable:true,get(){return require("path").dirname(process.execPath)}});',
  loadAddonBanner('globalThis.__flaxDir'),
  `Object.defineProperty(globalThis,"__flaxDeps",{configurable:true,value:function(n){var d=globalThis.__flaxDepsFile;if(!d){var f=require("path").join(globalThis.__flaxDir,${JSON.stringify(DEPS_FILE)});d=globalThis.__flaxDepsFile=require("module").createRequire(f)(f);}return d.load(n);}});`,
].join('\n');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: work, ...opts });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

const t0 = Date.now();
rmSync(work, { recursive: true, force: true });
rmSync(out, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
mkdirSync(out, { recursive: true });
const bundle = path.join(work, 'multicall.js');
await build({
  ...BUNDLE_OPTIONS,
  ...MINIFY,
  stdin: { contents: entrySrc, resolveDir: root, sourcefile: 'multicall.js', loader: 'js' },
  outfile: bundle,
  banner: { js: banner },
  plugins: [netlinkNative, zodEnglishOnly, yargsNoLocaleFiles, sideDeps],
});
asciiOnly(bundle);
await build({
  ...BUNDLE_OPTIONS,
  ...MINIFY,
  stdin: {
    contents: `const deps = { ${SIDE_DEPS.map((d) => `${JSON.stringify(d)}: () => require(${JSON.stringify(d)})`).join(', ')} };\nexports.load = (name) => deps[name]();\n`,
    resolveDir: root, sourcefile: DEPS_FILE, loader: 'js',
  },
  outfile: path.join(out, DEPS_FILE),
  banner: { js: `// flax's store clients, loaded by the multi-call binary beside this file on first use (scripts/package.mjs)\nvar __imu=require("url").pathToFileURL(__filename).href;` },
  plugins: [etcd3Protos],
});
asciiOnly(path.join(out, DEPS_FILE));

// The SEA blob: with a startup snapshot unless it cannot be built (then the
// plain SEA with a code cache, said loudly).
function prepBlob(useSnapshot) {
  const cfg = path.join(work, 'sea-config.json');
  writeFileSync(cfg, JSON.stringify({
    main: bundle, output: path.join(work, 'sea.blob'), disableExperimentalSEAWarning: true,
    ...(useSnapshot ? { useSnapshot: true } : { useCodeCache: true }),
  }));
  return run(process.execPath, ['--experimental-sea-config', cfg]);
}
let snapshot = process.env.FLAX_SEA_SNAPSHOT !== '0';
if (snapshot) {
  const r = prepBlob(true);
  if (!r.ok) {
    console.error(`package: no SEA startup snapshot (plain SEA instead): ${r.out.split('\n').slice(-3).join(' ')}`);
    snapshot = false;
  }
}
if (!snapshot) {
  const r = prepBlob(false);
  if (!r.ok) throw new Error(`package: --experimental-sea-config failed: ${r.out}`);
}

const exe = path.join(out, 'flax');
copyFileSync(process.execPath, exe);
chmodSync(exe, 0o755);
const postject = path.join(root, 'node_modules/postject/dist/cli.js');
const pj = run(process.execPath, [postject, exe, 'NODE_SEA_BLOB', path.join(work, 'sea.blob'), '--sentinel-fuse', SENTINEL]);
if (!pj.ok) throw new Error(`package: postject failed: ${pj.out}`);

// A smoke run before anything is swapped in: the binary starts and knows its names.
const v = run(exe, ['--version'], { env: { PATH: '/usr/bin:/bin' } });
if (!v.ok || !/^flax /.test(v.out)) throw new Error(`package: ${exe} --version failed: ${v.out}`);

// the plugins the resident CNI server serves go through its static client
const client = path.join(root, 'native/build/cniclient');
if (!existsSync(client)) throw new Error('package: native/build/cniclient missing (node scripts/build-native.mjs)');
copyFileSync(client, path.join(out, 'cniclient'));
chmodSync(path.join(out, 'cniclient'), 0o755);
const clients = entries.map((e) => e.name).filter((n) => CNI_CLIENT_NAMES.includes(n));
for (const e of entries) if (e.name !== 'flax') symlinkSync(clients.includes(e.name) ? 'cniclient' : 'flax', path.join(out, e.name));
await buildCniWorker(out, { codeCache: false }); // the snapshot holds what the main thread serves with
copyFileSync(path.join(root, 'node_modules/netlink/prebuilds/linux-x64/node.napi.node'), path.join(out, 'netlink.node'));
const addon = path.join(root, 'native/build/Release/flax.node');
if (!existsSync(addon)) throw new Error('package: native/build/Release/flax.node missing (npm run build)');
copyFileSync(addon, path.join(out, 'flax.node'));
for (const helper of ['pause', 'nsexec']) {
  const bin = path.join(root, 'native/build', helper);
  if (!existsSync(bin)) throw new Error(`package: ${bin} missing (npm run build)`);
  copyFileSync(bin, path.join(out, helper));
}
// What install copies, and how the binary was made (read by flax install and the tests).
writeFileSync(path.join(out, 'PACKAGE.json'), JSON.stringify({
  executables: entries.map((e) => e.name),
  files: ['flax', 'flax.node', 'netlink.node', 'pause', 'nsexec', 'cniclient', CNI_WORKER, DEPS_FILE],
  // names that are links to cniclient (the others link to flax)
  clients,
  snapshot,
  node: process.version,
}, null, 2) + '\n');

const old = path.join(root, `dist/pkg.old-${process.pid}`);
if (existsSync(final)) renameSync(final, old);
renameSync(out, final);
rmSync(old, { recursive: true, force: true });
rmSync(work, { recursive: true, force: true });
console.error(`package: dist/pkg/flax (${snapshot ? 'SEA + startup snapshot' : 'plain SEA'}, ${Math.round(statSync(path.join(final, 'flax')).size / 1e6)} MB) `
  + `for ${entries.map((e) => e.name).join(' ')} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
