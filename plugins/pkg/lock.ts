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
}

/**
 * Opens (creating if needed, mode 0600) `path` and takes an exclusive (or
 * shared) lock on it, blocking until available. With `nonBlocking`, throws an
 * errno error with code 'EWOULDBLOCK'/'EAGAIN' if the lock is held elsewhere.
 */
export function lockFile(path: string, opts: { shared?: boolean; nonBlocking?: boolean } = {}): FileLock {
  const n = native();
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  try {
    n.flock(fd, (opts.shared ? n.constants.LOCK_SH : n.constants.LOCK_EX) | (opts.nonBlocking ? n.constants.LOCK_NB : 0));
  } catch (e) {
    fs.closeSync(fd);
    throw e;
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
  return { path, fd, release, [Symbol.dispose]: release };
}
