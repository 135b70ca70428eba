// What both builds bundle (scripts/build.mjs → dist/bin, scripts/package.mjs
// → dist/pkg): the executables listed here, and the esbuild plugin that
// loads the netlink package's addon from beside the executable.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readFile } from 'node:fs/promises';

/**
 * Every executable: its name in dist/bin and its entry point — the CLI's
 * and flaxd's main.ts, and each plugin's in plugins/bin/, which takes its
 * plugin from the composition root, plugins/suite.ts (scripts/entries.test.ts
 * checks the list against plugins/).
 */
export const EXECUTABLES = [
  { name: 'flax', file: 'plugins/cli/main.ts' },
  { name: 'flaxd', file: 'plugins/agent/main.ts' },
  { name: 'bridge', file: 'plugins/bin/bridge.ts' },
  { name: 'loopback', file: 'plugins/bin/loopback.ts' },
  { name: 'host-local', file: 'plugins/bin/host-local.ts' },
  { name: 'flannel', file: 'plugins/bin/flannel.ts' },
  { name: 'portmap', file: 'plugins/bin/portmap.ts' },
];

/** plugins/bin's entry that is no executable: the CNI server's worker script (scripts/cni-worker-bundle.mjs). */
export const CNI_WORKER_ENTRY = 'plugins/bin/cni-worker.ts';

/** [{ name, file }] of every executable, with absolute paths under <root>. */
export function executableEntries(root) {
  return EXECUTABLES.map(({ name, file }) => ({ name, file: path.join(root, file) }));
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

/**
 * The banner line that defines `__flaxLoadAddon(name)`: the addon `name`
 * from the directory `dirExpr` (a JS expression) evaluates to, dlopened once
 * per thread and kept. Each process.dlopen runs the addon's init again, and
 * an N-API init defines its classes anew: V8 keeps every FunctionTemplate
 * for the isolate's life, so netlink's getter (above), read for each socket,
 * made the CNI server keep ~25 KB per call (issue 26).
 */
export const loadAddonBanner = (dirExpr) =>
  `var __flaxAddons=Object.create(null);function __flaxLoadAddon(n){var m=__flaxAddons[n];if(!m){m={exports:{}};process.dlopen(m,require("path").join(${dirExpr},n));__flaxAddons[n]=m}return m.exports;}`;

// zod's classic API re-exports its 40-odd message locales (`z.locales`);
// flax uses only the English one zod configures itself with. Leaving the
// others out keeps 340 KB of source out of every bundle and of every V8
// startup snapshot (a snapshot's size is paid in page faults at each start).
export const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({ contents: 'export { default as en } from "./en.js";', loader: 'js' }));
  },
};

// yargs' messages come from y18n, which reads `<its locales dir>/<locale>.json`
// from disk; bundled, that dir resolves under the working directory: a
// `locales/en_US.json` there would change flax's messages, and one that cannot
// be read (EACCES: a user whose working directory it may not enter) made a
// usage error print "flax: EACCES: … locales/en_US.json" after the real one.
// Without the shim's readFileSync, y18n uses its English keys and reads nothing
// (its own branch for bundlers).
const Y18N_READ = [/fs: \{\s*readFileSync,/, /readFileSync: fs\.readFileSync,/];
export const yargsNoLocaleFiles = {
  name: 'yargs-no-locale-files',
  setup(b) {
    b.onLoad({ filter: /y18n[\\/]build[\\/](index\.cjs|lib[\\/]platform-shims[\\/]node\.js)$/ }, async (args) => {
      const src = await readFile(args.path, 'utf8');
      const re = Y18N_READ.find((r) => r.test(src));
      if (!re) throw new Error(`${args.path}: y18n's readFileSync shim not found (yargsNoLocaleFiles needs updating)`);
      return { contents: src.replace(re, (m) => (m.startsWith('fs') ? 'fs: {' : '')), loader: 'js' };
    });
  },
};

// What the one-shot executables (plugins, the CLI) add: minified source,
// names kept for stack traces. A smaller snapshot starts faster (~6 ms a
// plugin process on this machine, bench: scripts/bench-server.mjs).
export const MINIFY = { minifyWhitespace: true, minifyIdentifiers: true, keepNames: true };

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

/**
 * Makes a bundle ASCII-only. V8 keeps a script's source in memory for the
 * process's life, as a one-byte string only when every character is Latin-1:
 * one "\u2192" in a comment esbuild keeps made flaxd's whole bundle a
 * two-byte string, twice its size in RSS (issue 24). esbuild already escapes
 * every non-ASCII character of code, strings and regular expressions
 * (charset ascii, its default); what is left is in comments, made '?'.
 */
export function asciiOnly(file) {
  const src = readFileSync(file, 'utf8');
  if (/[^\x00-\x7f]/.test(src)) writeFileSync(file, src.replace(/[^\x00-\x7f]/g, '?'));
}
