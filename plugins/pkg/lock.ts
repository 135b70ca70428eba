/**
 * Advisory whole-file locks (flock(2)) for on-disk state such as host-local's
 * IPAM store. Plugins are short processes, so blocking the thread is fine.
 */
import fs from 'node:fs';
import { native } from './native';

export interface FileLock extends Disposable {
  readonly path: string;
  readonly fd: number;
  /** Unlocks and closes; idempotent (also what `using` calls). */
  release(): void;
  /**
   * Removes the lock file (when `path` is still the file locked), then
   * releases: what a start that failed calls, so it leaves no lock behind.
   */
  remove(): void;
}

/** A lock path that is a symbolic link (or another non-file) and was refused. */
export class LockPathError extends Error {
  readonly code = 'ELOOP';
}

/**
 * Opens (creating if needed, mode 0600) `path` and takes an exclusive (or
 * shared) lock on it, blocking until available. With `nonBlocking`, throws an
 * errno error with code 'EWOULDBLOCK'/'EAGAIN' if the lock is held elsewhere.
 * With `noFollow` (daemons' pid locks), a symbolic link at `path` is refused
 * (LockPathError; its target is never opened) and so is anything but a
 * regular file; a lock file removed by its holder meanwhile is opened again.
 */
export function lockFile(path: string, opts: { shared?: boolean; nonBlocking?: boolean; noFollow?: boolean } = {}): FileLock {
  const n = native();
  const flags = fs.constants.O_RDWR | fs.constants.O_CREAT | (opts.noFollow ? fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK : 0);
  let fd: number;
  for (;;) {
    try {
      fd = fs.openSync(path, flags, 0o600);
    } catch (e) {
      if (opts.noFollow && (e as NodeJS.ErrnoException).code === 'ELOOP') throw new LockPathError(`${path} is a symbolic link: refusing to use it as a lock file (remove it)`);
      throw e;
    }
    try {
      if (opts.noFollow && !fs.fstatSync(fd).isFile()) throw new LockPathError(`${path} is not a regular file: refusing to use it as a lock file (remove it)`);
      n.flock(fd, (opts.shared ? n.constants.LOCK_SH : n.constants.LOCK_EX) | (opts.nonBlocking ? n.constants.LOCK_NB : 0));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    // a holder that removed the file (remove()) before we locked it: ours is an orphan inode
    if (!opts.noFollow || sameFile(path, fd)) break;
    fs.closeSync(fd);
  }
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    try {
      n.flock(fd, n.constants.LOCK_UN);
    } finally {
      fs.closeSync(fd);
    }
  };
  const remove = (): void => {
    if (held && sameFile(path, fd)) {
      try { fs.unlinkSync(path); } catch { /* gone */ }
    }
    release();
  };
  return { path, fd, release, remove, [Symbol.dispose]: release };
}

function sameFile(path: string, fd: number): boolean {
  try {
    const a = fs.lstatSync(path);
    const b = fs.fstatSync(fd);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}
