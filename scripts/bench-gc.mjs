#!/usr/bin/env node
// Benchmark: one `flax gc` sweep of a node holding N stale attachments
// (a node after an OOM or a reboot: netns gone, no DEL) and M live ones.
//   node scripts/bench-gc.mjs [--stale 5000] [--live 500]
// The state is laid down the way bridge + host-local leave it, in bulk:
// libcni cache files (cniCacheV1), host-local reservation files, nftables
// masquerade rules and the iptables "tombstone" chains + jumps, all inside a
// throwaway "node" netns (the machine's root netns is never touched). Live
// attachments point at real pinned namespaces. Prints the sweep's wall time
// and checks that every stale trace is gone and no live one was touched.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const STALE = arg('--stale', 5000);
const LIVE = arg('--live', 500);
const BIN = path.join(root, 'dist/bin');
if (!existsSync(path.join(BIN, 'flax'))) { console.error('run npm run build first'); process.exit(1); }

const tmp = mkdtempSync(path.join(tmpdir(), 'flax-bench-gc-'));
const tag = `fgc${process.pid % 10000}`;
const pins = [];
const sh = (cmd, args, input) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const inNode = (cmd, args, input) => sh('nsenter', [`--net=/run/netns/${tag}-node`, '--', cmd, ...args], input);
function cleanup() {
  for (const p of pins) spawnSync('ip', ['netns', 'del', p]);
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

sh('ip', ['netns', 'add', `${tag}-node`]);
pins.push(`${tag}-node`);

const NET = 'benchgc';
const confDir = path.join(tmp, 'net.d');
const cacheDir = path.join(tmp, 'cache');
const dataDir = path.join(tmp, 'ipam');
for (const d of [confDir, path.join(cacheDir, 'results'), path.join(dataDir, NET)]) mkdirSync(d, { recursive: true });
const conflist = {
  cniVersion: '1.0.0', name: NET,
  plugins: [{ type: 'loopback' }, { type: 'bridge', bridge: 'benchgc0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.200.0.0/16' }]] } }],
};
const confBytes = JSON.stringify(conflist);
writeFileSync(path.join(confDir, '10-benchgc.conflist'), confBytes);

const hex = (s, alg, n) => createHash(alg).update(s).digest('hex').slice(0, n);
const mac = (i, k) => `0a:${k}:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}:01`;
const ipOf = (i) => `10.200.${(i + 2) >> 8}.${(i + 2) & 255}`;

console.error(`laying down ${STALE} stale + ${LIVE} live attachments…`);
const nftLines = [
  'table inet cni_plugins_masquerade {',
  '  chain masq_checks { }',
  '  chain postrouting { type nat hook postrouting priority srcnat; policy accept; ip daddr 224.0.0.0/4 return; ip6 daddr ff00::/8 return; goto masq_checks; }',
  '}',
];
const ipt = ['*nat'];
const iptJumps = [];
const all = [];
for (let i = 0; i < STALE + LIVE; i++) {
  const live = i >= STALE;
  const id = `${live ? 'live' : 'stale'}-${i}`;
  let netns = `/run/netns/${tag}-gone-${i}`;
  if (live) {
    const name = `${tag}-p${i}`;
    sh('ip', ['netns', 'add', name]);
    pins.push(name);
    netns = `/run/netns/${name}`;
  }
  const ip = ipOf(i);
  const result = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'benchgc0', mac: '0a:00:00:00:00:01' }, { name: `veth${hex(id, 'sha1', 8)}`, mac: mac(i, '01') }, { name: 'eth0', mac: mac(i, '02'), sandbox: netns }],
    ips: [{ interface: 2, address: `${ip}/16`, gateway: '10.200.0.1' }],
    routes: [],
  };
  const cache = { kind: 'cniCacheV1', containerId: id, config: Buffer.from(confBytes).toString('base64'), ifName: 'eth0', networkName: NET, netns, result };
  writeFileSync(path.join(cacheDir, 'results', `${NET}-${id}-eth0`), JSON.stringify(cache));
  writeFileSync(path.join(dataDir, NET, ip), `${id}\r\neth0`);
  nftLines.push(`add rule inet cni_plugins_masquerade masq_checks ip saddr ${ip} ip daddr != 10.200.0.0/16 masquerade comment "name: ${NET} id: ${id}"`);
  const chain = `CNI-${hex(NET + id, 'sha512', 24)}`;
  ipt.push(`:${chain} - [0:0]`);
  iptJumps.push(`-A POSTROUTING -s ${ip} -j ${chain} -m comment --comment "name: \\"${NET}\\" id: \\"${id}\\""`);
  all.push({ id, ip, live, chain });
}
writeFileSync(path.join(tmp, 'rules.nft'), nftLines.join('\n') + '\n');
inNode('nft', ['-f', path.join(tmp, 'rules.nft')]);
inNode('iptables-restore', ['-w', '--noflush'], [...ipt, ...iptJumps, 'COMMIT', ''].join('\n'));

