/**
 * The files of host-local's store (layout: README.md beside this file):
 * names, the reservation-name test, mkdir -p, exclusive creation, in-place
 * rewrites, and the one-syscall-each reservation read.
 */
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import { canonicalIP } from '../../../pkg/ip';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';
export const INDEX_ROOT = '.flax-host-local';
export const LAST_IP_PREFIX = 'last_reserved_ip.';
export const LOCK_NAME = 'lock';

export const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;
export const ioError = (what: string, e: unknown) => new CniError(ErrCode.IOFailure, `${what}: ${(e as Error).message}`);

/**
 * mkdir -p that cannot spin: node's `mkdirSync(p, {recursive: true})`
 * loops forever where mkdir(2) keeps answering ENOENT although the parent
 * exists (e.g. under /proc).
 */
export function mkdirp(dir: string, mode: number): void {
  try {
    mkdirOnce(dir, mode);
    return;
  } catch (e) {
    const parent = path.dirname(dir);
    if (errno(e) !== 'ENOENT' || parent === dir) throw e;
    mkdirp(parent, mode);
  }
  // once more; a second ENOENT is final. EEXIST is success here too: a
  // concurrent ADD may have created it since the first attempt.
  mkdirOnce(dir, mode);
}

/** mkdir(2) where an existing directory (made by anyone, any time) is success. */
function mkdirOnce(dir: string, mode: number): void {
  try {
    mkdirSync(dir, { mode });
  } catch (e) {
    if (errno(e) !== 'EEXIST') throw e;
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR' });
  }
}

/**
 * mkdir -p of a directory of our index (`<dataDir>/.flax-host-local/…`):
 * `<dataDir>` is the reference's and followed as it would be; below it,
 * a symbolic link planted in place of one of our directories is removed
 * (its target untouched) and the directory made, a non-directory refused.
 */
export function mkdirIndex(dir: string, mode: number): void {
  const i = dir.lastIndexOf(`${path.sep}${INDEX_ROOT}`);
  if (i < 0) return mkdirp(dir, mode);
  mkdirp(dir.slice(0, i) || path.sep, mode);
  let cur = dir.slice(0, i);
  for (const part of dir.slice(i + 1).split(path.sep).filter(Boolean)) {
    cur = path.join(cur, part);
    try {
      mkdirSync(cur, { mode });
      continue;
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    }
    const st = lstatSync(cur);
    if (st.isDirectory()) continue;
    if (!st.isSymbolicLink()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${cur}'`), { code: 'ENOTDIR' });
    unlinkSync(cur);
    mkdirSync(cur, { mode });
  }
}

/** A file of our index, read without following a symbolic link (ELOOP: one is planted there). */
export function readIndexFile(file: string): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Temporary reservation files in the index directory: `.tmp-<pid>-<n>`. */
export const TMP_PREFIX = '.tmp-';

/** A reservation file's mode: the reference's (Go `os.OpenFile(…, 0o644)`; the umask applies to both). */
export const RESERVATION_MODE = 0o644;

/** Creates `file` (O_EXCL, RESERVATION_MODE) holding `content`; false when it exists.
 * A failed write removes the file again. */
export function writeExclusive(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, RESERVATION_MODE);
  } catch (e) {
    if (errno(e) === 'EEXIST') return false;
    throw e;
  }
  try {
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    try { unlinkSync(file); } catch { /* best effort */ }
    throw e;
  }
  return true;
}

const V4_CANONICAL = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** Is `name` a reservation file name (an address in its canonical form)?
 * IPv4 by one regex (a rescan tests every name); IPv6 by parse + print. */
export const isReservationName = (name: string): boolean =>
  V4_CANONICAL.test(name) || (name.includes(':') && canonicalIP(name) === name);

const readBuf = Buffer.alloc(1024);

/** One open/(fstat)/read/close: a full rebuild reads every reservation,
 * so this is its hot path. The fstat describes the very inode read. */
export function readReservation(file: string, withStat: boolean): { owner: string; ino: number; ctime: number } | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    let ino = 0;
    let ctime = 0;
    if (withStat) {
      const st = fstatSync(fd);
      if (!st.isFile()) return null;
      ino = st.ino;
      ctime = st.ctimeMs;
    }
    const n = readSync(fd, readBuf, 0, readBuf.length, 0);
    const owner = n < readBuf.length ? readBuf.toString('utf8', 0, n).trim()
      : readFileSync(file, 'utf8').trim(); // unusually large: read it all
    return { owner, ino, ctime };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces a small file's content in place: written at offset 0, then cut
 * to its new length — no O_TRUNC. On ext4, a file truncated to zero and
 * written again is flushed at close ("replace via truncate",
 * auto_da_alloc): ~0.2 ms a file here against ~0.02 ms in place, and an
 * ADD rewrites three (last_reserved_ip, an index bucket, the stamp). As
 * writeFileSync, not atomic: the index's files are validated before use and
 * last_reserved_ip is only where the next search starts.
 * With `noFollow` (our index files), a symbolic link planted at `file` is
 * removed (its target untouched) and the file created in its place.
 */
export function rewriteFile(file: string, content: string, mode: number, noFollow = false): void {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | (noFollow ? constants.O_NOFOLLOW | constants.O_NONBLOCK : 0), mode);
  } catch (e) {
    if (!noFollow || errno(e) !== 'ELOOP') throw e;
    unlinkSync(file);
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  }
  try {
    const buf = Buffer.from(content);
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off, off);
    ftruncateSync(fd, buf.length);
  } finally {
    closeSync(fd);
  }
}
