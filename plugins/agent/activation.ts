/**
 * How flaxd's CNI server comes and goes when no DaemonSet runs it:
 *  - socket activation: systemd (flax-cni.socket, `flax install --server
 *    systemd`) binds the socket and starts flaxd with it as fd 3
 *    (LISTEN_FDS=1, LISTEN_PID=<flaxd's pid>, sd_listen_fds(3)); flaxd serves
 *    that socket instead of binding one, and leaves it in place when it stops;
 *  - `--idle-exit DURATION`: the server exits once no call came for that long
 *    (the one the plugin client starts itself, `--server auto`, runs with 10m);
 *  - the ready pipe: a plugin client that starts flaxd (native/cniclient,
 *    auto mode) hands it the write end of a pipe as FLAX_CNI_READY_FD, and
 *    waits on the read end; flaxd writes it and closes it as soon as its
 *    socket listens (or it closes when flaxd exits), so the client connects
 *    at once, without watching the directory.
 */
import { closeSync, fstatSync, writeSync } from 'node:fs';
import type { CniServer } from '../pkg/cniserver/server';
import { ConfigError } from './config';

/** sd_listen_fds(3)'s first descriptor. */
const SD_LISTEN_FDS_START = 3;

/**
 * The listening socket systemd handed over, or undefined when none was (no
 * LISTEN_FDS, or LISTEN_PID names another process: a variable inherited from
 * a parent). The variables are removed either way, so nothing flaxd starts
 * takes them for its own. More than one socket is a ConfigError (the unit
 * has one ListenStream).
 */
export function takeListenFd(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | undefined {
  const fds = env.LISTEN_FDS;
  const forUs = fds !== undefined && env.LISTEN_PID === String(pid);
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (!forUs) return undefined;
  if (fds !== '1') throw new ConfigError(`LISTEN_FDS=${fds}: socket activation hands flaxd exactly one socket (the unit's ListenStream=), got ${JSON.stringify(fds)}`);
  return SD_LISTEN_FDS_START;
}

/**
 * The ready pipe a starting client handed over (FLAX_CNI_READY_FD), or
 * undefined: no variable, not a descriptor number above stderr, not open, not
 * a pipe, or `taken` (systemd's socket, also fd 3). The variable is removed
 * either way, so nothing flaxd starts takes it for its own.
 */
export function takeReadyFd(env: NodeJS.ProcessEnv = process.env, taken?: number): number | undefined {
  const v = env.FLAX_CNI_READY_FD;
  delete env.FLAX_CNI_READY_FD;
  if (v === undefined || !/^\d{1,6}$/.test(v)) return undefined;
  const fd = Number(v);
  if (fd < 3 || fd === taken) return undefined;
  try {
    return fstatSync(fd).isFIFO() ? fd : undefined;
  } catch {
    return undefined; // not open
  }
}

/** The ready pipe closed, after one byte when the socket `listening` (the client connects), without when the start failed (it stops waiting); never throws: the client may be gone. */
export function signalReady(fd: number | undefined, listening: boolean): void {
  if (fd === undefined) return;
  try {
    if (listening) writeSync(fd, '1');
  } catch { /* the client gave up waiting (EPIPE: SIGPIPE is ignored by Node) */ }
  try {
    closeSync(fd);
  } catch { /* closed */ }
}

/**
 * Resolves once the server answered no call for `ms` (its counters did not
 * move). A call still running then is drained by the server's close() as on
 * SIGTERM.
 */
export function untilIdle(srv: CniServer, ms: number): { done: Promise<void>; cancel: () => void } {
  const count = () => {
    const s = srv.stats();
    return s.served + s.failed + s.refused + s.deferred;
  };
  let last = count();
  let since = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      const c = count();
      const now = performance.now();
      if (c !== last) {
        last = c;
        since = now;
      } else if (now - since >= ms) {
        clearInterval(timer);
        resolve();
      }
    }, Math.max(50, Math.min(ms / 4, 30_000)));
  });
  return { done, cancel: () => clearInterval(timer) };
}
