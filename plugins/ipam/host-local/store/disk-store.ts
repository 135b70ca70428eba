/**
 * The on-disk store, byte-compatible with the reference host-local:
 *
 *   <dataDir>/<net>/lock                 flock(2)ed for the whole ADD/DEL/GC
 *   <dataDir>/<net>/<ip>                 O_EXCL, 0600, `<containerID>\r\n<ifname>`
 *                                        (legacy files: `<containerID>`)
 *   <dataDir>/<net>/last_reserved_ip.N   the set's last reserved address
 *
 * Index (ours; the reference re-reads every file on each DEL and duplicate
 * check, O(reservations)):
 *
 *   <dataDir>/.flax-host-local/<net>/b/<bucket>   {"<owner>":["ip",…],…}
 *   <dataDir>/.flax-host-local/<net>/stamp        dev ino mtime ctime of <net>/
 *
 * Owners are hashed (sha256, 10 bits) into 1024 bucket files: an operation
 * reads and rewrites one bucket (~20 owners, ~1 KB, at 20 000
 * reservations; ~4 KB for a full /16) and a full rebuild writes at most 1024 files — per-owner
 * files made the first rebuild of a 20 000-reservation directory take tens
 * of seconds.
 *
 * It lives outside `<net>/` so the Go plugin never reads it (its DEL walks
 * and content-matches every file under `<net>/`, recursively); a name that
 * starts with '.' can never be a network (names start with [a-zA-Z0-9]).
 *
 * Freshness: the index is trusted only when `stamp` equals the current
 * (dev, ino, mtime, ctime) of `<net>/`. Every create/unlink in `<net>/` —
 * ours, the Go plugin's, an admin's — moves the directory's mtime to "now".
 * After changing the directory we set its mtime to a sentinel two seconds in
 * the past (utimensat) and record that: a later foreign change can only
 * produce a current timestamp, never the sentinel, so it is detected even
 * within the same clock tick (a plain "record mtime" scheme misses changes
 * in the tick after ours; with whole-second timestamps too). A different
 * inode (directory recreated or restored) or ctime also invalidates it.
 * On mismatch: one O(n) rescan that rewrites only index files that differ,
 * then a new stamp. Positive lookups are additionally verified against the
 * reservation file's content (catches in-place rewrites, which change no
 * directory time); a failed verification forces the rescan.
 *
 * Crash safety: reservations change first, index files next, the stamp
 * last; a crash anywhere leaves `<net>/`'s mtime ≠ stamp → rescan.
 * Not detected: someone rewriting a reservation file in place to a new
 * owner (a later lookup of the new owner misses it) or forging the
 * directory's mtime back to our sentinel. GC rescans fully anyway.
 *
 * Cost per ADD/DEL with a valid stamp: a fixed number of small files
 * whatever the number of reservations (stamp, one bucket, the reservation
 * files the owner holds), plus the probes of the round robin.
 */
import { createHash } from 'node:crypto';
import {
  closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, unlinkSync,
  utimesSync, writeFileSync, writeSync, type BigIntStats,
} from 'node:fs';
import path from 'node:path';
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import { canonicalIP } from '../allocator/ip';
import { type FileLock, lockFile } from './lock';
import { type Owner, type Store, legacyOwnerText, ownerText } from './store';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';
export const INDEX_ROOT = '.flax-host-local';
export const LAST_IP_PREFIX = 'last_reserved_ip.';
export const LOCK_NAME = 'lock';

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;
const ioError = (what: string, e: unknown) => new CniError(ErrCode.IOFailure, `${what}: ${(e as Error).message}`);

/**
 * mkdir -p that cannot spin: node's `mkdirSync(p, {recursive: true})`
 * loops forever where mkdir(2) keeps answering ENOENT although the parent
 * exists (e.g. under /proc).
 */
