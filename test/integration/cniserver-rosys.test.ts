/**
 * The resident CNI server where /proc/sys is read-only, as in conf/flax.yml's
 * container (runc mounts /proc/sys read-only unless privileged): the
 * plugins' sysctls (bridge's ip_forward, portmap's route_localnet) are
 * written through the caller's /proc, in the caller's netns, instead of
 * failing with EROFS (issue 22: hostPort pods failed under the DaemonSet).
 * The server runs in its own netns and a private mount namespace whose
 * /proc/sys is remounted read-only; the caller ("host") is another netns.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeCniServer } from '../../plugins/pkg/cniserver/probe';
import { cni, ours, requireBuilt } from '../lib/cni';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';

let srvNs: string, host: string, pod: string, tmp: string, socket: string;
let srv: ChildProcess | undefined;
let log = '';

beforeAll(async () => {
  requireBuilt('bridge', 'portmap', 'flaxd');
  [srvNs, host, pod] = createTestNetns(3);
  tmp = mkdtempSync(path.join(tmpdir(), 'flax-rosys-'));
  socket = path.join(tmp, 'cni.sock');
  const script = 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"';
  srv = spawn('nsenter', [`--net=${srvNs}`, '--', 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh',
    ours('flaxd'), '--no-overlay', '--cni-socket', socket, '--gc-interval', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    srv!.stderr!.setEncoding('utf8').on('data', (d) => { log += d; if (/ running$/m.test(log)) resolve(); });
    srv!.once('exit', (c) => reject(new Error(`flaxd exited ${c}: ${log}`)));
  });
}, 60_000);
afterAll(async () => {
  if (srv && srv.exitCode === null) {
    srv.kill('SIGTERM');
    await new Promise((r) => srv!.once('exit', r));
  }
  destroyTestNetns([srvNs, host, pod].filter(Boolean));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('CNI server with a read-only /proc/sys', () => {
  it('bridge (ip_forward) and portmap (route_localnet) ADD, CHECK-free DEL: served, the sysctls set in the caller\'s netns', async () => {
    const sysctl = (key: string) => execIn(host, 'cat', [`/proc/sys/${key}`]).trim();
    expect(sysctl('net/ipv4/ip_forward')).toBe('0');
    const base = { cniVersion: '1.0.0', name: 'rosys' };
    const bridge = { ...base, type: 'bridge', bridge: 'brro0', isGateway: true, ipam: { type: 'host-local', dataDir: path.join(tmp, 'ipam'), ranges: [[{ subnet: '10.79.0.0/24' }]] } };
    const portmap = { ...base, type: 'portmap', capabilities: { portMappings: true }, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] } };
    const call = { containerId: 'rosys1', netns: pod, ifname: 'eth0', hostNs: host, env: { FLAX_CNI_SOCKET: socket } };
    const add = cni(ours('bridge'), { ...call, command: 'ADD', stdin: bridge });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const pm = cni(ours('portmap'), { ...call, command: 'ADD', stdin: { ...portmap, prevResult: add.json } });
    expect(pm.code, pm.stdout + pm.stderr).toBe(0);
    expect(sysctl('net/ipv4/ip_forward')).toBe('1');
    expect(sysctl('net/ipv4/conf/brro0/route_localnet')).toBe('1');
    for (const [p, conf] of [['portmap', portmap], ['bridge', bridge]] as const) {
      const del = cni(ours(p), { ...call, command: 'DEL', stdin: { ...conf, prevResult: pm.json } });
      expect(del.code, del.stdout + del.stderr).toBe(0);
    }
    // the server did them (none handed back to the standalone plugin, which would have written them itself)
    const st = await probeCniServer(socket);
    expect(st.served && st.info).toMatchObject({ served: 4, failed: 0, deferred: 0 });
  });
});
