/**
 * The resident CNI server for tests and benchmarks: plugins/pkg/cniserver/run.ts
 * bundled like dist/bin's executables (its workers load the same bundle),
 * started inside a test's "host" netns with `nsenter --net`, on a socket in
 * a temp dir that the client finds through FLAX_CNI_SOCKET.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildTestBin } from '../e2e/lib/build-test-bin';

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

let bundle: Promise<string> | undefined;
/** The bundled server runner (built once per test file). */
export function cniServerBin(): Promise<string> {
  bundle ??= buildTestBin('plugins/pkg/cniserver/run.ts', 'flax-cni-server');
  return bundle;
}

/** Starts the server in `hostNs` (null = the caller's netns) and waits until it accepts. */
export async function startServer(hostNs: string | null, extra: string[] = []): Promise<RunningServer> {
  const bin = await cniServerBin();
  const dir = mkdtempSync(path.join(tmpdir(), 'flax-cnisrv-'));
  const socket = path.join(dir, 'cni.sock');
  const argv = [bin, '--socket', socket, ...extra];
  const proc = hostNs ? spawn('nsenter', [`--net=${hostNs}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d) => { err += d; });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`cni server did not start: ${err}`)), 30_000);
    proc.stdout!.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (out.includes('ready ')) { clearTimeout(t); resolve(); }
    });
    proc.once('exit', (code) => { clearTimeout(t); reject(new Error(`cni server exited ${code}: ${err}`)); });
  });
  const wait = async (sig: NodeJS.Signals) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return { proc, socket, dir, log: () => err, stop: () => wait('SIGTERM'), kill: () => wait('SIGKILL') };
}
