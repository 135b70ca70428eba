#!/usr/bin/env node
// portmap ADD/DEL latency: flax's portmap (nftables and iptables backends)
// vs the reference (/usr/lib/cni/portmap, iptables), interleaved in one run.
// Each ADD maps 2 ports (tcp + udp) for a dual-stack pod (prevResult as
// bridge returns it); each DEL sends the same config, as runtimes do.
// Runs as root in a throwaway "node" netns holding `--pods` other mapped
// pods (a node is rarely empty); the root netns is untouched.
//
//   node scripts/bench-portmap.mjs [--runs 20] [--pods 20] [--bin dist/bin]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const runs = Number(arg('runs', '20'));
const pods = Number(arg('pods', '20'));
const bin = path.resolve(arg('bin', path.join(root, 'dist/bin')));
if (process.getuid() !== 0) { console.error('bench-portmap: run as root (it creates a network namespace)'); process.exit(1); }
if (!existsSync(path.join(bin, 'portmap'))) { console.error(`bench-portmap: ${bin}/portmap not found (npm run build)`); process.exit(1); }

const tag = `flaxbenchpm-${process.pid}`;
const nsPath = `/run/netns/${tag}`;
process.on('exit', () => spawnSync('ip', ['netns', 'del', tag]));
process.on('SIGINT', () => process.exit(130));
spawnSync('ip', ['netns', 'add', tag]);

const sets = [
  { name: 'flax nftables', exe: path.join(bin, 'portmap'), extra: { backend: 'nftables' } },
  { name: 'flax iptables', exe: path.join(bin, 'portmap'), extra: { backend: 'iptables' } },
];
if (existsSync('/usr/lib/cni/portmap')) sets.push({ name: 'reference v1.1.1 (iptables)', exe: '/usr/lib/cni/portmap', extra: {} });

const prev = (i) => ({
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cni0', mac: '02:00:00:00:00:01' }, { name: 'veth0', mac: '02:00:00:00:00:02' }, { name: 'eth0', mac: '02:00:00:00:00:03', sandbox: '/run/netns/x' }],
  ips: [{ interface: 2, address: `10.77.${i >> 8}.${i & 255}/16`, gateway: '10.77.0.1' }, { interface: 2, address: `fd77::${i.toString(16)}/64`, gateway: 'fd77::1' }],
});
const conf = (s, i) => JSON.stringify({
  cniVersion: '1.0.0', name: 'benchpm', type: 'portmap', capabilities: { portMappings: true }, ...s.extra,
  runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: 'tcp' }, { hostPort: 30000 + i, containerPort: 53, protocol: 'udp' }] },
  prevResult: prev(i),
});
function call(s, cmd, id, i) {
  const t = process.hrtime.bigint();
  const r = spawnSync('nsenter', [`--net=${nsPath}`, '--', s.exe], {
    input: conf(s, i), encoding: 'utf8',
    env: { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: cmd === 'DEL' ? '' : '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: bin },
  });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${s.name} ${cmd} failed: ${r.stdout}${r.stderr}`);
  return ms;
}

// background pods, half by each backend family, so listings are not trivially empty
for (let p = 0; p < pods; p++) call(sets[p % sets.length], 'ADD', `bg${p}`, 1000 + p);
const res = new Map(sets.map((s) => [s.name, { add: [], del: [] }]));
for (const s of sets) { call(s, 'ADD', 'warm', 2); call(s, 'DEL', 'warm', 2); }
for (let i = 0; i < runs; i++) {
  for (const s of i % 2 ? [...sets].reverse() : sets) {
    const r = res.get(s.name);
    r.add.push(call(s, 'ADD', `b${i}`, 10 + i));
    r.del.push(call(s, 'DEL', `b${i}`, 10 + i));
  }
}
const med = (xs) => { const a = [...xs].sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; };
console.log(`portmap ADD/DEL, ${runs} runs each, dual-stack pod, 2 mappings, ${pods} other pods mapped (median ms)`);
for (const [name, r] of res) console.log(`  ${name.padEnd(28)} ADD ${med(r.add).toFixed(1).padStart(6)}   DEL ${med(r.del).toFixed(1).padStart(6)}`);
