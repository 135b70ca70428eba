// Bundles the resident CNI server's stand-alone runner
// (plugins/pkg/cniserver/run.ts) into dir/flax-cni-server with the addons
// beside it, as scripts/build.mjs bundles dist/bin's executables (its worker
// threads load the same file). For benchmarks and test runs until flaxd
// starts the server itself.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function bundleCniServer(dir, distBin = path.join(root, 'dist/bin')) {
  mkdirSync(dir, { recursive: true });
  const out = path.join(dir, 'flax-cni-server');
  await build({
    entryPoints: [path.join(root, 'plugins/pkg/cniserver/run.ts')], outfile: out, bundle: true, platform: 'node',
    target: 'node20', format: 'cjs', logLevel: 'warning', define: { 'import.meta.url': '__imu', 'process.env.FLAX_BUNDLED': '"1"' },
    banner: { js: '#!/usr/bin/env node\nvar __imu=require("url").pathToFileURL(__filename).href;var __flaxDir=__dirname;\nfunction __flaxLoadAddon(n){var m={exports:{}};process.dlopen(m,require("path").join(__dirname,n));return m.exports;}' },
    plugins: [{
      name: 'netlink-native',
      setup(b) {
        b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, (a) => ({ contents: readFileSync(a.path, 'utf8').replace(/require\('node-gyp-build'\)\([^)]*\)/, "__flaxLoadAddon('netlink.node')"), loader: 'js' }));
      },
    }],
  });
  for (const a of ['netlink.node', 'flax.node']) copyFileSync(path.join(distBin, a), path.join(dir, a));
  return out;
}