export function mkdirp(dir: string, mode: number): void {
  try {
    mkdirSync(dir, { mode });
    return;
  } catch (e) {
    const code = errno(e);
    if (code === 'EEXIST') {
      if (!statSync(dir).isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR' });
      return;
    }
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
    mkdirp(parent, mode);
  }
  mkdirSync(dir, { mode }); // once more; a second ENOENT is final
}

const readBuf = Buffer.alloc(1024);

export const BUCKETS = 1024;
/** The bucket file name (3 hex digits) of an owner text. */
export const ownerBucket = (owner: string): string =>
  (createHash('sha256').update(owner).digest().readUInt16BE(0) % BUCKETS).toString(16).padStart(3, '0');
type Bucket = Record<string, string[]>;
/** Buckets are prototype-free: owners such as "constructor" or "__proto__" are plain keys. */
const newBucket = (): Bucket => Object.create(null) as Bucket;

function stampOf(st: BigIntStats): string {
  return `v1 ${st.dev} ${st.ino} ${st.mtimeNs} ${st.ctimeNs}`;
}

/** Is `name` a reservation file name (an address in its canonical form)? */
export const isReservationName = (name: string): boolean => canonicalIP(name) === name;

export interface GcResult {
  removed: string[];
  kept: number;
  errors: string[];
}

/** Counters for tests and the benchmark. */
export const stats = { rebuilds: 0 };

export class DiskStore implements Store {
  readonly netDir: string;
  readonly idxDir: string;
  readonly bucketDir: string;
  readonly stampPath: string;
  private lock: FileLock | null = null;
  /** owner text → ips, for owners loaded (verified) or changed in this operation */
  private cache = new Map<string, string[]>();
  /** bucket files read (or written by a rebuild) in this operation */
  private buckets = new Map<string, Bucket>();
  /** cache holds every owner (after a rescan) */
  private complete = false;
  private dirty = new Set<string>();
  private fresh = false;
  private rebuilt = false;

  private constructor(readonly dataDir: string, readonly network: string) {
    this.netDir = path.join(dataDir, network);
    this.idxDir = path.join(dataDir, INDEX_ROOT, network);
    this.bucketDir = path.join(this.idxDir, 'b');
    this.stampPath = path.join(this.idxDir, 'stamp');
    // The network name is validated by the core (no '/', no leading '.'); belt and braces:
    const rel = path.relative(dataDir, this.netDir);
    if (rel === '' || rel.startsWith('..') || rel.includes('/')) {
      throw new CniError(ErrCode.InvalidNetworkConfig, `network name "${network}" escapes the data directory`);
    }
  }

  /** Creates `<dataDir>/<net>/` and takes its lock. */
  static open(dataDir: string, network: string): DiskStore {
    const s = new DiskStore(dataDir, network);
    try {
      mkdirp(s.netDir, 0o755);
    } catch (e) {
      throw ioError(`cannot create data directory ${s.netDir}`, e);
    }
    s.lock = lockFile(path.join(s.netDir, LOCK_NAME));
    return s;
  }

  /** Writes the index changes and releases the lock. */
  close(): void {
    try {
      this.commit();
    } finally {
      this.lock?.release();
      this.lock = null;
    }
  }

  // ---- Store ------------------------------------------------------------

  reserve(owner: Owner, ip: string, setIndex: number): boolean {
    const key = ownerText(owner);
    const cur = this.entry(key);
    const file = path.join(this.netDir, ip);
    let fd: number;
    try {
      fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      throw ioError(`cannot reserve ${ip}`, e);
    }
    try {
      try {
        writeSync(fd, key);
      } finally {
        closeSync(fd);
      }
      writeFileSync(path.join(this.netDir, LAST_IP_PREFIX + setIndex), ip);
    } catch (e) {
      // as the reference: a reservation whose bookkeeping failed is removed
      try { unlinkSync(file); } catch { /* best effort */ }
      throw ioError(`cannot reserve ${ip}`, e);
    }
    this.cache.set(key, [...cur, ip]);
    this.dirty.add(key);
    return true;
  }

  release(owner: Owner, ip: string): void {
    const key = ownerText(owner);
    const cur = this.entry(key);
    if (this.readOwner(ip) === key) this.unlink(ip);
    this.cache.set(key, cur.filter((x) => x !== ip));
    this.dirty.add(key);
  }

  lastReservedIP(setIndex: number): string | null {
    try {
      return readFileSync(path.join(this.netDir, LAST_IP_PREFIX + setIndex), 'utf8');
    } catch {
      return null; // missing or unreadable: start at the beginning, as the reference
    }
  }

  getByOwner(owner: Owner): string[] {
    const a = this.entry(ownerText(owner));
    const b = this.entry(legacyOwnerText(owner));
    return [...new Set([...a, ...b])];
  }

  releaseByOwner(owner: Owner): string[] {
    for (const key of [ownerText(owner), legacyOwnerText(owner)]) {
      const ips = this.entry(key);
      if (!ips.length) continue;
      for (const ip of ips) this.unlink(ip);
      this.cache.set(key, []);
      this.dirty.add(key);
      return ips;
    }
    return [];
  }

  // ---- GC / status -------------------------------------------------------

  /**
   * Removes every reservation whose owner `keep` rejects and whose file is
   * older than `graceMs` (an ADD whose attachment the runtime has not
   * recorded yet must survive). Keeps lock, last_reserved_ip.* and anything
   * that is not a reservation. Continues past errors.
   */
  gc(keep: (owner: string) => boolean, graceMs: number, now = Date.now()): GcResult {
    const res: GcResult = { removed: [], kept: 0, errors: [] };
    let names: string[];
    try {
      names = readdirSync(this.netDir);
    } catch (e) {
      throw ioError(`cannot read ${this.netDir}`, e);
    }
    for (const name of names) {
      if (!isReservationName(name)) continue;
      const file = path.join(this.netDir, name);
      try {
        const st = lstatSync(file);
        if (!st.isFile()) continue;
        const owner = readFileSync(file, 'utf8').trim();
        if (keep(owner) || now - st.mtimeMs < graceMs) {
          res.kept++;
          continue;
        }
        unlinkSync(file);
        res.removed.push(name);
      } catch (e) {
        if (errno(e) === 'ENOENT') continue;
        res.errors.push(`${name}: ${(e as Error).message}`);
      }
    }
    this.rebuild();
    return res;
  }

  /** Throws CniError(50) when `<dataDir>/<net>` cannot be written. */
  static probeWritable(dataDir: string, network: string): void {
    const netDir = path.join(dataDir, network);
    const idx = path.join(dataDir, INDEX_ROOT);
    const fail = (e: unknown) => new CniError(ErrCode.PluginNotAvailable, `host-local data directory ${netDir} is not writable: ${(e as Error).message}`);
    try {
      mkdirp(netDir, 0o755);
      mkdirp(idx, 0o700);
      // a write probe outside <net>/ (which would invalidate the index stamp)
      const probe = path.join(idx, `.status-${process.pid}`);
      writeFileSync(probe, '');
      unlinkSync(probe);
      // access(2) reports EROFS / permission for <net>/ itself without touching it
      const fd = openSync(path.join(netDir, LOCK_NAME), constants.O_RDWR | constants.O_CREAT, 0o600);
      closeSync(fd);
    } catch (e) {
      throw fail(e);
    }
  }

  // ---- index -------------------------------------------------------------

  /** Validates the stamp once per operation; rescans when it is stale. */
  private ensureFresh(): void {
    if (this.fresh) return;
    this.fresh = true;
    let want = '';
    try {
      want = readFileSync(this.stampPath, 'utf8');
    } catch { /* no index yet */ }
    let st: BigIntStats;
    try {
      st = statSync(this.netDir, { bigint: true });
    } catch (e) {
      throw ioError(`cannot stat ${this.netDir}`, e);
    }
    if (want === '' || want !== stampOf(st)) this.rebuild();
  }

  /** The verified addresses of one owner text. */
  private entry(key: string): string[] {
    this.ensureFresh();
    const c = this.cache.get(key);
    if (c) return c;
    if (this.complete) return [];
    const bucket = this.loadBucket(ownerBucket(key));
    const ips = bucket?.[key] ?? [];
    let ok = bucket !== null && Array.isArray(ips) && ips.every((x) => typeof x === 'string' && isReservationName(x));
    if (ok) for (const ip of ips) if (this.readOwner(ip) !== key) ok = false;
    if (!ok) {
      this.rebuild();
      return this.cache.get(key) ?? [];
    }
    this.cache.set(key, ips);
    return ips;
  }

  /** A bucket file ({} when missing), null when unreadable or corrupt. */
  private loadBucket(name: string): Bucket | null {
    const c = this.buckets.get(name);
    if (c) return c;
    let b: Bucket = newBucket();
    try {
      const j: unknown = JSON.parse(readFileSync(path.join(this.bucketDir, name), 'utf8'));
      if (typeof j !== 'object' || j === null || Array.isArray(j)) return null;
      b = Object.assign(newBucket(), j);
    } catch (e) {
      if (errno(e) !== 'ENOENT') return null;
    }
    this.buckets.set(name, b);
    return b;
  }

  /** Trimmed content of a reservation file, or null. One open/read/close:
   * a rescan reads every reservation, so this is its hot path. */
  private readOwner(ip: string): string | null {
    const file = path.join(this.netDir, ip);
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return null;
    }
    try {
      const n = readSync(fd, readBuf, 0, readBuf.length, 0);
      if (n < readBuf.length) return readBuf.toString('utf8', 0, n).trim();
      return readFileSync(file, 'utf8').trim(); // unusually large: read it all
    } catch {
      return null;
    } finally {
      closeSync(fd);
    }
  }

  private unlink(ip: string): void {
    try {
      unlinkSync(path.join(this.netDir, ip));
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw ioError(`cannot release ${ip}`, e);
    }
  }

  /** Full rescan of `<net>/`; rewrites the index files that differ. */
  private rebuild(): void {
    stats.rebuilds++;
    this.fresh = true;
    const map = new Map<string, string[]>();
    let names: string[];
    try {
      names = readdirSync(this.netDir);
    } catch (e) {
      throw ioError(`cannot read ${this.netDir}`, e);
    }
    for (const name of names) {
      if (!isReservationName(name)) continue;
      const owner = this.readOwner(name);
      if (!owner) continue;
      const l = map.get(owner);
      if (l) l.push(name);
      else map.set(owner, [name]);
    }
    // Changes of this operation made before the rescan are already on disk,
    // so the rescan supersedes the cache.
    this.cache = map;
    this.complete = true;
    this.rebuilt = true;
    this.dirty.clear();
    const byBucket = new Map<string, Bucket>();
    for (const [owner, ips] of map) {
      const name = ownerBucket(owner);
      const b = byBucket.get(name) ?? newBucket();
      b[owner] = ips;
      byBucket.set(name, b);
    }
    this.buckets = byBucket;
    try {
      mkdirp(this.bucketDir, 0o700);
      const stale = new Set(readdirSync(this.bucketDir));
      for (const [name, b] of byBucket) {
        stale.delete(name);
        const body = bucketBody(b);
        let cur: string | undefined;
        try { cur = readFileSync(path.join(this.bucketDir, name), 'utf8'); } catch { /* missing */ }
        if (cur !== body) writeFileSync(path.join(this.bucketDir, name), body, { mode: 0o600 });
      }
      for (const name of stale) rmSync(path.join(this.bucketDir, name), { force: true, recursive: true });
    } catch (e) {
      // The index is an optimisation: without it every operation rescans.
      this.invalidateStamp();
      this.rebuilt = false;
      process.stderr.write(`flax host-local: cannot write index ${this.bucketDir}: ${(e as Error).message}\n`);
    }
  }

  private invalidateStamp(): void {
    try { rmSync(this.stampPath, { force: true }); } catch { /* next op rescans anyway */ }
  }

  /** Persists changed index entries, then re-stamps `<net>/`. */
  private commit(): void {
    if (!this.dirty.size && !this.rebuilt) return;
    try {
      mkdirp(this.bucketDir, 0o700);
      const touched = new Set<string>();
      for (const key of this.dirty) {
        const name = ownerBucket(key);
        const b = this.loadBucket(name);
        if (!b) throw new Error(`corrupt index bucket ${name}`);
        const ips = this.cache.get(key) ?? [];
        if (ips.length) b[key] = ips;
        else delete b[key];
        touched.add(name);
      }
      for (const name of touched) {
        const b = this.buckets.get(name)!;
        const file = path.join(this.bucketDir, name);
        if (Object.keys(b).length) writeFileSync(file, bucketBody(b), { mode: 0o600 });
        else rmSync(file, { force: true });
      }
      this.dirty.clear();
      const nowS = Date.now() / 1000;
      // sentinel: whole seconds − 2 + a random fraction, never a time a
      // later create/unlink can stamp on the directory
      utimesSync(this.netDir, nowS, Math.floor(nowS) - 2 + Math.random() * 0.5);
      writeFileSync(this.stampPath, stampOf(statSync(this.netDir, { bigint: true })), { mode: 0o600 });
    } catch (e) {
      this.invalidateStamp();
      process.stderr.write(`flax host-local: cannot update index ${this.idxDir}: ${(e as Error).message}\n`);
    }
  }
}

function bucketBody(b: Bucket): string {
  const sorted: Bucket = {};
  for (const k of Object.keys(b).sort()) sorted[k] = b[k];
  return JSON.stringify(sorted) + '\n';
}

/** Runs `fn` with the network's store open and locked; always unlocks. */
export function withDiskStore<T>(dataDir: string, network: string, fn: (s: DiskStore) => T): T {
  const s = DiskStore.open(dataDir, network);
  try {
    return fn(s);
  } finally {
    s.close();
  }
}
