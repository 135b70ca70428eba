import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { canonicalIP } from '../../../pkg/ip';
import { BUCKETS, DiskStore, INDEX_ROOT, isReservationName, newIndexStats, ownerBucket, withDiskStore } from './disk-store';

let dir: string;
const NET = 'net1';
const a = { id: 'ctr-a', ifname: 'eth0' };
const b = { id: 'ctr-b', ifname: 'eth0' };
const netDir = () => path.join(dir, NET);
/** the index's counters over every op of this file, and its settle time (tests shorten it) */
const stats = newIndexStats();
const tuning = { settleMs: 2000 };
const op = <T>(fn: (s: DiskStore) => T): T => withDiskStore(dir, NET, fn, { stats, settleMs: tuning.settleMs });
/** What the Go plugin does on ADD: an O_EXCL file with `id\r\nifname`. */
const goReserve = (ip: string, content: string) => writeFileSync(path.join(netDir(), ip), content, { flag: 'wx', mode: 0o644 });
const rebuildsDuring = (fn: () => void) => {
  const before = stats.rebuilds;
  fn();
  return stats.rebuilds - before;
};

beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'flax-hl-store-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('DiskStore files', () => {
  it('writes the reference format: O_EXCL file, id\\r\\nifname, 0644 (less the umask, as Go does), last_reserved_ip.N, lock', () => {
    expect(op((s) => s.reserve(a, '10.0.0.2', 0))).toBe(true);
    expect(op((s) => s.reserve(b, '10.0.0.2', 0))).toBe(false);
    expect(op((s) => s.reserve(b, '2001:db8::2', 1))).toBe(true);
    expect(readFileSync(path.join(netDir(), '10.0.0.2'), 'latin1')).toBe('ctr-a\r\neth0');
    expect(statSync(path.join(netDir(), '10.0.0.2')).mode & 0o777).toBe(0o644 & ~process.umask());
    expect(readFileSync(path.join(netDir(), 'last_reserved_ip.1'), 'utf8')).toBe('2001:db8::2');
    expect(readdirSync(netDir()).sort()).toEqual(['10.0.0.2', '2001:db8::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    // the index lives outside <net>/ and never contains a bare owner string
    const k = readdirSync(path.join(dir, INDEX_ROOT, NET, 'b'));
    expect(k).toContain(ownerBucket('ctr-a\r\neth0'));
    for (const f of k) {
      const c = readFileSync(path.join(dir, INDEX_ROOT, NET, 'b', f), 'utf8').trim();
      expect(Array.isArray(JSON.parse(c))).toBe(true);
    }
  });

  it('releases by owner, then legacy id-only files; idempotent', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    goReserve('10.0.0.3', 'ctr-a'); // legacy form
    expect(op((s) => s.getByOwner(a)).sort()).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(op((s) => s.releaseByOwner(a))).toEqual(['10.0.0.2']);
    expect(op((s) => s.releaseByOwner(a))).toEqual(['10.0.0.3']);
    expect(op((s) => s.releaseByOwner(a))).toEqual([]);
    expect(readdirSync(netDir()).sort()).toEqual(['last_reserved_ip.0', 'lock']);
  });

  it('trims whitespace around the owner like the reference (files written by hand)', () => {
    op(() => undefined);
    goReserve('10.0.0.9', 'ctr-a\r\neth0\n');
    expect(op((s) => s.releaseByOwner(a))).toEqual(['10.0.0.9']);
  });
});

