/**
 * IPAM delegation, as the spec describes it: find the plugin named by
 * `ipam.type` in CNI_PATH, run it with the WHOLE network config on stdin
 * and the same CNI environment with CNI_COMMAND set to the verb, parse its
 * result or error.
 *
 * When the executable found is one of our own bundles (a flax plugin whose
 * PluginFuncs were registered with `registerInProcess`), the same request
 * goes through `handle()` in this process instead of a fork+exec of a new
 * node process: same input, same output bytes, same errors — just without
 * ~40 ms of interpreter start-up. A foreign plugin of the same name (the Go
 * host-local, say) is always exec'd.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { CniError, ErrCode } from '../cni/errors';
import { parseResult } from '../cni/convert';
import type { Result } from '../cni/types';
import { type About, type CmdArgs, type Command, type PluginFuncs, type Request, type Response, handle } from '../skel/skel';

export interface InProcessPlugin {
  plugin: PluginFuncs;
  about: About;
  /** ADD's input checks without side effects (see execValidate) */
  validateAdd?: (a: CmdArgs) => Promise<void>;
}
const registry = new Map<string, InProcessPlugin>();

/** Lets `type` run in-process when the binary found in CNI_PATH is a flax bundle. */
export function registerInProcess(type: string, p: InProcessPlugin): void {
  registry.set(type, p);
}

/** Forgets every registration: every delegation then execs (tests). */
export function clearInProcess(): void {
  registry.clear();
}

/**
 * True when `file` is one of our executables: scripts/build.mjs marks both
 * the bundle (`// flax-executable`) and its snapshot launcher
 * (`# flax-executable launcher`) in the first lines, the server's static
 * client at its end (see isFlaxClient); older bundles are
 * recognised by their banner (`#!/usr/bin/env node` + `__flaxDir`).
 */
export function isFlaxBundle(file: string): boolean {
  if (isFlaxPackage(file)) return true;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(512);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const head = buf.subarray(0, n).toString('latin1');
    if (head.startsWith('\x7fELF')) return isFlaxClient(fd);
    if (!head.startsWith('#!')) return false;
    return /^(\/\/|#) flax-executable\b/m.test(head) || (head.startsWith('#!/usr/bin/env node') && head.includes('__flaxDir'));
  } finally {
    closeSync(fd);
  }
}

/**
 * True when `file` is a name of our self-contained multi-call binary
 * (`npm run package`, `flax install`): it resolves to a file beside a
 * PACKAGE.json that lists the name among its executables.
 */
function isFlaxPackage(file: string): boolean {
  try {
    const real = realpathSync(file);
    const pkg = JSON.parse(readFileSync(path.join(path.dirname(real), 'PACKAGE.json'), 'utf8')) as { executables?: unknown };
    return Array.isArray(pkg.executables) && pkg.executables.includes(path.basename(file));
  } catch {
    return false;
  }
}

/**
 * The static client of the resident CNI server (native/cniclient) ends with
 * `# flax-executable cniclient`: it runs our plugin, here or standalone.
 */
function isFlaxClient(fd: number): boolean {
  const size = fstatSync(fd).size;
  const tail = Buffer.alloc(64);
  const n = readSync(fd, tail, 0, tail.length, Math.max(0, size - tail.length));
  return tail.subarray(0, n).toString('latin1').endsWith('\n# flax-executable cniclient\n');
}

/** libcni's FindInPath: first `dir/type` that is a file. */
export function findInPath(type: string, paths: readonly string[], label = 'IPAM plugin'): string {
  if (!type) throw new CniError(ErrCode.InvalidNetworkConfig, `${label} type is empty`);
  if (type.includes('/') || type === '.' || type === '..' || type.includes('\0')) {
    throw new CniError(ErrCode.InvalidNetworkConfig, `invalid ${label} type "${type.slice(0, 64)}"`, 'a plugin type is a file name, not a path');
  }
  if (!paths.length) throw new CniError(ErrCode.InvalidEnvironmentVariables, 'no paths provided in CNI_PATH');
  for (const dir of paths) {
    const p = path.join(dir, type);
    try {
      if (statSync(p).isFile()) return p;
    } catch { /* next */ }
  }
  throw new CniError(ErrCode.InvalidNetworkConfig, `failed to find plugin "${type}" in path [${paths.join(' ')}]`);
}

