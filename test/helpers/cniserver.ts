/**
 * The resident CNI server for tests: `dist/bin/flaxd --no-overlay
 * --cni-socket <temp>/cni.sock --gc-interval 0` (no overlay, no sweeper),
 * started inside a test's netns with `nsenter --net`; the client finds it
 * through FLAX_CNI_SOCKET.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ours } from '../lib/cni';

export interface RunningServer {
  proc: ChildProcess;
  socket: string;
  dir: string;
  /** stderr so far */
  log(): string;
  /** SIGTERM and wait (calls in flight finish) */
  stop(): Promise<void>;
  /** SIGKILL and wait */
  kill(): Promise<void>;
}

/**
 * Starts flaxd --no-overlay in `hostNs` (null = the caller's netns) and waits
 * until it accepts. `extra` flags come last (e.g. `--cni-socket` another path);
 * `env` is added to this process's environment.
 */
export async function startServer(hostNs: string | null, extra: string[] = [], env: Record<string, string> = {}): Promise<RunningServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'flax-cnisrv-'));
  let socket = path.join(dir, 'cni.sock');
  const i = extra.lastIndexOf('--cni-socket');
  if (i >= 0) socket = extra[i + 1];
  const argv = [ours('flaxd'), '--no-overlay', '--cni-socket', path.join(dir, 'cni.sock'), '--gc-interval', '0', ...extra];
  const opts = { stdio: ['ignore', 'ignore', 'pipe'] as ('ignore' | 'pipe')[], env: { ...process.env, ...env } };
  const proc = hostNs ? spawn('nsenter', [`--net=${hostNs}`, '--', ...argv], opts) : spawn(argv[0], argv.slice(1), opts);
  let err = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`flaxd --no-overlay did not start: ${err}`)), 30_000);
    proc.stderr!.setEncoding('utf8').on('data', (d) => {
      err += d;
      if (/ running$/m.test(err)) { clearTimeout(t); resolve(); }
    });
    proc.once('exit', (code) => { clearTimeout(t); rmSync(dir, { recursive: true, force: true }); reject(new Error(`flaxd --no-overlay exited ${code}: ${err}`)); });
  });
  const wait = async (sig: NodeJS.Signals) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return { proc, socket, dir, log: () => err, stop: () => wait('SIGTERM'), kill: () => wait('SIGKILL') };
}
