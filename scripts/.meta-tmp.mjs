import { build } from 'esbuild';
import { etcd3Protos } from './esbuild-etcd3.mjs';
import { BUNDLE_OPTIONS, netlinkNative, zodEnglishOnly } from './entries.mjs';
const r = await build({ ...BUNDLE_OPTIONS, entryPoints: [process.argv[2]], write: false, outfile: '/tmp/mem2/x.js', metafile: true, plugins: [netlinkNative, zodEnglishOnly, etcd3Protos] });
const out = Object.values(r.metafile.outputs)[0];
const pk = {};
for (const [f, v] of Object.entries(out.inputs)) { const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(f); const k = m ? m[1] : f.split('/').slice(0, 3).join('/'); pk[k] = (pk[k] || 0) + v.bytesInOutput; }
console.log('total', out.bytes);
for (const [k, v] of Object.entries(pk).sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(String(v).padStart(9), k);
