/**
 * Bundles a test-only plugin entry (e.g. faulty-bridge.ts) the way
 * scripts/build.mjs bundles dist/bin: CJS, native addons beside it.
 */
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { DIST_BIN, ROOT } from './cni';

const banner = [
  '#!/usr/bin/env node',
  'var __imu=require("url").pathToFileURL(__filename).href;',
  'var __flaxDir=__dirname;',
  'function __flaxLoadAddon(n){var m={exports:{}};process.dlopen(m,require("path").join(__dirname,n));return m.exports;}',
].join('\n');

/** Returns the path of the bundled executable (in a fresh temp dir). */
export async function buildTestBin(entry: string, name: string): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'flax-testbin-'));
  const out = path.join(dir, name);
  await build({
    entryPoints: [path.resolve(ROOT, entry)],
    outfile: out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    banner: { js: banner },
    define: { 'import.meta.url': '__imu', 'process.env.FLAX_BUNDLED': '"1"' },
    plugins: [{
      name: 'netlink-native',
      setup(b) {
        b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, (args) => ({
          contents: readFileSync(args.path, 'utf8').replace(/require\('node-gyp-build'\)\([^)]*\)/, "__flaxLoadAddon('netlink.node')"),
          loader: 'js',
        }));
      },
    }],
    logLevel: 'warning',
  });
  for (const addon of ['netlink.node', 'flax.node']) copyFileSync(path.join(DIST_BIN, addon), path.join(dir, addon));
  const { chmodSync } = await import('node:fs');
  chmodSync(out, 0o755);
  return out;
}
