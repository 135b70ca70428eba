// What both builds bundle (scripts/build.mjs → dist/bin, scripts/package.mjs
// → dist/pkg): every plugins/**/main.ts as an executable named after its
// directory (the CLI is `flax`, the agent `flaxd`), and the esbuild plugin
// that loads the netlink package's addon from beside the executable.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

function findMains(dir, acc = []) {
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) { if (e !== 'node_modules') findMains(p, acc); }
    else if (e === 'main.ts') acc.push(p);
  }
  return acc;
}

// directories whose executable has another name
const RENAMED = { cli: 'flax', agent: 'flaxd' };

/** [{ name, file }] of every executable under <root>/plugins. */
export function executableEntries(root) {
  return findMains(path.join(root, 'plugins')).map((file) => {
    const dir = path.basename(path.dirname(file));
    return { name: RENAMED[dir] ?? dir, file };
  });
}

// The netlink package finds its prebuilt addon relative to its own files;
// in a bundle it is loaded from beside the executable instead, on first use
// (so that no addon is loaded while a snapshot is built).
export const netlinkNative = {
  name: 'netlink-native',
  setup(b) {
    b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(/require\('node-gyp-build'\)\([^)]*\)/, "{get NativeNetlink(){return __flaxLoadAddon('netlink.node').NativeNetlink}}"),
      loader: 'js',
    }));
  },
};

// esbuild options every executable bundle shares (CJS for node 20; the
// banner of each build supplies __imu, __flaxDir and __flaxLoadAddon)
export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifySyntax: true,
  legalComments: 'none',
  define: { 'import.meta.url': '__imu', 'process.env.FLAX_BUNDLED': '"1"' },
  logLevel: 'warning',
};
