/**
 * The on-disk store, byte-compatible with the reference host-local
 * (`<dataDir>/<net>/<ip>` files, `last_reserved_ip.N`, `lock`), with our
 * validated index beside it (`<dataDir>/.flax-host-local/<net>/`) so that
 * ADD/DEL cost does not grow with the number of reservations. The design —
 * layout, freshness stamp, incremental refresh, crash safety, what is not
 * detected, costs — is in README.md beside this file.
 */
import {
  closeSync, constants, existsSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync,
  unlinkSync, utimesSync, writeFileSync, writeSync, type BigIntStats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import { canonicalIP } from '../../../pkg/ip';
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

/** Temporary reservation files in the index directory: `.tmp-<pid>-<n>`. */
const TMP_PREFIX = '.tmp-';

/** Creates `file` (O_EXCL, 0600) holding `content`; false when it exists.
 * A failed write removes the file again. */
function writeExclusive(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
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

const readBuf = Buffer.alloc(1024);

export const BUCKETS = 256;
const BUCKET_NAME = /^[0-9a-f]{2}$/;
/** The bucket file name (2 hex digits) of an owner text: FNV-1a 32 with a
 * final avalanche, folded to 8 bits (sha256 costs ~7 µs an owner, a
 * sizeable share of a 20 000-reservation rebuild). */
export function ownerBucket(owner: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < owner.length; i++) h = Math.imul(h ^ owner.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h ^= h >>> 16;
  return ((h ^ (h >>> 8) ^ (h >>> 24)) & (BUCKETS - 1)).toString(16).padStart(2, '0');
}
/** A reservation file the index knows: [name, ino, ctimeMs]; ino 0 (never
 * a real inode): not verified, read again at the next refresh. */
type Rec = [string, number, number];
/** One bucket in memory: owner text → its records. */
type Bucket = Map<string, Rec[]>;
/** Records of a bucket as the scan produced them. */
type Pairs = Array<[owner: string, rec: Rec]>;

/**
 * A bucket file's records, flat — `[owner, name, ino, ctimeMs, owner, …]` —
 * or null when malformed. Flat on purpose: JSON objects keyed by 20 000
 * distinct owners parse ~3× slower (every key is internalised), and a
 * refresh parses all of them.
 */
function parseBucketText(text: string): unknown[] | null {
  let a: unknown;
  try { a = JSON.parse(text); } catch { return null; }
  if (!Array.isArray(a) || a.length % 4 !== 0) return null;
  for (let i = 0; i < a.length; i += 4) {
    if (typeof a[i] !== 'string' || typeof a[i + 1] !== 'string' || typeof a[i + 2] !== 'number' || typeof a[i + 3] !== 'number'
      || !isReservationName(a[i + 1] as string)) return null;
  }
  return a;
}

/** The canonical text of a bucket: owners, then names, sorted. */
function bucketBody(pairs: Pairs): string {
  pairs.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1][0] < y[1][0] ? -1 : x[1][0] > y[1][0] ? 1 : 0));
  const out: Array<string | number> = [];
  for (const [owner, r] of pairs) out.push(owner, r[0], r[1], r[2]);
  return JSON.stringify(out) + '\n';
}

/** A file's (ino, ctime) pair is recorded only when its ctime is older than
 * the scan by `settleMs` (more than any timestamp granularity or tick);
 * tests shorten it. */
export const tuning = { settleMs: 2000 };
const STAT_OPTS = { throwIfNoEntry: false } as const;

const STAMP_VERSION = 'v2';
function stampOf(st: BigIntStats): string {
  return `${STAMP_VERSION} ${st.dev} ${st.ino} ${st.mtimeNs} ${st.ctimeNs}`;
}

const V4_CANONICAL = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** Is `name` a reservation file name (an address in its canonical form)?
 * IPv4 by one regex (a rescan tests every name); IPv6 by parse + print. */
export const isReservationName = (name: string): boolean =>
  V4_CANONICAL.test(name) || (name.includes(':') && canonicalIP(name) === name);

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

/** Counters for tests and the benchmark: scans (full or incremental), full
 * ones, reservation files opened and read by scans, bucket files written. */
export const stats = { rebuilds: 0, full: 0, filesRead: 0, bucketsWritten: 0 };

