/**
 * Black-box CNI runner for tests: executes a plugin binary with CNI_* env
 * and stdin, optionally inside a "host" netns (nsenter --net), as a runtime
 * would. Shared by test/integration/{bridge,loopback}*.test.ts and test/e2e.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** FLAX_TEST_BIN runs the suite against another build (e.g. the one before a fix). */
export const DIST_BIN = process.env.FLAX_TEST_BIN ?? path.join(ROOT, 'dist/bin');
export const REF_BIN = '/usr/lib/cni';

const publicCopies = new Map<string, string>();
/**
 * A build dir (default dist/bin) as another user (uid 65534) can run it: a
 * copy in a scratch dir everyone may enter, since the checkout may sit under
 * a directory only root enters (a clone in `mktemp -d`). Made once per test
 * process, removed at its exit.
 */
export function publicDistBin(dir = DIST_BIN): string {
  let d = publicCopies.get(dir);
  if (!d) {
    const copy = mkdtempSync(path.join(os.tmpdir(), 'flax-bin-'));
    chmodSync(copy, 0o755);
    cpSync(dir, copy, { recursive: true });
    process.on('exit', () => rmSync(copy, { recursive: true, force: true }));
    publicCopies.set(dir, copy);
    d = copy;
  }
  return d;
}

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  stdin?: string | object;
  /** run inside this netns (the test's "host"); default: the caller's */
  hostNs?: string;
  /** extra environment */
  env?: Record<string, string>;
  /** variables to leave unset */
  unset?: string[];
}
export interface CniOut {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (undefined if empty / not JSON) */
  json?: any;
  ms: number;
}

function build(bin: string, c: CniCall): { cmd: string; argv: string[]; env: NodeJS.ProcessEnv; input: string } {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...c.env };
  // scripts/test-server-mode.mjs runs the suite through a resident CNI server
  if (process.env.FLAX_CNI_SOCKET !== undefined && c.env?.FLAX_CNI_SOCKET === undefined) env.FLAX_CNI_SOCKET = process.env.FLAX_CNI_SOCKET;
  const set = (k: string, v: string | undefined) => { if (v !== undefined && !c.unset?.includes(k)) env[k] = v; };
  set('CNI_COMMAND', c.command);
  set('CNI_CONTAINERID', c.containerId);
  set('CNI_NETNS', c.netns);
  set('CNI_IFNAME', c.ifname);
  set('CNI_ARGS', c.args);
  set('CNI_PATH', c.path ?? DIST_BIN);
  const input = c.stdin === undefined ? '' : typeof c.stdin === 'string' ? c.stdin : JSON.stringify(c.stdin);
  const cmd = c.hostNs ? 'nsenter' : bin;
  const argv = c.hostNs ? [`--net=${c.hostNs}`, '--', bin] : [];
  return { cmd, argv, env, input };
}

function finish(code: number | null, stdout: string, stderr: string, t0: number): CniOut {
  let json: any;
  try { json = stdout.trim() ? JSON.parse(stdout) : undefined; } catch { json = undefined; }
  return { code: code ?? 255, stdout, stderr, json, ms: performance.now() - t0 };
}

/** Runs a plugin synchronously. */
export function cni(bin: string, c: CniCall): CniOut {
  const { cmd, argv, env, input } = build(bin, c);
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { env, input, encoding: 'utf8' });
  return finish(r.status, r.stdout, r.stderr, t0);
}

/** Runs a plugin asynchronously (for concurrent bursts). */
export function cniAsync(bin: string, c: CniCall): Promise<CniOut> {
  const { cmd, argv, env, input } = build(bin, c);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { env });
    let out = '', err = '';
    p.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => resolve(finish(code, out, err, t0)));
    p.stdin.end(input);
  });
}

export const ours = (name: string) => path.join(DIST_BIN, name);
export const theirs = (name: string) => path.join(REF_BIN, name);

/** Throws a clear message when dist/bin was not built. */
export function requireBuilt(...names: string[]): void {
  for (const n of names) {
    if (!existsSync(ours(n))) throw new Error(`${ours(n)} missing: run \`node scripts/build.mjs\` first`);
  }
}

/** `cmd args` inside a netns (nsenter), returns stdout; throws on failure unless allowFail. */
export function sh(ns: string | null, cmd: string, args: string[], allowFail = false): string {
  const r = ns ? spawnSync('nsenter', [`--net=${ns}`, '--', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** `ip -j …` parsed. */
export function ipj<T = any>(ns: string | null, args: string[]): T {
  const out = sh(ns, 'ip', ['-j', ...args]);
  return (out.trim() ? JSON.parse(out) : []) as T;
}