describe('DiskStore index freshness', () => {
  it('no rescan while only we touch the directory', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0)); // first op: empty dir rescan
    const n = rebuildsDuring(() => {
      for (let i = 0; i < 20; i++) {
        op((s) => s.reserve({ id: `c${i}`, ifname: 'eth0' }, `10.0.1.${i}`, 0));
        op((s) => s.getByOwner(a));
      }
      op((s) => s.releaseByOwner(a));
    });
    expect(n).toBe(0);
  });

  it('a foreign ADD right after ours (same clock tick) is seen by DEL and by the duplicate check', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    goReserve('10.0.0.3', 'ctr-b\r\neth0'); // immediately: same mtime tick as our change
    expect(rebuildsDuring(() => expect(op((s) => s.getByOwner(b))).toEqual(['10.0.0.3']))).toBe(1);
    expect(op((s) => s.releaseByOwner(b))).toEqual(['10.0.0.3']);
  });

  it('a foreign DEL is seen (index entry dropped after rescan)', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    rmSync(path.join(netDir(), '10.0.0.2'));
    expect(op((s) => s.getByOwner(a))).toEqual([]);
    expect(existsSync(path.join(dir, INDEX_ROOT, NET, 'b', ownerBucket('ctr-a\r\neth0')))).toBe(false);
  });

  it('an in-place rewrite that keeps the directory times is caught by verification', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    const st = statSync(netDir());
    writeFileSync(path.join(netDir(), '10.0.0.2'), 'ctr-b\r\neth0'); // in place: no dir mtime change
    utimesSync(netDir(), st.atime, st.mtime);
    expect(rebuildsDuring(() => expect(op((s) => s.getByOwner(a))).toEqual([]))).toBe(1);
    expect(op((s) => s.getByOwner(b))).toEqual(['10.0.0.2']);
  });

  it('a recreated directory with a forged mtime is still detected (inode/ctime)', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    const st = statSync(netDir(), { bigint: true });
    rmSync(netDir(), { recursive: true });
    mkdirSync(netDir());
    goReserve('10.0.0.7', 'ctr-a\r\neth0');
    utimesSync(netDir(), Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9);
    expect(op((s) => s.getByOwner(a))).toEqual(['10.0.0.7']);
  });

  it('a lost or corrupt index (or stamp) is rebuilt', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    writeFileSync(path.join(dir, INDEX_ROOT, NET, 'b', ownerBucket('ctr-a\r\neth0')), '{garbage');
    expect(op((s) => s.getByOwner(a))).toEqual(['10.0.0.2']);
    rmSync(path.join(dir, INDEX_ROOT), { recursive: true });
    expect(op((s) => s.releaseByOwner(a))).toEqual(['10.0.0.2']);
    op((s) => s.reserve(a, '10.0.0.3', 0));
    writeFileSync(path.join(dir, INDEX_ROOT, NET, 'stamp'), 'v1 0 0 0 0');
    expect(rebuildsDuring(() => expect(op((s) => s.getByOwner(a))).toEqual(['10.0.0.3']))).toBe(1);
  });

  it('an index entry pointing at a file owned by someone else triggers a rescan, never a wrong release', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    const kf = path.join(dir, INDEX_ROOT, NET, 'b', ownerBucket('ctr-b\r\neth0'));
    writeFileSync(kf, JSON.stringify({ 'ctr-b\r\neth0': ['10.0.0.2'] }) + '\n');
    expect(op((s) => s.releaseByOwner(b))).toEqual([]);
    expect(existsSync(path.join(netDir(), '10.0.0.2'))).toBe(true);
  });
});

describe('DiskStore index buckets', () => {
  it('owners named like Object.prototype members are plain keys', () => {
    for (const id of ['constructor', 'toString', 'hasOwnProperty']) {
      expect(op((s) => s.getByOwner({ id, ifname: 'eth0' }))).toEqual([]);
      op((s) => s.reserve({ id, ifname: 'eth0' }, `10.0.0.${id.length}`, 0));
    }
    op(() => undefined);
    goReserve('10.0.0.99', '__proto__');
    expect(op((s) => s.getByOwner({ id: '__proto__', ifname: 'eth0' }))).toEqual(['10.0.0.99']);
    const n = rebuildsDuring(() => expect(op((s) => s.getByOwner({ id: 'constructor', ifname: 'eth0' }))).toEqual(['10.0.0.11']));
    expect(n).toBe(0);
  });

  it('many owners: a rebuild writes at most 1024 bucket files and lookups stay exact', () => {
    op(() => undefined);
    for (let i = 0; i < 3000; i++) goReserve(`10.1.${i >> 8}.${i & 255}`, `c${i}\r\neth0`);
    expect(op((s) => s.getByOwner({ id: 'c1234', ifname: 'eth0' }))).toEqual(['10.1.4.210']);
    expect(readdirSync(path.join(dir, INDEX_ROOT, NET, 'b')).length).toBeLessThanOrEqual(1024);
    const n = rebuildsDuring(() => {
      expect(op((s) => s.releaseByOwner({ id: 'c2999', ifname: 'eth0' }))).toEqual(['10.1.11.183']);
      expect(op((s) => s.getByOwner({ id: 'c0', ifname: 'eth0' }))).toEqual(['10.1.0.0']);
    });
    expect(n).toBe(0);
  });
});

