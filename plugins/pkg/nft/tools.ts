/**
 * Running the firewall tools (`nft`, `iptables-restore`, `iptables-save`)
 * through pkg/invoke's spawnProcess, for a caller's environment (a Host's
 * `tools`, toolsFor). Tools are looked up in the caller's PATH and then in
 * the sbin directories (runtimes often run plugins with a PATH that lacks
 * /usr/sbin).
 */
import { accessSync, constants, realpathSync } from 'node:fs';
import path from 'node:path';
import type { ExecResult, Runner, Tools } from '../host/host';
import { spawnProcess } from '../invoke/plugin-exec';
import { native } from '../native';

export type { ExecResult, Runner, Tools };

type Env = Readonly<Record<string, string | undefined>>;
const SBIN = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin'];
/** lookups by PATH and name: what is installed does not change while a process runs */
const found = new Map<string, string | null>();

/** Absolute path of a tool (looked up in `pathVar`, then the sbin dirs), or null when it is not installed. */
export function findTool(name: string, pathVar: string | undefined = process.env.PATH): string | null {
  const memo = `${pathVar ?? ''}\0${name}`;
  if (found.has(memo)) return found.get(memo)!;
  const dirs = [...(pathVar ?? '').split(':').filter(Boolean), ...SBIN];
  let hit: string | null = null;
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      hit = p;
      break;
    } catch { /* next */ }
  }
  found.set(memo, hit);
  return hit;
}

/** True when `iptables` is the nf_tables variant (its rules are visible to nft). */
export function iptablesIsNft(pathVar: string | undefined = process.env.PATH): boolean {
  const p = findTool('iptables', pathVar);
  if (!p) return false;
  try {
    return !realpathSync(p).includes('legacy');
  } catch {
    return false;
  }
}

/**
 * `nft` through libnftables in this process (the addon's nftRun: same
 * library, same output, no process; on the calling thread, so in its
 * netns): undefined when the addon or the library is missing, an option is
 * not handled, or FLAX_NFT_EXEC=1 — then the command runs.
 */
function nftInProcess(env: Env, args: string[], input?: string): ExecResult | undefined {
  if (input || env.FLAX_NFT_EXEC === '1') return undefined;
  try {
    return native().nftRun(args);
  } catch {
    return undefined;
  }
}

/** Runs tools as a caller with environment `env` would: found in its PATH, spawned with its environment. */
export function runnerFor(env: Env): Runner {
  return async (bin, args, input) => {
    if (bin === 'nft') {
      const r = nftInProcess(env, args, input);
      if (r) return r;
    }
    const exe = bin.startsWith('/') ? bin : findTool(bin, env.PATH);
    if (!exe) throw new Error(`${bin} not found (install Debian package ${bin === 'nft' ? 'nftables' : 'iptables'})`);
    const r = await spawnProcess([exe, ...args], { stdin: input ?? '', env: env as NodeJS.ProcessEnv });
    return { code: r.code ?? (r.signal ? 128 : 1), stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
  };
}

/** This process's tool runner (flaxd, the CLI; a plugin uses its Host's). */
export const spawnRunner: Runner = (bin, args, input) => runnerFor(process.env)(bin, args, input);

/** The firewall tools for a caller with environment `env` (a Host's `tools`). */
export function toolsFor(env: Env): Tools {
  return { run: runnerFor(env), iptablesNft: () => iptablesIsNft(env.PATH), has: (t) => findTool(t, env.PATH) !== null, tmpDir: () => tmpdirOf(env) };
}

/** os.tmpdir() as it answers for a process with environment `env`. */
function tmpdirOf(env: Env): string {
  if (env === process.env) return (process.getBuiltinModule('node:os') as typeof import('node:os')).tmpdir();
  const t = env.TMPDIR || env.TMP || env.TEMP;
  return t && t.length > 1 && t.endsWith('/') ? t.slice(0, -1) : t || '/tmp';
}