const liveState = () => all.filter((a) => a.live).map((a) => {
  const r = path.join(dataDir, NET, a.ip);
  const c = path.join(cacheDir, 'results', `${NET}-${a.id}-eth0`);
  return `${existsSync(r) ? readFileSync(r, 'utf8') : '-'}|${existsSync(c) ? readFileSync(c, 'utf8').length : '-'}`;
}).join('\n');
const count = () => {
  const rules = inNode('nft', ['list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']).split('\n').filter((l) => l.includes('masquerade comment'));
  const save = inNode('iptables-save', ['-t', 'nat']).split('\n');
  return {
    reservations: readdirSync(path.join(dataDir, NET)).filter((f) => /^\d/.test(f)).length,
    cache: readdirSync(path.join(cacheDir, 'results')).length,
    rules: rules.length,
    liveRules: rules.filter((l) => l.includes('id: live-')).length,
    chains: save.filter((l) => l.startsWith(':CNI-')).length,
    jumps: save.filter((l) => l.startsWith('-A POSTROUTING') && l.includes('CNI-')).length,
  };
};
const liveBefore = liveState();
const before = count();

const t0 = performance.now();
const r = spawnSync('nsenter', [`--net=/run/netns/${tag}-node`, '--', path.join(BIN, 'flax'), 'gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir,
  '--cni-path', BIN, '--min-age', '0', '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
const ms = performance.now() - t0;
if (r.status !== 0) { console.error(r.stderr.slice(0, 2000)); process.exit(1); }
const rep = JSON.parse(r.stdout);
const after = count();
const liveTouched = liveState() !== liveBefore || after.liveRules !== LIVE;
const swept = rep.findings.filter((f) => f.kind === 'attachment' && f.action === 'removed').length;

console.log(`flax gc: ${STALE} stale + ${LIVE} live attachments (bridge + host-local, ipMasq, iptables tombstones)`);
console.log(`  wall time          ${(ms / 1000).toFixed(2)} s   (goal ≤ 30 s)`);
console.log(`  swept (DEL)        ${swept} / ${STALE}`);
console.log(`  before → after     reservations ${before.reservations} → ${after.reservations}, cache ${before.cache} → ${after.cache}, `
  + `nft rules ${before.rules} → ${after.rules}, ipt chains ${before.chains} → ${after.chains}, jumps ${before.jumps} → ${after.jumps}`);
console.log(`  live touched       ${liveTouched ? 'YES' : '0'}`);
console.log(`  errors             ${rep.errors.length}${rep.errors.length ? ': ' + rep.errors.slice(0, 3).join('; ') : ''}`);
const ok = swept === STALE && !liveTouched && after.reservations === LIVE && after.cache === LIVE && after.rules === LIVE && after.chains === LIVE && after.jumps === LIVE;
console.log(ok ? '  result             every stale trace removed, every live one kept' : '  result             MISMATCH (see above)');