function requestFor(command: Command, a: CmdArgs, stdin: string | Buffer): Request {
  const full = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  return {
    command,
    containerId: full || a.containerId ? a.containerId : undefined,
    netns: full || a.netns ? a.netns : undefined,
    ifname: full || a.ifname ? a.ifname : undefined,
    args: a.args || undefined,
    path: a.path.join(':'),
    stdin,
  };
}

function envFor(req: Request): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const set = (k: string, v: string | undefined) => {
    if (v === undefined) delete env[k];
    else env[k] = v;
  };
  set('CNI_COMMAND', req.command);
  set('CNI_CONTAINERID', req.containerId);
  set('CNI_NETNS', req.netns);
  set('CNI_IFNAME', req.ifname);
  set('CNI_ARGS', req.args);
  set('CNI_PATH', req.path);
  return env;
}

/** Runs the executable with stderr passed through (as libcni does). */
function execPlugin(file: string, req: Request, label: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env: envFor(req), stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('error', (e) => reject(new CniError(ErrCode.Internal, `failed to run ${label} ${file}: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (signal) reject(new CniError(ErrCode.Internal, `${label} ${file} killed by ${signal}`));
      else resolve({ stdout: Buffer.concat(out).toString('utf8'), exitCode: code ?? 1 });
    });
    child.stdin.on('error', () => { /* reported by close */ });
    child.stdin.end(req.stdin);
  });
}

/** How a delegation ran (for tests and benchmarks). */
export type DelegationMode = 'in-process' | 'exec';

/**
 * Runs one verb of a delegated plugin (IPAM, or a meta-plugin's delegate:
 * `label` names it in messages). Returns the parsed stdout object (null
 * when empty). A non-zero exit becomes a CniError carrying the plugin's
 * code/msg/details.
 */
export async function ipamInvoke(
  command: Command, type: string, a: CmdArgs, stdin: string | Buffer, label = 'IPAM plugin',
): Promise<{ out: Record<string, unknown> | null; mode: DelegationMode; file: string }> {
  const file = findInPath(type, a.path, label);
  const req = requestFor(command, a, stdin);
  const local = registry.get(type);
  const mode: DelegationMode = local && isFlaxBundle(file) ? 'in-process' : 'exec';
  const res = mode === 'in-process' ? await handle(local!.plugin, local!.about, req) : await execPlugin(file, req, label);
  const text = res.stdout.trim();
  let out: Record<string, unknown> | null = null;
  if (text) {
    try {
      out = JSON.parse(text) as Record<string, unknown>;
    } catch {
      if (res.exitCode !== 0) throw new CniError(ErrCode.Internal, `${label} ${type} failed (exit ${res.exitCode}): ${text.slice(0, 200)}`);
      throw new CniError(ErrCode.DecodingFailure, `${label} ${type} printed invalid JSON: ${text.slice(0, 200)}`);
    }
  }
  if (res.exitCode !== 0) {
    const code = typeof out?.code === 'number' ? out.code : ErrCode.Internal;
    const msg = typeof out?.msg === 'string' ? out.msg : `${label} ${type} failed (exit ${res.exitCode})`;
    throw new CniError(code, msg, typeof out?.details === 'string' ? out.details : '');
  }
  return { out, mode, file };
}

/**
 * Runs the IPAM plugin's ADD input checks (bad requested IPs, a missing
 * resolvConf, …) without reserving anything, so that the caller can refuse
 * a request before its own first side effect. Only possible in-process (a
 * plugin we run through `handle()`); for an exec'd plugin only its
 * presence in CNI_PATH is checked, and its ADD reports the rest.
 */
export async function execValidate(type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  const file = findInPath(type, a.path);
  const local = registry.get(type);
  if (!local?.validateAdd || !isFlaxBundle(file)) return;
  await local.validateAdd({ ...a, command: 'ADD', stdin });
}

/** IPAM ADD → the result in canonical form. */
export async function execAdd(type: string, a: CmdArgs, stdin: string | Buffer, confVersion: string): Promise<Result> {
  const { out } = await ipamInvoke('ADD', type, a, stdin);
  if (!out) throw new CniError(ErrCode.DecodingFailure, `IPAM plugin ${type} returned no result`);
  const v = typeof out.cniVersion === 'string' ? out.cniVersion : confVersion;
  return parseResult(out, v);
}
export async function execDel(type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await ipamInvoke('DEL', type, a, stdin);
}
export async function execCheck(type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await ipamInvoke('CHECK', type, a, stdin);
}
export async function execStatus(type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await ipamInvoke('STATUS', type, a, stdin);
}
export async function execGc(type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await ipamInvoke('GC', type, a, stdin);
}
