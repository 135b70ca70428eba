/**
 * Running the firewall tools (`nft`, `iptables-restore`, `iptables-save`)
 * through pkg/invoke's spawnProcess (the one spawn of the suite). Tools are looked up in
 * PATH and then in the sbin directories (runtimes often run plugins with a
 * PATH that lacks /usr/sbin).
 */
import { accessSync, constants, realpathSync } from 'node:fs';
import path from 'node:path';
import { spawnProcess } from '../invoke/exec';
import { native } from '../native';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}
/** Spawns `bin args` with `input` on stdin. Injectable for unit tests. */
export type Runner = (bin: string, args: string[], input?: string) => Promise<ExecResult>;

const SBIN = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin'];
const found = new Map<string, string | null>();

/** Absolute path of a tool, or null when it is not installed. */
export function findTool(name: string): string | null {
  if (found.has(name)) return found.get(name)!;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SBIN];
  let hit: string | null = null;
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      hit = p;
      break;
    } catch { /* next */ }
  }
  found.set(name, hit);
  return hit;
}

/** True when `iptables` is the nf_tables variant (its rules are visible to nft). */
export function iptablesIsNft(): boolean {
  const p = findTool('iptables');
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
function nftInProcess(args: string[], input?: string): ExecResult | undefined {
  if (input || process.env.FLAX_NFT_EXEC === '1') return undefined;
  try {
    return native().nftRun(args);
  } catch {
    return undefined;
  }
}

export const spawnRunner: Runner = async (bin, args, input) => {
  if (bin === 'nft') {
    const r = nftInProcess(args, input);
    if (r) return r;
  }
  const exe = bin.startsWith('/') ? bin : findTool(bin);
  if (!exe) throw new Error(`${bin} not found (install Debian package ${bin === 'nft' ? 'nftables' : 'iptables'})`);
  const r = await spawnProcess([exe, ...args], { stdin: input ?? '' });
  return { code: r.code ?? (r.signal ? 128 : 1), stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
};
