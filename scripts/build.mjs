// Bundles every executable into dist/bin/<name> (one self-contained CJS file
// each, run by node through its shebang) and copies the native addons beside
// them. Executables: plugins/**/main.ts (name = its directory) and the CLI.
import { build } from 'esbuild';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist/bin');

function findMains(dir, acc = []) {
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) { if (e !== 'node_modules') findMains(p, acc); }
    else if (e === 'main.ts') acc.push(p);
  }
  return acc;
}
const entries = findMains(path.join(root, 'plugins')).map((p) => {
  const dir = path.basename(path.dirname(p));
  return { name: dir === 'cli' ? 'flax' : dir, file: p };
});

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(path.join(root, 'dist/package.json'), '{"type":"commonjs"}\n');

// The netlink package finds its prebuilt addon relative to its own files;
// in a bundle it is loaded from beside the executable instead.
const netlinkNative = {
  name: 'netlink-native',
  setup(b) {
    b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, async (args) => {
      const { readFile } = await import('node:fs/promises');
      let src = await readFile(args.path, 'utf8');
      src = src.replace(/require\('node-gyp-build'\)\([^)]*\)/, "__flaxLoadAddon('netlink.node')");
      return { contents: src, loader: 'js' };
    });
  },
};
const banner = [
  '#!/usr/bin/env node',
  'var __imu=require("url").pathToFileURL(__filename).href;',
  'var __flaxDir=__dirname;',
  'function __flaxLoadAddon(n){var m={exports:{}};process.dlopen(m,require("path").join(__flaxDir,n));return m.exports;}',
].join('\n');

await Promise.all(entries.map((e) => build({
  entryPoints: [e.file],
  outfile: path.join(out, e.name),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifySyntax: true,
  legalComments: 'none',
  banner: { js: banner },
  define: { 'import.meta.url': '__imu', 'process.env.FLAX_BUNDLED': '"1"' },
  plugins: [netlinkNative],
  logLevel: 'warning',
})));
for (const e of entries) chmodSync(path.join(out, e.name), 0o755);

copyFileSync(path.join(root, 'node_modules/netlink/prebuilds/linux-x64/node.napi.node'), path.join(out, 'netlink.node'));
const addon = path.join(root, 'native/build/Release/flax.node');
if (existsSync(addon)) copyFileSync(addon, path.join(out, 'flax.node'));
const pause = path.join(root, 'native/build/pause');
if (existsSync(pause)) copyFileSync(pause, path.join(out, 'pause'));
console.error(`build: ${entries.map((e) => e.name).join(' ')} -> dist/bin`);
