/**
 * `flax install --server systemd|auto|off`: how a host without
 * flax's DaemonSet gets the resident CNI server.
 *  - off (the default): nothing; the plugin clients use a server when one
 *    answers (a DaemonSet's flaxd), else run the standalone plugins;
 *  - systemd: flax-cni.socket + flax-cni.service in the unit dir; systemd
 *    binds the socket (0600, root) and starts `flaxd --no-overlay` with it
 *    (LISTEN_FDS) at the first call; enabled when systemd runs;
 *  - auto: the clients start `flaxd --no-overlay` themselves when no server
 *    answers (native/cniclient).
 * The mode is written to <config dir>/cni-server (default /etc/flax, or
 * $FLAX_CONFIG_DIR): one word, `auto` or `systemd`, and absent for off.
 * The client reads it only when no server answered its connect, so a served
 * call costs nothing more. What was written is listed in the manifest
 * (`server`): a re-run with another mode, or --uninstall, removes it.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../pkg/atomic';
import { DEFAULT_CNI_SOCKET } from '../../pkg/cniserver/wire';

export const SERVER_MODES = ['systemd', 'auto', 'off'] as const;
export type ServerMode = (typeof SERVER_MODES)[number];

export const SOCKET_UNIT = 'flax-cni.socket';
export const SERVICE_UNIT = 'flax-cni.service';
/** How long the server started in auto mode, or by systemd, stays without a call. */
export const IDLE_EXIT = '10m';

export interface ServerPaths {
  /** where cni-server (the mode) goes; default $FLAX_CONFIG_DIR or /etc/flax */
  configDir: string;
  /** systemd's unit dir; default /etc/systemd/system */
  unitDir: string;
  /** the CNI server's socket: the clients' ($FLAX_CNI_SOCKET, default /run/flax/cni.sock) */
  socket: string;
  /** systemctl runs only when this exists (systemd is PID 1); default /run/systemd/system */
  systemdRunning: string;
}

export const defaultServerPaths = (env: NodeJS.ProcessEnv = process.env): ServerPaths => ({
  configDir: env.FLAX_CONFIG_DIR || '/etc/flax',
  unitDir: '/etc/systemd/system',
  socket: env.FLAX_CNI_SOCKET || DEFAULT_CNI_SOCKET,
  systemdRunning: '/run/systemd/system',
});

/** What the manifest keeps of the server mode: the mode and every file written (path -> sha256). */
export interface ServerRecord {
  mode: Exclude<ServerMode, 'off'>;
  files: Record<string, string>;
}

/** The two units: systemd binds the socket, the service is flaxd --no-overlay taking it. */
export function serverUnits(binDir: string, socket: string): Record<typeof SOCKET_UNIT | typeof SERVICE_UNIT, string> {
  const flaxd = path.join(binDir, 'flaxd');
  return {
    [SOCKET_UNIT]: `# written by flax install --server systemd; removed by flax install --uninstall
[Unit]
Description=flax resident CNI server socket (the plugin clients in ${binDir} call it)

[Socket]
ListenStream=${socket}
SocketUser=root
SocketGroup=root
SocketMode=0600
DirectoryMode=0755
RemoveOnStop=yes
Accept=no

[Install]
WantedBy=sockets.target
`,
    [SERVICE_UNIT]: `# written by flax install --server systemd; removed by flax install --uninstall
# started by ${SOCKET_UNIT} at the first CNI call; exits after ${IDLE_EXIT} without one (the socket stays)
[Unit]
Description=flax resident CNI server (flaxd --no-overlay)
Requires=${SOCKET_UNIT}
After=${SOCKET_UNIT}

[Service]
Type=simple
ExecStart=${flaxd} --no-overlay --cni-socket ${socket} --idle-exit ${IDLE_EXIT} --gc-interval 0
Restart=on-failure
KillMode=mixed
TimeoutStopSec=15
`,
  };
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const fileSha = (p: string): string | undefined => {
  try { return sha(fs.readFileSync(p, 'utf8')); } catch { return undefined; }
};

type Report = (line: string) => void;

function systemctl(paths: ServerPaths, args: string[], report: Report): void {
  if (!fs.existsSync(paths.systemdRunning)) return;
  const r = spawnSync('systemctl', args, { encoding: 'utf8' });
  if (r.status === 0) report(`systemctl ${args.join(' ')}`);
  else report(`systemctl ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

/**
 * Brings the host to `mode`: writes what it needs (the mode file, the units),
 * removes what an earlier mode wrote (unchanged files only). Returns the new
 * record (undefined for off).
 */
export function applyServer(mode: ServerMode, binDir: string, prev: ServerRecord | undefined, paths: ServerPaths, report: Report): ServerRecord | undefined {
  const want: Record<string, string> = {};
  if (mode !== 'off') want[path.join(paths.configDir, 'cni-server')] = `${mode}\n`;
  if (mode === 'systemd') {
    for (const [name, text] of Object.entries(serverUnits(binDir, paths.socket))) want[path.join(paths.unitDir, name)] = text;
  }
  if (prev?.mode === 'systemd' && mode !== 'systemd') systemctl(paths, ['disable', '--now', SOCKET_UNIT, SERVICE_UNIT], report);
  if (prev?.mode === 'auto' && mode !== 'auto') stopAutoServer(paths.socket, report);
  for (const [p, s] of Object.entries(prev?.files ?? {})) {
    if (p in want) continue;
    if (fileSha(p) === s) {
      fs.rmSync(p, { force: true });
      report(`removed ${p}`);
    } else if (fs.existsSync(p)) report(`kept ${p} (changed since flax installed it)`);
  }
  const files: Record<string, string> = {};
  let units = false;
  for (const [p, text] of Object.entries(want)) {
    files[p] = sha(text);
    if (fileSha(p) === files[p]) {
      report(`unchanged ${p}`);
      continue;
    }
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    writeFileAtomic(p, text);
    report(`wrote ${p}`);
    if (p.startsWith(paths.unitDir + path.sep)) units = true;
  }
  if (mode === 'systemd') {
    if (units || prev?.mode !== 'systemd') {
      systemctl(paths, ['daemon-reload'], report);
      systemctl(paths, ['enable', '--now', SOCKET_UNIT], report);
    }
    if (!fs.existsSync(paths.systemdRunning)) report(`systemd is not running here: enable the server with systemctl enable --now ${SOCKET_UNIT} where it does`);
  } else if (prev?.mode === 'systemd') systemctl(paths, ['daemon-reload'], report);
  return mode === 'off' ? undefined : { mode, files };
}

/**
 * SIGTERM to a server the clients started (auto mode): the pid in
 * <socket>.lock, when that process is a flaxd running --idle-exit (a
 * DaemonSet's or systemd's flaxd is left alone: its owner stops it).
 */
export function stopAutoServer(socket: string, report: Report): void {
  let pid = 0;
  try { pid = Number(fs.readFileSync(`${socket}.lock`, 'utf8').trim()); } catch { return; }
  if (!Number.isInteger(pid) || pid <= 1) return;
  let argv: string[];
  try { argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); } catch { return; }
  if (!argv.some((a) => path.basename(a) === 'flaxd') || !argv.includes('--idle-exit') || argv[argv.indexOf('--cni-socket') + 1] !== socket) return;
  try {
    process.kill(pid, 'SIGTERM');
    report(`stopped the CNI server the plugin clients started (pid ${pid})`);
  } catch { /* gone meanwhile */ }
}
