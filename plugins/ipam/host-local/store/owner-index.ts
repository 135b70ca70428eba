/**
 * The owner index beside host-local's files (`<dataDir>/.flax-host-local/
 * <net>/`): owner text → addresses in 256 bucket files, validated by a
 * stamp of `<net>/` and refreshed incrementally by (ino, ctime) — so that
 * ADD/DEL cost does not grow with the number of reservations. One instance
 * per store operation (under the network's lock). Design: README.md.
 */
import { readdirSync, rmSync, statSync, utimesSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { errno, ioError, isReservationName, mkdirIndex, readIndexFile, readReservation, rewriteFile } from './fsutil';

/** Counters for tests and the benchmark: scans (full or incremental), full
 * ones, reservation files opened and read by scans, bucket files written. */
export interface IndexStats { rebuilds: number; full: number; filesRead: number; bucketsWritten: number }
export const newIndexStats = (): IndexStats => ({ rebuilds: 0, full: 0, filesRead: 0, bucketsWritten: 0 });

export interface IndexOptions {
  /** A file's (ino, ctime) pair is recorded only when its ctime is older
   * than the scan by this much (more than any timestamp granularity or
   * tick); default 2000 ms, tests shorten it. */
  settleMs?: number;
  /** counters to add to (default: the instance's own) */
  stats?: IndexStats;
  /** where a warning goes (the plugin's Host's stderr; default process.stderr) */
  stderr?: { write(s: string): unknown };
}

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

const STAT_OPTS = { throwIfNoEntry: false } as const;

const STAMP_VERSION = 'v2';
function stampOf(st: BigIntStats): string {
  return `${STAMP_VERSION} ${st.dev} ${st.ino} ${st.mtimeNs} ${st.ctimeNs}`;
}

export class OwnerIndex {
  readonly bucketDir: string;
  readonly stampPath: string;
  readonly stats: IndexStats;
  private readonly stderr: { write(s: string): unknown };
  private readonly settleMs: number;
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

  constructor(private readonly netDir: string, readonly idxDir: string, o: IndexOptions = {}) {
    this.bucketDir = path.join(idxDir, 'b');
    this.stampPath = path.join(idxDir, 'stamp');
    this.settleMs = o.settleMs ?? 2000;
    this.stats = o.stats ?? newIndexStats();
    this.stderr = o.stderr ?? process.stderr;
  }

  /** Records `key`'s addresses as `ips` (written by commit()). */
  set(key: string, ips: string[]): void {
    this.cache.set(key, ips);
    this.dirty.add(key);
  }

  /** Validates the stamp once per operation; refreshes or rebuilds when it is stale. */
  private ensureFresh(): void {
    if (this.fresh) return;
    this.fresh = true;
    let want = '';
    try {
      want = readIndexFile(this.stampPath);
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
  entry(key: string): string[] {
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
        text = readIndexFile(path.join(this.bucketDir, name));
      } catch (e) {
        // ELOOP: a symbolic link planted there, replaced by the next write
        if (errno(e) !== 'ENOENT' && errno(e) !== 'ELOOP') return null;
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
  readOwner(ip: string): string | null {
    return readReservation(path.join(this.netDir, ip), false)?.owner ?? null;
  }

  /**
   * Brings the index in line with `<net>/` (the stamp follows in commit()).
   * Incremental: a file whose (ino, ctime) matches its record keeps the
   * recorded owner, every other one is read; only the buckets that gained,
   * lost or changed a record are rewritten. Full: every file is read, every
   * bucket whose text differs rewritten.
   */
  scan(full: boolean): void {
    this.stats.rebuilds++;
    if (full) this.stats.full++;
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
      try { text = readIndexFile(path.join(this.bucketDir, bn)); } catch { /* a directory, a symbolic link, unreadable: replaced */ }
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
    const settled = Date.now() - this.settleMs;
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
        this.stats.filesRead++;
        const f = readReservation(file, true);
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
      mkdirIndex(this.bucketDir, 0o700);
      for (const bn of full ? out.keys() : touched) {
        const pairs = out.get(bn);
        if (!pairs) continue;
        const body = bucketBody(pairs);
        const cur = onDisk.get(bn);
        if (cur === body) continue;
        if (cur === null) rmSync(path.join(this.bucketDir, bn), { force: true, recursive: true });
        rewriteFile(path.join(this.bucketDir, bn), body, 0o600, true);
        this.stats.bucketsWritten++;
      }
      for (const bn of onDisk.keys()) if (!out.has(bn)) rmSync(path.join(this.bucketDir, bn), { force: true, recursive: true });
    } catch (e) {
      // The index is an optimisation: without it every operation rescans.
      this.invalidateStamp();
      this.rebuilt = false;
      this.stderr.write(`flax host-local: cannot write index ${this.bucketDir}: ${(e as Error).message}\n`);
    }
  }

  private invalidateStamp(): void {
    try { rmSync(this.stampPath, { force: true }); } catch { /* next op rescans anyway */ }
  }

  /** Persists changed index entries, then re-stamps `<net>/`. */
  commit(): void {
    if (!this.dirty.size && !this.rebuilt) return;
    try {
      mkdirIndex(this.bucketDir, 0o700);
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
        if (pairs.length) rewriteFile(file, bucketBody(pairs), 0o600, true);
        else rmSync(file, { force: true });
      }
      this.dirty.clear();
      const nowS = Date.now() / 1000;
      // sentinel: whole seconds − 2 + a random fraction, never a time a
      // later create/unlink can stamp on the directory
      utimesSync(this.netDir, nowS, Math.floor(nowS) - 2 + Math.random() * 0.5);
      rewriteFile(this.stampPath, stampOf(statSync(this.netDir, { bigint: true })), 0o600, true);
    } catch (e) {
      this.invalidateStamp();
      this.stderr.write(`flax host-local: cannot update index ${this.idxDir}: ${(e as Error).message}\n`);
    }
  }
}