describe('DiskStore.gc', () => {
  it('removes unlisted reservations older than the grace period, keeps lock/last_reserved_ip/unknown files', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    op((s) => s.reserve(b, '10.0.0.3', 0));
    goReserve('10.0.0.4', 'ctr-c');
    writeFileSync(path.join(netDir(), 'README'), 'ctr-b\r\neth0');
    const old = new Date(Date.now() - 60_000);
    for (const f of ['10.0.0.2', '10.0.0.3']) utimesSync(path.join(netDir(), f), old, old);
    const r = op((s) => s.gc((o) => o === 'ctr-a\r\neth0', 5000));
    expect(r.removed).toEqual(['10.0.0.3']);
    expect(readdirSync(netDir()).sort()).toEqual(['10.0.0.2', '10.0.0.4', 'README', 'last_reserved_ip.0', 'lock']);
    expect(op((s) => s.getByOwner(b))).toEqual([]);
  });
});

/** Counter deltas over `fn`. */
const delta = (fn: () => void) => {
  const before = { ...stats };
  fn();
  return { scans: stats.rebuilds - before.rebuilds, full: stats.full - before.full, read: stats.filesRead - before.filesRead, written: stats.bucketsWritten - before.bucketsWritten };
};
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const idxBucket = (owner: string): unknown[] => {
  try {
    return JSON.parse(readFileSync(path.join(dir, INDEX_ROOT, NET, 'b', ownerBucket(owner)), 'utf8')) as unknown[];
  } catch {
    return [];
  }
};
/** The names the index lists for an owner, from its bucket file. */
const listed = (owner: string): string[] => {
  const a = idxBucket(owner);
  const r: string[] = [];
  for (let i = 0; i < a.length; i += 4) if (a[i] === owner) r.push(a[i + 1] as string);
  return r.sort();
};
const own = (i: number) => ({ id: `c${i}`, ifname: 'eth0' });
const ipOf = (i: number) => `10.2.${i >> 8}.${i & 255}`;

