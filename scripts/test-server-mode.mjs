#!/usr/bin/env node
// Runs integration test files with every dist/bin/<plugin> call answered by
// the resident CNI server (issue 15) instead of the standalone plugins:
// `flaxd --no-overlay` runs in a throwaway netns on a socket in a temp dir; the tests' CNI runner (test/lib/cni.ts) passes
// FLAX_CNI_SOCKET to the client. Fails if no call reached the server.
//
//   node scripts/test-server-mode.mjs [test files…]   (default: the plugin suites;
//   e2e files run as the e2e project — the runtimes pass FLAX_CNI_SOCKET on)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const files = process.argv.slice(2);
const tests = files.length ? files : ['bridge', 'host-local', 'loopback', 'portmap', 'flannel', 'bridge-interop', 'host-local-interop', 'portmap-interop'].map((f) => `test/integration/${f}.test.ts`);
if (process.getuid() !== 0) { console.error('test-server-mode: run as root'); process.exit(1); }

const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-srvmode-'));
const nsName = `flaxsrvmode-${process.pid}`;
let server;
const cleanup = () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  spawnSync('ip', ['netns', 'del', nsName]);
  rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

if (spawnSync('ip', ['netns', 'add', nsName]).status !== 0) throw new Error('ip netns add failed');
const socket = path.join(tmp, 'cni.sock');
server = spawn('nsenter', [`--net=/run/netns/${nsName}`, '--', path.join(root, 'dist/bin/flaxd'), '--no-overlay', '--cni-socket', socket, '--gc-interval', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
let log = '';
await new Promise((resolve, reject) => {
  server.stderr.on('data', (d) => { log += d; if (/ running$/m.test(log)) resolve(); });
  server.once('exit', (c) => reject(new Error(`server exited ${c}: ${log}`)));
});
const project = tests.every((t) => t.includes('test/e2e/')) ? 'e2e' : 'integration';
const vitest = spawnSync('npx', ['vitest', 'run', '--project', project, ...tests], { cwd: root, stdio: 'inherit', env: { ...process.env, FLAX_CNI_SOCKET: socket } });
const stopped = new Promise((resolve) => server.once('exit', resolve));
server.kill('SIGTERM');
await stopped;
const counts = /served (\d+), failed (\d+), refused (\d+), deferred (\d+)/.exec(log);
console.log(`test-server-mode: ${counts ? counts[0] : 'no counts'} (calls answered by the resident server; deferred = handed back to the standalone plugin, the caller being in another mount namespace)`);
process.exitCode = vitest.status !== 0 ? vitest.status ?? 1 : counts && Number(counts[1]) + Number(counts[2]) + Number(counts[4]) > 0 ? 0 : 1;
