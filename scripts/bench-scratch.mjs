// The scratch side of the benchmarks that run flaxd in throwaway network
// namespaces (bench-server, bench-soak, bench-footprint): a temporary
// directory, `ip netns` names tagged with the pid, the children started
// killed and everything removed when the process exits (also after a
// failure or ^C), this thread joined to a namespace through flax's addon
// (the processes it spawns start there), and `flaxd --no-overlay` waited for;
// and a host set up with `flax install --server auto` (also bench-chain).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

/** `name`: the namespaces' prefix (pid appended); `tmpPrefix`: the temporary directory's. */
export function benchScratch(name, tmpPrefix) {
  const tag = `${name}-${process.pid}`;
  const tmp = mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
  const sh = (cmd, args) => { const r = spawnSync(cmd, args, { encoding: 'utf8' }); if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`); return r.stdout; };
  const nsNames = [];
  /** children killed at exit */
  const children = new Set();
  /** a new netns `<tag>-<n>`; returns its path */
  const addNs = (n) => { sh('ip', ['netns', 'add', `${tag}-${n}`]); nsNames.push(`${tag}-${n}`); return `/run/netns/${tag}-${n}`; };
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const n of nsNames) spawnSync('ip', ['netns', 'del', n]);
    rmSync(tmp, { recursive: true, force: true });
  });
  process.on('SIGINT', () => process.exit(130));
  /** This thread only joins the netns at `nsPath` (its spawns start there), through the addon at `addonPath`. */
  const enter = (nsPath, addonPath) => {
    const native = createRequire(import.meta.url)(addonPath);
    native.setns(openSync(nsPath, 'r'), native.constants.CLONE_NEWNET);
  };
  return { tag, tmp, sh, addNs, children, enter };
}

/** `flaxd --no-overlay` with its CNI server on `socket` (no sweeper); resolves with the process once it logs "running". */
export async function startCniOnlyFlaxd(flaxd, socket, children) {
  const server = spawn(flaxd, ['--no-overlay', '--cni-socket', socket, '--gc-interval', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(server);
  let log = '';
  await new Promise((resolve, reject) => {
    server.stderr.on('data', (d) => { log += d; if (/ running$/m.test(log)) resolve(); });
    server.once('exit', (c) => reject(new Error(`flaxd exited ${c}: ${log}`)));
  });
  return server;
}

/** The environment of a host's plugin clients with the auto server's socket, log and mode file under `dir` (bench-chain, bench-server --server auto). */
export function autoServerEnv(dir) {
  return { FLAX_CNI_SOCKET: path.join(dir, 'run/cni.sock'), FLAX_LOG_DIR: path.join(dir, 'log'), FLAX_CONFIG_DIR: path.join(dir, 'etc') };
}

/** As on a host: `flax install --server auto` of the package `pkg` into `dir/bin` (conflists `dir/net.d`, the mode file where `env`'s clients read it); returns the bin dir; a failed install exits, `who` says. */
export function installAutoServer(who, pkg, dir, env) {
  const bin = path.join(dir, 'bin');
  const r = spawnSync(path.join(pkg, 'flax'), ['install', '--cni-bin-dir', bin, '--cni-conf-dir', path.join(dir, 'net.d'), '--from', pkg, '--server', 'auto'], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  if (r.status !== 0) { console.error(`${who}: flax install --server auto: ${r.stderr}`); process.exit(1); }
  return bin;
}

/** Kills the flaxd a client started on `socket` (its pid is in `<socket>.lock`); none started, nothing. */
export function killAutoServer(socket) {
  try {
    const pid = Number(readFileSync(`${socket}.lock`, 'utf8').trim());
    if (pid > 1) process.kill(pid, 'SIGKILL');
  } catch { /* none started */ }
}