describe('DiskStore incremental refresh', () => {
  const N = 300;
  const settle = tuning.settleMs;
  beforeEach(() => {
    // files older than 50 ms get their (ino, ctime) recorded: far more than a
    // timestamp tick, short enough for tests
    tuning.settleMs = 50;
    op(() => undefined);
    for (let i = 0; i < N; i++) goReserve(ipOf(i), `c${i}\r\neth0`);
    sleep(120);
    const d = delta(() => op((s) => s.getByOwner(a))); // the first build: every (ino, ctime) recorded
    expect(d).toMatchObject({ scans: 1, full: 1, read: N });
  });
  afterEach(() => { tuning.settleMs = settle; });

  it('a foreign add: only the new file is read, only its bucket rewritten', () => {
    goReserve('10.2.200.1', 'ctr-b\r\neth0');
    const d = delta(() => expect(op((s) => s.getByOwner(b))).toEqual(['10.2.200.1']));
    expect(d).toEqual({ scans: 1, full: 0, read: 1, written: 1 });
    expect(listed('ctr-b\r\neth0')).toEqual(['10.2.200.1']);
    expect(op((s) => s.getByOwner(own(7)))).toEqual([ipOf(7)]);
  });

  it('a foreign delete: nothing is read, the record is dropped', () => {
    rmSync(path.join(netDir(), ipOf(5)));
    const d = delta(() => expect(op((s) => s.getByOwner(own(5)))).toEqual([]));
    expect(d).toEqual({ scans: 1, full: 0, read: 0, written: 1 });
    expect(listed('c5\r\neth0')).toEqual([]);
  });

  it('a foreign add and delete at once', () => {
    rmSync(path.join(netDir(), ipOf(9)));
    goReserve('10.2.200.2', 'c9\r\neth0');
    goReserve('10.2.200.3', 'ctr-b\r\neth0');
    const d = delta(() => expect(op((s) => s.getByOwner(own(9)))).toEqual(['10.2.200.2']));
    expect(d).toMatchObject({ scans: 1, full: 0, read: 2 });
    expect(listed('c9\r\neth0')).toEqual(['10.2.200.2']);
    expect(op((s) => s.releaseByOwner(b))).toEqual(['10.2.200.3']);
  });

  it('an address released and re-reserved by another owner under the same name (the Go plugin reusing it) is re-read', () => {
    rmSync(path.join(netDir(), ipOf(11)));
    goReserve(ipOf(11), 'ctr-b\r\neth0'); // same name, maybe the same inode: the ctime differs
    const d = delta(() => expect(op((s) => s.getByOwner(b))).toEqual([ipOf(11)]));
    expect(d).toMatchObject({ scans: 1, full: 0, read: 1 });
    expect(op((s) => s.getByOwner(own(11)))).toEqual([]);
    expect(op((s) => s.releaseByOwner(b))).toEqual([ipOf(11)]);
  });

  it('an in-place owner rewrite with the times restored: caught when <net>/ changes, or by the old owner\'s verification; missed by the new owner until then', () => {
    const f = path.join(netDir(), ipOf(20));
    const st = statSync(f);
    writeFileSync(f, 'ctr-b\r\neth0'); // in place: no directory change at all
    utimesSync(f, st.atime, st.mtime); // its ctime still moves
    // not detected: the stamp is valid and nothing lists the file for ctr-b
    expect(delta(() => expect(op((s) => s.getByOwner(b))).toEqual([]))).toMatchObject({ scans: 0 });
    // detected by any later change of <net>/ (here a foreign add): ctime ≠ record
    goReserve('10.2.200.4', 'ctr-a\r\neth0');
    const d = delta(() => expect(op((s) => s.getByOwner(b))).toEqual([ipOf(20)]));
    expect(d).toMatchObject({ scans: 1, full: 0, read: 2 });
    expect(op((s) => s.getByOwner(own(20)))).toEqual([]);

    // the same with <net>/'s times restored too: utimes moves its ctime → refresh
    const g = path.join(netDir(), ipOf(21));
    const sg = statSync(g);
    const sd = statSync(netDir());
    writeFileSync(g, 'ctr-b\r\neth0');
    utimesSync(g, sg.atime, sg.mtime);
    utimesSync(netDir(), sd.atime, sd.mtime);
    expect(delta(() => expect(op((s) => s.getByOwner(b)).sort()).toEqual([ipOf(20), ipOf(21)]))).toMatchObject({ scans: 1, full: 0 });

    // and with nothing else happening, the old owner's lookup verifies and rebuilds
    const h = path.join(netDir(), ipOf(22));
    writeFileSync(h, 'ctr-b\r\neth0');
    expect(delta(() => expect(op((s) => s.getByOwner(own(22)))).toEqual([]))).toMatchObject({ scans: 1, full: 1, read: N + 1 });
    expect(op((s) => s.getByOwner(b)).sort()).toEqual([ipOf(20), ipOf(21), ipOf(22)]);
  });

  it('a crash between the reservation and the index update (ADD): the refresh reads just that file', () => {
    const s = DiskStore.open(dir, NET, { stats, settleMs: tuning.settleMs });
    expect(s.reserve(a, '10.2.200.5', 0)).toBe(true);
    s.abandon(); // the lock goes with the process; nothing else was written
    expect(listed('ctr-a\r\neth0')).toEqual([]);
    const d = delta(() => expect(op((x) => x.getByOwner(a))).toEqual(['10.2.200.5']));
    expect(d).toMatchObject({ scans: 1, full: 0, read: 1 });
    expect(listed('ctr-a\r\neth0')).toEqual(['10.2.200.5']);
  });

  it('a crash between the release and the index update (DEL)', () => {
    const s = DiskStore.open(dir, NET, { stats, settleMs: tuning.settleMs });
    expect(s.releaseByOwner(own(3))).toEqual([ipOf(3)]);
    s.abandon();
    expect(listed('c3\r\neth0')).toEqual([ipOf(3)]); // stale
    const d = delta(() => expect(op((x) => x.getByOwner(own(3)))).toEqual([]));
    expect(d).toMatchObject({ scans: 1, full: 0, read: 0 });
    expect(listed('c3\r\neth0')).toEqual([]);
  });

  it('a crash between the index update and the stamp', () => {
    const stamp = path.join(dir, INDEX_ROOT, NET, 'stamp');
    const old = readFileSync(stamp, 'utf8');
    op((s) => s.reserve(a, '10.2.200.6', 0));
    op((s) => s.releaseByOwner(own(4)));
    writeFileSync(stamp, old); // as if neither stamp had been written
    const d = delta(() => expect(op((s) => s.getByOwner(a))).toEqual(['10.2.200.6']));
    expect(d).toMatchObject({ scans: 1, full: 0, read: 1 }); // our own new file is not verified yet
    expect(op((s) => s.getByOwner(own(4)))).toEqual([]);
  });

  it('a half-written or listed-twice bucket is repaired by the next refresh', () => {
    const bf = path.join(dir, INDEX_ROOT, NET, 'b', ownerBucket('c8\r\neth0'));
    writeFileSync(bf, '["c8\\r\\neth0","10.2.0.8",12'); // torn write
    const other = ownerBucket('ctr-b\r\neth0') === ownerBucket('c10\r\neth0') ? ownerBucket('c12\r\neth0') : ownerBucket('c10\r\neth0');
    const of = path.join(dir, INDEX_ROOT, NET, 'b', other);
    const arr = JSON.parse(readFileSync(of, 'utf8')) as unknown[];
    arr.push('ctr-b\r\neth0', ipOf(10), 1, 1); // a second, wrong record of 10.2.0.10
    writeFileSync(of, JSON.stringify(arr));
    goReserve('10.2.200.7', 'ctr-a\r\neth0'); // any directory change
    const d = delta(() => expect(op((s) => s.getByOwner(own(8)))).toEqual([ipOf(8)]));
    expect(d).toMatchObject({ scans: 1, full: 0 });
    expect(listed('c8\r\neth0')).toEqual([ipOf(8)]);
    expect(op((s) => s.getByOwner(b))).toEqual([]);
    expect(op((s) => s.getByOwner(own(10)))).toEqual([ipOf(10)]);
  });

  it('files younger than the settle time are not trusted by their (ino, ctime): read again at the next refresh', () => {
    tuning.settleMs = 60_000;
    goReserve('10.2.200.8', 'ctr-b\r\neth0');
    expect(delta(() => op((s) => s.getByOwner(b)))).toMatchObject({ read: 1 });
    const rec = idxBucket('ctr-b\r\neth0');
    expect(rec.slice(rec.indexOf('10.2.200.8') + 1, rec.indexOf('10.2.200.8') + 3)).toEqual([0, 0]);
    goReserve('10.2.200.9', 'ctr-a\r\neth0');
    expect(delta(() => op((s) => s.getByOwner(b)))).toMatchObject({ scans: 1, read: 2 });
  });
});