export class DiskStore implements Store {
  readonly netDir: string;
  readonly idxDir: string;
  readonly bucketDir: string;
  readonly stampPath: string;
  private lock: FileLock | null = null;
  /** owner text → ips, for owners loaded (verified) or changed in this operation */
  private cache = new Map<string, string[]>();
  /** buckets read (or taken from the scan) in this operation */
  private buckets = new Map<string, Bucket>();
  /** a scan ran in this operation: `scanned` holds every record, per bucket */
  private complete = false;
  private scanned = new Map<string, Pairs>();
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

  /** `using s = DiskStore.open(…)`: close() at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Releases the lock without writing anything more, as a crash would (tests). */
  abandon(): void {
    this.lock?.release();
    this.lock = null;
  }

  // ---- Store ------------------------------------------------------------

  reserve(owner: Owner, ip: string, setIndex: number): boolean {
    const key = ownerText(owner);
    const cur = this.entry(key);
    const file = path.join(this.netDir, ip);
    if (!this.createReservation(file, key, ip)) return false;
    try {
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
      mkdirp(this.idxDir, 0o700);
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
    if (!dryRun) this.scan(true);
    return res;
  }

  /** Removes temporary reservation files (of killed writers) older than `graceMs`. */
  private sweepTemporaries(now: number, graceMs: number, res: GcResult, dryRun: boolean): void {
    let names: string[] = [];
    try { names = readdirSync(this.idxDir); } catch { return; }
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

  /** Validates the stamp once per operation; refreshes or rebuilds when it is stale. */
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
    if (want === stampOf(st)) return;
    // an index of ours of this layout → incremental; none, or another layout → full
    this.scan(!want.startsWith(`${STAMP_VERSION} `));
  }

  /** The verified addresses of one owner text. */
  private entry(key: string): string[] {
    this.ensureFresh();
    const c = this.cache.get(key);
    if (c) return c;
    for (;;) {
      const bucket = this.loadBucket(ownerBucket(key));
      if (bucket) {
        const ips = (bucket.get(key) ?? []).map((r) => r[0]);
        // records a scan of this operation produced were just read or stat()ed
        if (this.complete || ips.every((ip) => this.readOwner(ip) === key)) {
          this.cache.set(key, ips);
          return ips;
        }
      }
      this.scan(true); // corrupt bucket or failed verification (after a scan, never)
    }
  }

  /** A bucket (empty when missing), null when unreadable or corrupt. */
  private loadBucket(name: string): Bucket | null {
    const c = this.buckets.get(name);
    if (c) return c;
    const b: Bucket = new Map();
    const add = (owner: string, r: Rec) => {
      const l = b.get(owner);
      if (l) l.push(r);
      else b.set(owner, [r]);
    };
    if (this.complete) {
      for (const [owner, r] of this.scanned.get(name) ?? []) add(owner, r);
    } else {
      let text: string | null = null;
      try {
        text = readFileSync(path.join(this.bucketDir, name), 'utf8');
      } catch (e) {
        if (errno(e) !== 'ENOENT') return null;
      }
      if (text !== null) {
        const a = parseBucketText(text);
        if (!a) return null;
        for (let i = 0; i < a.length; i += 4) add(a[i] as string, [a[i + 1] as string, a[i + 2] as number, a[i + 3] as number]);
      }
    }
    this.buckets.set(name, b);
    return b;
  }

  /** Trimmed content of a reservation file, or null. */
  private readOwner(ip: string): string | null {
    return this.readFile(path.join(this.netDir, ip), false)?.owner ?? null;
  }

  /** One open/(fstat)/read/close: a full rebuild reads every reservation,
   * so this is its hot path. The fstat describes the very inode read. */
  private readFile(file: string, withStat: boolean): { owner: string; ino: number; ctime: number } | null {
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

  private unlink(ip: string): void {
    try {
      unlinkSync(path.join(this.netDir, ip));
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw ioError(`cannot release ${ip}`, e);
    }
  }

  /**
   * Brings the index in line with `<net>/` (the stamp follows in commit()).
   * Incremental: a file whose (ino, ctime) matches its record keeps the
   * recorded owner, every other one is read; only the buckets that gained,
   * lost or changed a record are rewritten. Full: every file is read, every
   * bucket whose text differs rewritten.
   */
  private scan(full: boolean): void {
    stats.rebuilds++;
    if (full) stats.full++;
    this.fresh = true;
    // 1. the index as it is: bucket texts; incrementally, the records
    const onDisk = new Map<string, string | null>();
    const touched = new Set<string>();
    const known = new Map<string, number>(); // name → slot
    const kOwner: string[] = [];
    const kRec: Rec[] = [];
    const kBucket: string[] = [];
    let bucketFiles: string[] = [];
    try { bucketFiles = readdirSync(this.bucketDir); } catch { /* no index yet */ }
    for (const bn of bucketFiles) {
      let text: string | null = null;
      try { text = readFileSync(path.join(this.bucketDir, bn), 'utf8'); } catch { /* a directory, unreadable: replaced */ }
      onDisk.set(bn, text);
      if (full || text === null || !BUCKET_NAME.test(bn)) continue;
      const a = parseBucketText(text);
      if (!a) {
        touched.add(bn);
        continue;
      }
      for (let j = 0; j < a.length; j += 4) {
        const name = a[j + 1] as string;
        const i = known.get(name);
        if (i !== undefined) { // listed twice: trust neither record
          kRec[i] = [name, 0, 0];
          touched.add(kBucket[i]).add(bn);
          continue;
        }
        known.set(name, kRec.length);
        kOwner.push(a[j] as string);
        kRec.push([name, a[j + 2] as number, a[j + 3] as number]);
        kBucket.push(bn);
      }
    }

    // 2. the directory: stat what the index knows, read the rest
    let names: string[];
    try {
      names = readdirSync(this.netDir);
    } catch (e) {
      throw ioError(`cannot read ${this.netDir}`, e);
    }
    const settled = Date.now() - tuning.settleMs;
    const out = new Map<string, Pairs>();
    const present = new Uint8Array(kRec.length);
    const dir = this.netDir + path.sep;
    for (const name of names) {
      if (!isReservationName(name)) continue;
      const file = dir + name;
      let owner: string | undefined;
      let rec: Rec | undefined;
      let bn: string;
      const i = known.get(name);
      if (i !== undefined) {
        present[i] = 1;
        const k = kRec[i];
        if (k[1] !== 0) {
          let st;
          try { st = statSync(file, STAT_OPTS); } catch { /* unreadable: as missing */ }
          if (st && st.ino === k[1] && st.ctimeMs === k[2] && st.isFile()) {
            owner = kOwner[i];
            rec = k;
          }
        }
        if (owner === undefined) touched.add(kBucket[i]);
      }
      if (owner === undefined || rec === undefined) {
        stats.filesRead++;
        const f = this.readFile(file, true);
        if (!f || !f.owner) continue;
        owner = f.owner;
        rec = f.ctime < settled ? [name, f.ino, f.ctime] : [name, 0, 0];
        bn = ownerBucket(owner);
        touched.add(bn);
      } else {
        bn = kBucket[i!];
      }
      const l = out.get(bn);
      if (l) l.push([owner, rec]);
      else out.set(bn, [[owner, rec]]);
    }
    for (let i = 0; i < present.length; i++) if (!present[i]) touched.add(kBucket[i]); // vanished

    // 3. this operation answers from the scan (changes it made before are on disk)
    this.cache.clear();
    this.buckets.clear();
    this.scanned = out;
    this.complete = true;
    this.rebuilt = true;
    this.dirty.clear();
    try {
      mkdirp(this.bucketDir, 0o700);
      for (const bn of full ? out.keys() : touched) {
        const pairs = out.get(bn);
        if (!pairs) continue;
        const body = bucketBody(pairs);
        const cur = onDisk.get(bn);
        if (cur === body) continue;
        if (cur === null) rmSync(path.join(this.bucketDir, bn), { force: true, recursive: true });
        writeFileSync(path.join(this.bucketDir, bn), body, { mode: 0o600 });
        stats.bucketsWritten++;
      }
      for (const bn of onDisk.keys()) if (!out.has(bn)) rmSync(path.join(this.bucketDir, bn), { force: true, recursive: true });
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
        if (ips.length) {
          // keep the records of addresses still held; new ones are unverified
          const was = new Map((b.get(key) ?? []).map((r) => [r[0], r]));
          b.set(key, ips.map((ip): Rec => was.get(ip) ?? [ip, 0, 0]));
        } else b.delete(key);
        touched.add(name);
      }
      for (const name of touched) {
        const b = this.buckets.get(name)!;
        const file = path.join(this.bucketDir, name);
        const pairs: Pairs = [];
        for (const [owner, recs] of b) for (const r of recs) pairs.push([owner, r]);
        if (pairs.length) writeFileSync(file, bucketBody(pairs), { mode: 0o600 });
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

/** Runs `fn` with the network's store open and locked; always unlocks. */
export function withDiskStore<T>(dataDir: string, network: string, fn: (s: DiskStore) => T): T {
  using s = DiskStore.open(dataDir, network);
  return fn(s);
}
