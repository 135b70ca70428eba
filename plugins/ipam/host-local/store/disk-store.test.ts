import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiskStore, INDEX_ROOT, ownerBucket, stats, withDiskStore } from './disk-store';

let dir: string;
const NET = 'net1';
const a = { id: 'ctr-a', ifname: 'eth0' };
const b = { id: 'ctr-b', ifname: 'eth0' };
const netDir = () => path.join(dir, NET);
const op = <T>(fn: (s: DiskStore) => T): T => withDiskStore(dir, NET, fn);
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
  it('writes the reference format: O_EXCL file, id\\r\\nifname, 0600, last_reserved_ip.N, lock', () => {
    expect(op((s) => s.reserve(a, '10.0.0.2', 0))).toBe(true);
    expect(op((s) => s.reserve(b, '10.0.0.2', 0))).toBe(false);
    expect(op((s) => s.reserve(b, '2001:db8::2', 1))).toBe(true);
    expect(readFileSync(path.join(netDir(), '10.0.0.2'), 'latin1')).toBe('ctr-a\r\neth0');
    expect(statSync(path.join(netDir(), '10.0.0.2')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(netDir(), 'last_reserved_ip.1'), 'utf8')).toBe('2001:db8::2');
    expect(readdirSync(netDir()).sort()).toEqual(['10.0.0.2', '2001:db8::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    // the index lives outside <net>/ and never contains a bare owner string
    const k = readdirSync(path.join(dir, INDEX_ROOT, NET, 'b'));
    expect(k).toContain(ownerBucket('ctr-a\r\neth0'));
    for (const f of k) {
      const c = readFileSync(path.join(dir, INDEX_ROOT, NET, 'b', f), 'utf8').trim();
      expect(c.startsWith('{')).toBe(true);
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
