/**
 * The on-disk store, byte-compatible with the reference host-local
 * (`<dataDir>/<net>/<ip>` files, `last_reserved_ip.N`, `lock`), with our
 * validated owner index beside it (owner-index.ts) so that ADD/DEL cost
 * does not grow with the number of reservations. The design — layout,
 * freshness stamp, incremental refresh, crash safety, what is not
 * detected, costs — is in README.md beside this file.
 */
import { closeSync, constants, existsSync, linkSync, lstatSync, openSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import {
  INDEX_ROOT, LAST_IP_PREFIX, LOCK_NAME, TMP_PREFIX, errno, ioError, isReservationName, mkdirIndex, mkdirp, rewriteFile, writeExclusive,
} from './fsutil';
import { type FileLock, lockFile } from './lock';
import { type IndexOptions, type IndexStats, OwnerIndex } from './owner-index';
import { type Owner, type Store, legacyOwnerText, ownerText } from './store';

export { DEFAULT_DATA_DIR, INDEX_ROOT, LAST_IP_PREFIX, LOCK_NAME, isReservationName, mkdirp } from './fsutil';
export { BUCKETS, type IndexOptions, type IndexStats, newIndexStats, ownerBucket } from './owner-index';

/** An ownerless (empty) reservation file or a temporary one younger than
 * this may still be in the middle of being written; older ones are swept. */
export const OWNERLESS_GRACE_MS = 60_000;

export interface GcOptions {
  now?: number;
  /** report what would go, remove nothing */
  dryRun?: boolean;
  /** age before an ownerless or temporary file goes (default max(grace, OWNERLESS_GRACE_MS)) */
  ownerlessGraceMs?: number;
}

export interface GcResult {
  removed: string[];
  /** temporary files of killed writers removed */
  temporaries?: number;
  kept: number;
  errors: string[];
}

export class DiskStore implements Store {
  readonly netDir: string;
  readonly idxDir: string;
  private lock: FileLock | null = null;
  private readonly index: OwnerIndex;

  private constructor(readonly dataDir: string, readonly network: string, o: IndexOptions) {
    this.netDir = path.join(dataDir, network);
    this.idxDir = path.join(dataDir, INDEX_ROOT, network);
    // The network name is validated by the core (no '/', no leading '.'); belt and braces:
    const rel = path.relative(dataDir, this.netDir);
    if (rel === '' || rel.startsWith('..') || rel.includes('/')) {
      throw new CniError(ErrCode.InvalidNetworkConfig, `network name "${network}" escapes the data directory`);
    }
    this.index = new OwnerIndex(this.netDir, this.idxDir, o);
  }

  /** Creates `<dataDir>/<net>/` and takes its lock. */
  static open(dataDir: string, network: string, o: IndexOptions = {}): DiskStore {
    const s = new DiskStore(dataDir, network, o);
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
      this.index.commit();
    } finally {
      this.lock?.release();
      this.lock = null;
    }
  }

  /** `using s = DiskStore.open(…)`: close() at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** The index's counters (tests, benchmarks). */
  get stats(): IndexStats {
    return this.index.stats;
  }

  /** Releases the lock without writing anything more, as a crash would (tests). */
  abandon(): void {
    this.lock?.release();
    this.lock = null;
  }

  // ---- Store ------------------------------------------------------------

  reserve(owner: Owner, ip: string, setIndex: number): boolean {
    const key = ownerText(owner);
    const cur = this.index.entry(key);
    const file = path.join(this.netDir, ip);
    if (!this.createReservation(file, key, ip)) return false;
    try {
      rewriteFile(path.join(this.netDir, LAST_IP_PREFIX + setIndex), ip, 0o644);
    } catch (e) {
      // as the reference: a reservation whose bookkeeping failed is removed
      try { unlinkSync(file); } catch { /* best effort */ }
      throw ioError(`cannot reserve ${ip}`, e);
    }
    this.index.set(key, [...cur, ip]);
    return true;
  }

  /**
   * Makes `<net>/<ip>` appear with its content in one step: the owner is
   * written to a temporary file in our index directory (outside `<net>/`,
   * so the Go plugin never sees it), which is then link(2)ed into place —
   * EEXIST there is the O_EXCL "taken". A process killed midway leaves at
   * most a temporary file (swept by GC), never the empty reservation that
   * open(O_EXCL)+write leaves and no DEL can match to its owner.
   * False when the address is taken.
   */
  private createReservation(file: string, content: string, ip: string): boolean {
    let tmp: string | null = path.join(this.idxDir, `${TMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      mkdirIndex(this.idxDir, 0o700);
      if (!writeExclusive(tmp, content)) tmp = null;
    } catch {
      tmp = null; // index dir unusable: fall back to create-then-write
    }
    try {
      if (tmp) {
        try {
          linkSync(tmp, file);
          return true;
        } catch (e) {
          const code = errno(e);
          if (code === 'EEXIST') return false;
          // a filesystem without hard links, or the index on another one
          if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
        }
      }
      return writeExclusive(file, content);
    } catch (e) {
      throw ioError(`cannot reserve ${ip}`, e);
    } finally {
      if (tmp) try { unlinkSync(tmp); } catch { /* swept by GC */ }
    }
  }

  release(owner: Owner, ip: string): void {
    const key = ownerText(owner);
    const cur = this.index.entry(key);
    if (this.index.readOwner(ip) === key) this.unlink(ip);
    this.index.set(key, cur.filter((x) => x !== ip));
  }

  lastReservedIP(setIndex: number): string | null {
    try {
      return readFileSync(path.join(this.netDir, LAST_IP_PREFIX + setIndex), 'utf8');
    } catch {
      return null; // missing or unreadable: start at the beginning, as the reference
    }
  }

  getByOwner(owner: Owner): string[] {
    const a = this.index.entry(ownerText(owner));
    const b = this.index.entry(legacyOwnerText(owner));
    return [...new Set([...a, ...b])];
  }

  releaseByOwner(owner: Owner): string[] {
    for (const key of [ownerText(owner), legacyOwnerText(owner)]) {
      const ips = this.index.entry(key);
      if (!ips.length) continue;
      for (const ip of ips) this.unlink(ip);
      this.index.set(key, []);
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
  gc(keep: (owner: string) => boolean, graceMs: number, opts: GcOptions = {}): GcResult {
    const now = opts.now ?? Date.now();
    const dryRun = opts.dryRun ?? false;
    const ownerlessGrace = opts.ownerlessGraceMs ?? Math.max(graceMs, OWNERLESS_GRACE_MS);
    const res: GcResult = { removed: [], kept: 0, errors: [] };
    this.sweepTemporaries(now, ownerlessGrace, res, dryRun);
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
        // An ownerless (empty) file is what a writer killed between create
        // and write leaves (the reference, or flax before atomic
        // reservations): no DEL can ever match it. It goes once it is
        // older than its grace period, whatever the valid list says.
        const grace = owner === '' ? ownerlessGrace : graceMs;
        if ((owner !== '' && keep(owner)) || now - st.mtimeMs < grace) {
          res.kept++;
          continue;
        }
        if (!dryRun) unlinkSync(file);
        res.removed.push(name);
      } catch (e) {
        if (errno(e) === 'ENOENT') continue;
        res.errors.push(`${name}: ${(e as Error).message}`);
      }
    }
    if (!dryRun) this.index.scan(true);
    return res;
  }

  /** Removes temporary reservation files (of killed writers) older than `graceMs`. */
  private sweepTemporaries(now: number, graceMs: number, res: GcResult, dryRun: boolean): void {
    let names: string[] = [];
    try {
      if (!lstatSync(this.idxDir).isDirectory()) return; // a symbolic link planted there: not ours to walk
      names = readdirSync(this.idxDir);
    } catch { return; }
    for (const name of names) {
      if (!name.startsWith(TMP_PREFIX)) continue;
      const file = path.join(this.idxDir, name);
      try {
        if (now - lstatSync(file).mtimeMs < graceMs) continue;
        if (!dryRun) unlinkSync(file);
        res.temporaries = (res.temporaries ?? 0) + 1;
      } catch (e) {
        if (errno(e) !== 'ENOENT') res.errors.push(`${file}: ${(e as Error).message}`);
      }
    }
  }

  /** Does `<dataDir>/<net>/` exist? (DEL, CHECK and GC create nothing when it does not.) */
  static exists(dataDir: string, network: string): boolean {
    return existsSync(path.join(dataDir, network));
  }

  /** Throws CniError(50) when `<dataDir>/<net>` cannot be written. */
  static probeWritable(dataDir: string, network: string): void {
    const netDir = path.join(dataDir, network);
    const idx = path.join(dataDir, INDEX_ROOT);
    const fail = (e: unknown) => new CniError(ErrCode.PluginNotAvailable, `host-local data directory ${netDir} is not writable: ${(e as Error).message}`);
    try {
      mkdirp(netDir, 0o755);
      mkdirIndex(idx, 0o700);
      // a write probe outside <net>/ (which would invalidate the index stamp); O_EXCL: never through a link
      const probe = path.join(idx, `.status-${process.pid}`);
      try { unlinkSync(probe); } catch { /* none left */ }
      writeExclusive(probe, '');
      unlinkSync(probe);
      // access(2) reports EROFS / permission for <net>/ itself without touching it
      const fd = openSync(path.join(netDir, LOCK_NAME), constants.O_RDWR | constants.O_CREAT, 0o600);
      closeSync(fd);
    } catch (e) {
      throw fail(e);
    }
  }

  private unlink(ip: string): void {
    try {
      unlinkSync(path.join(this.netDir, ip));
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw ioError(`cannot release ${ip}`, e);
    }
  }
}

/** Runs `fn` with the network's store open and locked; always unlocks. */
export function withDiskStore<T>(dataDir: string, network: string, fn: (s: DiskStore) => T, o: IndexOptions = {}): T {
  using s = DiskStore.open(dataDir, network, o);
  return fn(s);
}