describe('DiskStore full rebuild', () => {
  it('the first call in a directory reads each file once and writes each bucket once', () => {
    op(() => undefined);
    for (let i = 0; i < 2000; i++) goReserve(ipOf(i), `c${i}\r\neth0`);
    const d = delta(() => expect(op((s) => s.getByOwner(own(1999)))).toEqual([ipOf(1999)]));
    const files = readdirSync(path.join(dir, INDEX_ROOT, NET, 'b'));
    expect(d).toEqual({ scans: 1, full: 1, read: 2000, written: files.length });
    expect(files.length).toBeLessThanOrEqual(BUCKETS);
  });

  it('an index of the previous layout (v1 stamp, object buckets) is replaced', () => {
    op((s) => s.reserve(a, '10.0.0.2', 0));
    const idx = path.join(dir, INDEX_ROOT, NET);
    writeFileSync(path.join(idx, 'stamp'), 'v1 1 2 3 4');
    writeFileSync(path.join(idx, 'b', '3ff'), JSON.stringify({ 'ctr-b\r\neth0': ['10.0.0.2'] }));
    writeFileSync(path.join(idx, 'b', ownerBucket('ctr-b\r\neth0')), JSON.stringify({ 'ctr-b\r\neth0': ['10.0.0.2'] }));
    expect(delta(() => expect(op((s) => s.getByOwner(b))).toEqual([]))).toMatchObject({ scans: 1, full: 1 });
    expect(readdirSync(path.join(idx, 'b'))).toEqual([ownerBucket('ctr-a\r\neth0')]);
    expect(op((s) => s.getByOwner(a))).toEqual(['10.0.0.2']);
  });
});

describe('isReservationName', () => {
  it('matches canonicalIP exactly (the IPv4 fast path included)', () => {
    const samples = ['0.0.0.0', '255.255.255.255', '256.1.1.1', '1.2.3.04', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1.2.3.4 ', '10.0.0.1\n',
      '::', '::1', '2001:db8::1', '2001:DB8::1', '::ffff:1.2.3.4', '1.2.3.+4', '١.2.3.4', 'lock', 'last_reserved_ip.0', ''];
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const alphabet = '0123456789.:abf';
    for (let i = 0; i < 5000; i++) {
      let t = '';
      const len = 1 + (rnd() % 16);
      for (let j = 0; j < len; j++) t += alphabet[rnd() % alphabet.length];
      samples.push(t, `${rnd() % 300}.${rnd() % 300}.${rnd() % 300}.${rnd() % 300}`);
    }
    for (const x of samples) expect([x, isReservationName(x)]).toEqual([x, canonicalIP(x) === x]);
  });
});
