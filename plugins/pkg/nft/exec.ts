/**
 * Running the firewall tools (`nft`, `iptables-restore`, `iptables-save`).
 * The one place in pkg/nft that spawns processes. Tools are looked up in
 * PATH and then in the sbin directories (runtimes often run plugins with a
 * PATH that lacks /usr/sbin).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, realpathSync } from 'node:fs';
import path from 'node:path';

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

export const spawnRunner: Runner = (bin, args, input) =>
  new Promise((resolve, reject) => {
    const exe = bin.startsWith('/') ? bin : findTool(bin);
    if (!exe) {
      reject(new Error(`${bin} not found (install Debian package ${bin === 'nft' ? 'nftables' : 'iptables'})`));
      return;
    }
    const child = spawn(exe, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.on('error', () => { /* child exited early; reported by close */ });
    child.stdin.end(input ?? '');
  });
