/**
 * The file lease store (`--lease-dir`, default /var/lib/flax/leases): the
 * registry shared by the agents of one machine (namespace "nodes", demos).
 *
 * Layout: `<dir>/subnets/<key>.json`, key as in etcd (`10.244.1.0-24`,
 * `10.244.1.0-24&fc00::-64`), content
 *   {"Value":<flanneld's etcd value, byte for byte>,"Expiration":"<ISO 8601>"|null}
 * (null = a reservation). Every mutation holds an exclusive flock on
 * `<dir>/.lock` and replaces files by atomic rename, so readers (list) need
 * no lock and never see half a file. Expired leases are invisible to list()
 * and may be taken by create(). A file that cannot be parsed (emptied,
 * garbled by hand, or caught mid-write by a writer that is not us) is
 * reported as unreadable, never as removed: only a deleted or expired file
 * removes a lease. Changes are noticed by fs.watch on the
 * directory and reported as events (only the named files are read), with a
 * periodic re-list as backstop (watch events can be lost, and expiry
 * produces none).
 */
import fs from 'node:fs';
import path from 'node:path';
import { lockFile } from '../../pkg/lock';
import { type AcquireHints, type Clock, every, type Lease, type LeaseAttrs, LeaseExistsError, type LeaseListing, type LeaseStore, listing, marshalLeaseAttrs, type StoreEvent, type UnreadableLease, unmarshalLeaseAttrs } from './lease';
import { acquireLease } from './acquire';
import { Closers } from './watch-life';
import { type Prefix, parseSubnetKey, subnetKey } from '../../pkg/ip';
import { writeFileAtomic } from '../subnet-env';

const SUFFIX = '.json';

export interface FileStoreOptions {
  dir: string;
  clock: Clock;
  /** backstop re-list period for watch() (ms); 0 = none (flaxd's loop re-lists every reconcile interval itself) */
  relistMs: number;
  /** a file that is no lease file (skipped), or the directory cannot be watched; unreadable lease files are reported by list() and watch() */
  warn?: (msg: string) => void;
}

/** Serialises one lease file. */
export function renderLeaseFile(attrs: LeaseAttrs, expiration: number | null): string {
  const exp = expiration === null ? 'null' : JSON.stringify(new Date(expiration).toISOString());
  return `{"Value":${marshalLeaseAttrs(attrs)},"Expiration":${exp}}\n`;
}

/** Parses one lease file named `<key>.json`; throws on anything malformed. */
export function parseLeaseFile(name: string, text: string): Lease {
  const key = name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : name;
  const k = parseSubnetKey(key);
  if (!k || subnetKey(k.sn, k.sn6) !== key) throw new Error(`not a subnet key: ${key}`);
  const o = JSON.parse(text) as { Value?: unknown; Expiration?: unknown };
  if (o === null || typeof o !== 'object') throw new Error('not a JSON object');
  const attrs = unmarshalLeaseAttrs(JSON.stringify(o.Value ?? null));
  let expiration: number | null = null;
  if (o.Expiration !== null && o.Expiration !== undefined) {
    expiration = typeof o.Expiration === 'string' ? Date.parse(o.Expiration) : NaN;
    if (Number.isNaN(expiration)) throw new Error(`bad Expiration ${JSON.stringify(o.Expiration)}`);
  }
  return { subnet: k.sn, ipv6Subnet: k.sn6, attrs, expiration };
}

/** A lease file read: its lease, or why it cannot be parsed; null when it is gone. */
type Read = { lease: Lease } | { bad: UnreadableLease } | null;

export class FileLeaseStore implements LeaseStore {
  readonly subnetsDir: string;
  readonly #lockPath: string;
  readonly #closers = new Closers();
  /** list(): each file's lease by name, valid while its inode, size and mtime are unchanged (writes are renames: a new inode) */
  #cache = new Map<string, { id: string; read: Read }>();

  constructor(readonly opts: FileStoreOptions) {
    this.subnetsDir = path.join(opts.dir, 'subnets');
    this.#lockPath = path.join(opts.dir, '.lock');
  }

  /** The directory, made on first use (flaxd opens its store before it reads the network config: a refused start makes none). */
  #made = false;
  #dir(): string {
    if (!this.#made) fs.mkdirSync(this.subnetsDir, { recursive: true, mode: 0o755 });
    this.#made = true;
    return this.subnetsDir;
  }

