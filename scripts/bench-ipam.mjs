#!/usr/bin/env node
// host-local ADD/DEL latency, whole process, ours (dist/bin/host-local) vs
// the reference (/usr/lib/cni/host-local), measured interleaved in one run:
// each iteration runs ours ADD, ref ADD, ours DEL, ref DEL, each binary in
// its own copy of the same prepared data directory.
//
//   node scripts/bench-ipam.mjs [--iterations 40] [--reservations 20000] [--ours path] [--ref path]
//
// Scenarios: an empty /24; a /16 already holding N reservations written
// directly in the reference's format (`<id>\r\n<ifname>`, last_reserved_ip.0
// pointing at the last one). Ours pays a one-off index build on its first
// operation in a directory it has not seen; that is reported separately, as
// is the cost of an operation right after the reference changed the
// directory (incremental index refresh), and — five samples rather than
// one — the build again with our index deleted.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const ITER = Number(opt('iterations', 40));
const PREFILL = Number(opt('reservations', 20000));
const OURS = opt('ours', process.env.FLAX_HOST_LOCAL ?? path.join(root, 'dist/bin/host-local'));
const REF = opt('ref', '/usr/lib/cni/host-local');
for (const b of [OURS, REF]) if (!existsSync(b)) { console.error(`missing ${b} (run node scripts/build.mjs)`); process.exit(2); }

const NET = 'bench';
const INDEX_ROOT = '.flax-host-local'; // ours: <dataDir>/.flax-host-local/<net>/
const conf = (dataDir, subnet) => JSON.stringify({ cniVersion: '1.0.0', name: NET, type: 'host-local', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]] } });

function call(bin, command, id, stdin) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  const t0 = process.hrtime.bigint();
  const r = spawnSync(bin, [], { env, input: stdin, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${path.basename(bin)} ${command} ${id} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return ms;
}

function prepare(prefill) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flax-bench-'));
  const dir = path.join(dataDir, NET);
  mkdirSync(dir, { recursive: true });
  let last = '';
  for (let i = 2; i < prefill + 2; i++) {
    last = `10.66.${i >> 8}.${i & 255}`;
    writeFileSync(path.join(dir, last), `pre${i}\r\neth0`, { mode: 0o644 });
  }
  if (last) writeFileSync(path.join(dir, 'last_reserved_ip.0'), last);
  return dataDir;
}

const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
};
const rows = [];
function row(scenario, op, ours, ref) {
  const r = { scenario, op, oMed: q(ours, 0.5), oP90: q(ours, 0.9), rMed: ref ? q(ref, 0.5) : NaN, rP90: ref ? q(ref, 0.9) : NaN };
  rows.push(r);
}

function scenario(label, subnet, prefill) {
  const dOurs = prepare(prefill);
  const dRef = prepare(prefill);
  const cO = conf(dOurs, subnet);
  const cR = conf(dRef, subnet);
  // first operation of ours on this directory: index build (one-off)
  const first = call(OURS, 'ADD', 'warm0', cO);
  call(OURS, 'DEL', 'warm0', cO);
  call(REF, 'ADD', 'warm0', cR);
  call(REF, 'DEL', 'warm0', cR);
  const t = { oa: [], ra: [], od: [], rd: [] };
  for (let i = 0; i < ITER; i++) {
    const id = `it${i}`;
    t.oa.push(call(OURS, 'ADD', id, cO));
    t.ra.push(call(REF, 'ADD', id, cR));
    t.od.push(call(OURS, 'DEL', id, cO));
    t.rd.push(call(REF, 'DEL', id, cR));
  }
  row(label, 'ADD', t.oa, t.ra);
  row(label, 'DEL', t.od, t.rd);
  // ours right after the reference changed the directory (rescan)
  const mixed = [];
  for (let i = 0; i < Math.min(10, ITER); i++) {
    call(REF, 'ADD', `m${i}`, cO);
    mixed.push(call(OURS, 'DEL', `m${i}`, cO));
  }
  row(label, 'DEL after a ref write (rescan)', mixed, null);
  row(label, 'first op in a new dir (index build)', [first], null);
  // the same build again, repeatedly: the index removed, the files kept
  const rebuilt = [];
  for (let i = 0; i < Math.min(5, ITER); i++) {
    rmSync(path.join(dOurs, INDEX_ROOT), { recursive: true, force: true });
    rebuilt.push(call(OURS, 'ADD', `f${i}`, cO));
    call(OURS, 'DEL', `f${i}`, cO);
  }
  row(label, 'ADD with the index removed (build)', rebuilt, null);
  rmSync(dOurs, { recursive: true, force: true });
  rmSync(dRef, { recursive: true, force: true });
}

scenario('empty /24', '10.66.0.0/24', 0);
scenario(`/16 + ${PREFILL} reservations`, '10.66.0.0/16', PREFILL);

const f = (x) => (Number.isNaN(x) ? '-' : x.toFixed(1));
const header = ['scenario', 'op', 'ours med', 'ours p90', 'ref med', 'ref p90', 'ours/ref (med)'];
const lines = rows.map((r) => [r.scenario, r.op, f(r.oMed), f(r.oP90), f(r.rMed), f(r.rP90), Number.isNaN(r.rMed) ? '-' : (r.oMed / r.rMed).toFixed(2)]);
const w = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
const fmt = (l) => `| ${l.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
console.log(`host-local latency, ms per process (iterations=${ITER}, node ${process.version})`);
console.log(fmt(header));
console.log(`|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
for (const l of lines) console.log(fmt(l));
