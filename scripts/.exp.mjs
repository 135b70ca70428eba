import { build } from 'esbuild';
import { etcd3Protos } from './esbuild-etcd3.mjs';
import { BUNDLE_OPTIONS, netlinkNative, zodEnglishOnly } from './entries.mjs';
import { readFileSync } from 'node:fs';
const [out, ext] = process.argv.slice(2);
const banner = readFileSync('dist/bin/flaxd.js', 'utf8').split('\n').slice(0, 6).join('\n');
const r = await build({ ...BUNDLE_OPTIONS, entryPoints: ['plugins/agent/main.ts'], outfile: out, external: ext ? ext.split(',') : [], banner: { js: banner }, plugins: [netlinkNative, zodEnglishOnly, etcd3Protos] });
