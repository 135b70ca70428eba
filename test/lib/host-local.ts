/** Black-box runner for host-local tests: exec a plugin binary like a runtime does. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './cni';

export { ROOT };
/** FLAX_HOST_LOCAL overrides (a private build while others rebuild dist/). */
export const OURS = process.env.FLAX_HOST_LOCAL ?? path.join(ROOT, 'dist/bin/host-local');
export const REF = '/usr/lib/cni/host-local';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface Call {
  command: string;
  id?: string;
  ifname?: string;
  netns?: string | null;
  args?: string;
  stdin: string | object;
}

export function run(bin: string, c: Call): Promise<Run> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: c.command, CNI_PATH: '/usr/lib/cni' };
  if (c.command !== 'GC' && c.command !== 'STATUS') {
    env.CNI_CONTAINERID = c.id ?? 'ctr';
    env.CNI_IFNAME = c.ifname ?? 'eth0';
    if (c.netns !== null) env.CNI_NETNS = c.netns ?? '/proc/self/ns/net';
  }
  if (c.args !== undefined) env.CNI_ARGS = c.args;
  const stdin = typeof c.stdin === 'string' ? c.stdin : JSON.stringify(c.stdin);
  return new Promise((resolve, reject) => {
    const p = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => {
      let json: unknown;
      try { json = stdout ? JSON.parse(stdout) : undefined; } catch { json = undefined; }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
    p.stdin.end(stdin);
  });
}

export function netConf(dataDir: string, ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, version = '1.1.0') {
  return { cniVersion: version, name: 'hlnet', type: 'bridge', ipam: { type: 'host-local', dataDir, ...ipam }, ...extra };
}