  #file(sn: Prefix, sn6: Prefix | undefined): string {
    return path.join(this.subnetsDir, subnetKey(sn, sn6) + SUFFIX);
  }

  /** Runs fn holding the directory's exclusive lock. fn is synchronous, so one thread never waits on itself. */
  #locked<T>(fn: () => T): T {
    this.#dir();
    const lock = lockFile(this.#lockPath);
    try {
      return fn();
    } finally {
      lock.release();
    }
  }

  /** One lease file: its lease, or why it cannot be parsed (bad); null when it is gone. */
  #read(name: string): Read {
    const file = path.join(this.subnetsDir, name);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      return { lease: parseLeaseFile(name, text) };
    } catch (e) {
      const key = name.slice(0, -SUFFIX.length);
      const k = parseSubnetKey(key);
      if (!k || subnetKey(k.sn, k.sn6) !== key) {
        this.opts.warn?.(`lease file ${file} ignored: ${(e as Error).message}`);
        return null;
      }
      const bad: UnreadableLease = { subnet: k.sn, where: file, why: text.length ? (e as Error).message : 'empty file' };
      if (k.sn6) bad.ipv6Subnet = k.sn6;
      return { bad };
    }
  }

  #readOne(name: string): Lease | null {
    const r = this.#read(name);
    return r && 'lease' in r ? r.lease : null;
  }

  #alive(l: Lease | null): l is Lease {
    return l !== null && (l.expiration === null || l.expiration > this.opts.clock.now());
  }

  #write(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): number | null {
    const exp = ttlMs > 0 ? this.opts.clock.now() + ttlMs : null;
    writeFileAtomic(this.#file(sn, sn6), renderLeaseFile(attrs, exp));
    return exp;
  }

  /**
   * Every live lease, and the files that cannot be parsed (`unreadable`); a
   * file unchanged since the last list is not read again (a thousand leases: a stat each).
   */
  async list(): Promise<LeaseListing> {
    const names = fs.readdirSync(this.#dir()).filter((n) => n.endsWith(SUFFIX) && !n.startsWith('.'));
    const cache = new Map<string, { id: string; read: Read }>();
    for (const n of names) {
      let id: string;
      try {
        const st = fs.statSync(path.join(this.subnetsDir, n), { bigint: true });
        id = `${st.ino}:${st.size}:${st.mtimeNs}`;
      } catch {
        continue; // removed meanwhile
      }
      const hit = this.#cache.get(n);
      cache.set(n, hit && hit.id === id ? hit : { id, read: this.#read(n) });
    }
    this.#cache = cache;
    const reads = [...cache.values()].map((c) => c.read);
    const leases = reads.map((r) => (r && 'lease' in r ? r.lease : null)).filter((l) => this.#alive(l)).map((l) => ({ ...l }));
    return listing(leases, reads.flatMap((r) => (r && 'bad' in r ? [r.bad] : [])));
  }

  async create(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null> {
    return this.#locked(() => {
      const name = path.basename(this.#file(sn, sn6));
      if (this.#alive(this.#readOne(name))) throw new LeaseExistsError(`subnet ${subnetKey(sn, sn6)} is already leased`);
      return this.#write(sn, sn6, attrs, ttlMs);
    });
  }

  async update(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null> {
    return this.#locked(() => this.#write(sn, sn6, attrs, ttlMs));
  }

  async delete(sn: Prefix, sn6: Prefix | undefined): Promise<void> {
    this.#locked(() => fs.rmSync(this.#file(sn, sn6), { force: true }));
  }

  /**
   * The event for a lease file fs.watch named: added when it holds a live
   * lease, unreadable when it cannot be parsed, else (gone or expired)
   * removed; null when the name is no subnet key.
   */
  #event(name: string): StoreEvent | null {
    const r = this.#read(name);
    if (r && 'bad' in r) return { type: 'unreadable', ...r.bad };
    const l = r && r.lease;
    if (this.#alive(l)) return { type: 'added', lease: l };
    const k = parseSubnetKey(name.slice(0, -SUFFIX.length));
    if (!k) return null;
    const gone: Lease = { subnet: k.sn, attrs: { publicIP: '0.0.0.0', publicIPv6: null, backendType: '' }, expiration: null };
    if (k.sn6) gone.ipv6Subnet = k.sn6;
    return { type: 'removed', lease: gone };
  }

  /**
   * fs.watch on the directory: the lease files named in a burst of
   * notifications (one event-loop turn) are read once each and reported as
   * events; a notification without a name re-lists. Temporary files of an
   * atomic write are ignored (the rename names the lease file). The watch
   * starts with one re-list (there is no revision to resume from).
   */
  watch(onChange: (events?: StoreEvent[]) => void): { close(): void } {
    const names = new Set<string>();
    let relist = false;
    let pending: NodeJS.Immediate | undefined;
    const flush = () => {
      pending = undefined;
      if (relist) {
        relist = false;
        names.clear();
        onChange();
        return;
      }
      const events = [...names].map((n) => this.#event(n)).filter((e): e is StoreEvent => e !== null);
      names.clear();
      if (events.length) onChange(events);
    };
    const fire = (_type: string, name: string | Buffer | null) => {
      const n = name?.toString();
      if (!n) relist = true;
      else if (n.endsWith(SUFFIX) && !n.startsWith('.')) names.add(n);
      else return;
      pending ??= setImmediate(flush);
    };
    let watcher: fs.FSWatcher | undefined;
    try {
      watcher = fs.watch(this.#dir(), { persistent: false }, fire);
      watcher.on('error', (e) => this.opts.warn?.(`watching ${this.subnetsDir}: ${e.message}; relying on the periodic re-list`));
      // no revision to watch from: a lease written between the caller's last
      // list and this watch is caught by one re-list once the watch is in place
      relist = true;
      pending ??= setImmediate(flush);
    } catch (e) {
      this.opts.warn?.(`cannot watch ${this.subnetsDir}: ${(e as Error).message}; relying on the periodic re-list`);
    }
    const { clock, relistMs } = this.opts;
    const stopRelist = relistMs > 0 ? (clock.every ?? every)(relistMs, () => onChange()) : undefined;
    return this.#closers.add(() => {
      stopRelist?.();
      if (pending) clearImmediate(pending);
      watcher?.close();
    });
  }

  acquire(attrs: LeaseAttrs, hints: AcquireHints): Promise<Lease> {
    return acquireLease({ ...hints, store: this }, attrs);
  }

  close(): void {
    this.#closers.closeAll();
  }
}
