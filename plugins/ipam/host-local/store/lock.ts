/**
 * The IPAM directory lock: an exclusive flock(2) on `<dataDir>/<net>/lock`,
 * held for the whole ADD / DEL / GC. flock — not fcntl — because that is
 * what the reference takes; the two lock kinds do not see each other.
 * Acquisition is synchronous on purpose: a caller keeps the whole critical
 * section synchronous, so two in-process callers (the bridge delegating
 * in-process) can never interleave or deadlock on one descriptor.
 */
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import { lockFile as flockFile, type FileLock } from '../../../pkg/lock';

export type { FileLock };

/** Opens (creating, 0600) and exclusively flocks `file`; blocks until granted. I/O failures are code 5. */
export function lockFile(file: string): FileLock {
  try {
    return flockFile(file);
  } catch (e) {
    throw new CniError(ErrCode.IOFailure, `cannot lock ${file}: ${(e as Error).message}`);
  }
}
