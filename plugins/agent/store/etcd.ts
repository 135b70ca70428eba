/**
 * The etcd v3 lease store (`--etcd-endpoints`), flanneld's etcd subnet
 * registry over npm `etcd3` (keys and transactions: etcd-keys.ts):
 *  - create: grant an etcd lease (TTL 24 h; none for a reservation), then
 *    Txn(Version(key) == 0 → Put); a lost race revokes the grant and throws
 *    LeaseExistsError (acquireLease re-lists and retries);
 *  - update (renewal, reuse): grant a new lease, put, revoke the old one;
 *  - list: a range over `<prefix>/subnets/`; each lease's expiration from the
 *    etcd lease's remaining TTL, asked once per key revision;
 *  - watch: from the revision after the last list; the events of a watch
 *    response are passed on as lease events (a put read like a listed key,
 *    a delete by its key) and kept in the last known leases; a reconnection,
 *    or an event that cannot be read, makes the agent re-list; a cancelled watch
 *    (compaction: the revision is gone) re-lists and starts again from the
 *    new revision, with backoff. etcd3 reconnects the stream with backoff;
 *  - a subnet key whose value cannot be parsed is listed as unreadable and
 *    its put passed on as an unreadable event, never as a removal (only a
 *    delete, or the key's TTL running out, removes a lease).
 * An etcd outage never stops the agent: list() answers the last leases it
 * read (the data plane stays as it is and keeps being reconciled), and a
 * failed renewal is retried by the loop. Only start-up gives up: etcd not
 * answering after a bounded retry is a ConfigError (exit 1).
 * The etcd3 module is loaded on first use, so file-store runs never load it.
 */
import fs from 'node:fs';
import type { Etcd3, IKeyValue, IOptions, IWatchResponse } from 'etcd3';
import { ConfigError } from '../config';
import { configKey, createIfAbsentTxn, leaseEtcdKey, leasePut, leasesRange, parseLeaseKv, subnetsDir, toLease, ttlSeconds } from './etcd-keys';
import { type AcquireHints, type Clock, type Lease, type LeaseAttrs, type LeaseEvent, LeaseExistsError, type LeaseListing, type LeaseStore, leaseKey, listing, type StoreEvent, type UnreadableLease } from './lease';
import { acquireLease } from './acquire';
import { type Logger } from '../log';
import { Closers, restartingWatch } from './watch-life';
import { type Prefix, parseSubnetKey } from '../../pkg/ip';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix: string;
  cafile?: string;
  certfile?: string;
  keyfile?: string;
  /** --etcd-username / --etcd-password: etcd's password authentication (a token fetched, then sent with every call) */
  username?: string;
  password?: string;
  clock: Clock;
  log: Logger;
  /** deadline of one etcd request (ms) */
  requestTimeoutMs?: number;
  /** start-up: attempts to reach etcd, and the first pause between them (doubling) */
  startAttempts?: number;
  startBackoffMs?: number;
}

/** The part of an etcd3 client the store uses. */
export type EtcdClient = Pick<Etcd3, 'kv' | 'leaseClient' | 'watch' | 'close'>;

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0].replace(/\.? Resolution note:\s*$/, '');

/** http(s)://host:port as etcd3 wants it; a bare host:port is http, as in flanneld's default. */
export function normaliseEndpoint(e: string): string {
  return /^[a-z]+:\/\//i.test(e) ? e : `http://${e}`;
}

/** Watch reconnection backoff: doubling from 250 ms up to `maxMs` (etcd3's default grows to 30 s). */
export function watchBackoff(ms = 125, maxMs = 5000): { duration: number; next(): ReturnType<typeof watchBackoff> } {
  return { duration: ms, next: () => watchBackoff(Math.min(ms * 2, maxMs), maxMs) };
}

export function etcdClientOptions(o: Pick<EtcdStoreOptions, 'endpoints' | 'cafile' | 'certfile' | 'keyfile' | 'username' | 'password'>): IOptions {
  const opts: IOptions = { hosts: o.endpoints.map(normaliseEndpoint), dialTimeout: 3000, faultHandling: { watchBackoff: watchBackoff() },
    // reconnect within seconds once etcd is back (grpc's default backoff grows to 2 min); keepalives notice a dead stream
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 250, 'grpc.max_reconnect_backoff_ms': 5000, 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000 } };
  if (o.cafile || o.certfile || o.keyfile) {
    const read = (flag: string, f: string | undefined): Buffer | undefined => {
      if (!f) return undefined;
      try {
        return fs.readFileSync(f);
      } catch (e) {
        throw new ConfigError(`${flag} ${f}: ${errText(e)}`);
      }
    };
    const ca = read('--etcd-cafile', o.cafile);
    if (!ca) throw new ConfigError('--etcd-certfile/--etcd-keyfile need --etcd-cafile');
    opts.credentials = { rootCertificate: ca, certChain: read('--etcd-certfile', o.certfile), privateKey: read('--etcd-keyfile', o.keyfile) };
  }
  // flanneld passes both to its etcd client as they are; a password without a user is a mistake, not "no auth"
  if (o.password && !o.username) throw new ConfigError('--etcd-password needs --etcd-username');
  if (o.username) opts.auth = { username: o.username, password: o.password ?? '' };
  return opts;
}

const isBad = (x: Lease | UnreadableLease): x is UnreadableLease => 'where' in x;

export class EtcdLeaseStore {
  /** revision of the last successful list */
  #rev: bigint | null = null;
  /** the leases of the last successful list (every one, expiry left to etcd) */
  #last: Lease[] | null = null;
  /** the keys of the last list (kept in step by the watch) whose value cannot be parsed, by key */
  #lastBad = new Map<string, UnreadableLease>();
  /** expiration by key, valid while the key's mod_revision is unchanged */
  #exp = new Map<string, { modRev: string; leaseId: string; exp: number | null }>();
  #outage = false;
  /** keys already warned about (one warning per key, not one per list) */
  #ignored = new Set<string>();
  readonly #closers = new Closers();
  /** TTL requests in flight by etcd lease ID (keys sharing a lease ask once) */
  #ttlAsks = new Map<string, Promise<number>>();
  /** `<prefix>/config` as open() read it (text null when absent) */
  netConfig?: { where: string; text: string | null };

  /** `client`: an etcd3 client (open() makes one); tests pass a fake of the same calls. */
  constructor(readonly client: EtcdClient, readonly opts: EtcdStoreOptions) {}

  /**
   * Connects (a read of `<prefix>/config`, retried with backoff a bounded
   * number of times) and returns the store holding that config's text
   * (netConfig; null when the key is absent). Unreachable → ConfigError
   * naming the endpoints.
   */
  static async open(opts: EtcdStoreOptions): Promise<EtcdLeaseStore> {
    const clientOpts = etcdClientOptions(opts);
    const { Etcd3 } = await import('etcd3');
    const store = new EtcdLeaseStore(new Etcd3(clientOpts), opts);
    const attempts = opts.startAttempts ?? 5;
    let pause = opts.startBackoffMs ?? 500;
    const t0 = opts.clock.now();
    for (let i = 1; ; i++) {
      try {
        const r = await store.client.kv.range({ key: Buffer.from(configKey(opts.prefix)) }, store.#call());
        opts.log.info(`etcd ${clientOpts.hosts} reached, prefix ${opts.prefix}`);
        store.netConfig = { where: configKey(opts.prefix), text: r.kvs.length ? r.kvs[0].value.toString('utf8') : null };
        return store;
      } catch (e) {
        if (i >= attempts) {
          store.close();
          const secs = Math.round((opts.clock.now() - t0) / 1000);
          throw new ConfigError(`etcd unreachable at ${opts.endpoints.join(',')} after ${attempts} attempts in ${secs}s: ${errText(e)}`);
        }
        opts.log.warn(`etcd ${clientOpts.hosts}: ${errText(e)}; retrying in ${pause} ms (attempt ${i}/${attempts})`);
        await new Promise((r) => setTimeout(r, pause));
        pause *= 2;
      }
    }
  }

  #call() {
    return { deadline: Date.now() + (this.opts.requestTimeoutMs ?? 5000) };
  }

  #key(sn: Prefix, sn6: Prefix | undefined): string {
    return leaseEtcdKey(this.opts.prefix, sn, sn6);
  }

  /** The lease of one key/value, its expiration from the etcd lease (cached per mod_revision); unreadable; null to skip it. */
  async #lease(kv: IKeyValue): Promise<Lease | UnreadableLease | null> {
    const p = parseLeaseKv(this.opts.prefix, kv);
    const key = kv.key.toString('utf8');
    if (p.kind === 'bad') {
      const u: UnreadableLease = { subnet: p.subnet, where: `etcd key ${key}`, why: p.why };
      if (p.ipv6Subnet) u.ipv6Subnet = p.ipv6Subnet;
      return u;
    }
    if (p.kind === 'skip') {
      if (!this.#ignored.has(key)) this.opts.log.warn(`etcd key ignored: ${p.why}`);
      this.#ignored.add(key);
      return null;
    }
    if (p.reservation) {
      this.#exp.set(key, { modRev: kv.mod_revision, leaseId: '0', exp: null });
      return toLease(p, null);
    }
    let c = this.#exp.get(key);
    if (!c || c.modRev !== kv.mod_revision) {
      const ttl = await this.#ttl(p.leaseId);
      // TTL -1: the lease is gone, the key is being deleted with it
      if (!(ttl > 0)) return null;
      c = { modRev: kv.mod_revision, leaseId: p.leaseId, exp: this.opts.clock.now() + ttl * 1000 };
      this.#exp.set(key, c);
    }
    return toLease(p, c.exp);
  }

  /** The remaining TTL (s) of an etcd lease; -1 when it is gone. */
  #ttl(leaseId: string): Promise<number> {
    let ask = this.#ttlAsks.get(leaseId);
    if (!ask) {
      ask = this.client.leaseClient.leaseTimeToLive({ ID: leaseId }, this.#call()).then((r) => Number(r.TTL));
      this.#ttlAsks.set(leaseId, ask);
      const done = () => this.#ttlAsks.delete(leaseId);
      ask.then(done, done);
    }
    return ask;
  }

  /** One range read, no fallback: the leases and the revision they were read at. */
  async #read(): Promise<LeaseListing> {
    const r = await this.client.kv.range(leasesRange(this.opts.prefix), this.#call());
    const found = await Promise.all(r.kvs.map((kv) => this.#lease(kv)));
    this.#lastBad = new Map(found.flatMap((x) => (x && isBad(x) ? [[leaseKey(x), x] as const] : [])));
    const keys = new Set(r.kvs.map((kv) => kv.key.toString('utf8')));
    for (const k of this.#exp.keys()) if (!keys.has(k)) this.#exp.delete(k);
    for (const k of this.#ignored) if (!keys.has(k)) this.#ignored.delete(k);
    this.#rev = BigInt(r.header.revision);
    this.#last = found.filter((l): l is Lease => l !== null && !isBad(l));
    if (this.#outage) {
      this.#outage = false;
      this.opts.log.info(`etcd reachable again: ${this.#last.length} leases at revision ${this.#rev}`);
    }
    return listing([...this.#last], [...this.#lastBad.values()]);
  }

  async list(): Promise<LeaseListing> {
    try {
      return await this.#read();
    } catch (e) {
      if (this.#last === null) throw e;
      if (!this.#outage) {
        this.#outage = true;
        this.opts.log.warn(`etcd unreachable (${errText(e)}); keeping the last known ${this.#last.length} leases and the data plane as it is`);
      }
      return listing([...this.#last], [...this.#lastBad.values()]);
    }
  }

  async create(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null> {
    const key = this.#key(sn, sn6);
    const leaseId = ttlMs > 0 ? (await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds(ttlMs) }, this.#call())).ID : '0';
    const r = await this.client.kv.txn(createIfAbsentTxn(key, attrs, leaseId), this.#call());
    if (!r.succeeded) {
      if (leaseId !== '0') await this.client.leaseClient.leaseRevoke({ ID: leaseId }, this.#call()).catch(() => undefined);
      throw new LeaseExistsError(`${key} already exists`);
    }
    return ttlMs > 0 ? this.opts.clock.now() + ttlSeconds(ttlMs) * 1000 : null;
  }

  async update(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null> {
    const key = this.#key(sn, sn6);
    const leaseId = ttlMs > 0 ? (await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds(ttlMs) }, this.#call())).ID : '0';
    const old = (await this.client.kv.range({ key: Buffer.from(key) }, this.#call())).kvs[0]?.lease;
    try {
      await this.client.kv.txn({ success: [leasePut(key, attrs, leaseId)] }, this.#call());
    } catch (e) {
      if (leaseId !== '0') await this.client.leaseClient.leaseRevoke({ ID: leaseId }, this.#call()).catch(() => undefined);
      throw e;
    }
    // the key now hangs on the new lease: the old one holds nothing of ours
    if (old && old !== '0' && old !== leaseId) await this.client.leaseClient.leaseRevoke({ ID: old }, this.#call()).catch(() => undefined);
    return ttlMs > 0 ? this.opts.clock.now() + ttlSeconds(ttlMs) * 1000 : null;
  }

  async delete(sn: Prefix, sn6: Prefix | undefined): Promise<void> {
    await this.client.kv.deleteRange({ key: Buffer.from(this.#key(sn, sn6)) }, this.#call());
  }

  /**
   * The lease events of one watch response (a put read like a listed key, a
   * delete by its key; non-lease keys left out); null when one cannot be read
   * (re-list). The puts' TTLs are asked all at once.
   */
  async #events(res: Pick<IWatchResponse, 'events'>): Promise<StoreEvent[] | null> {
    const dir = subnetsDir(this.opts.prefix);
    const evs = await Promise.all(res.events.map(async (ev): Promise<StoreEvent | 'skip' | null> => {
      const key = ev?.kv?.key?.toString('utf8');
      if (!key) return null;
      const lease = ev.type === 'Put' ? await this.#lease(ev.kv) : null;
      if (lease && isBad(lease)) return { type: 'unreadable', ...lease };
      if (lease) return { type: 'added', lease };
      const k = key.startsWith(dir) ? parseSubnetKey(key.slice(dir.length)) : null;
      if (!k) return 'skip'; // not a lease key (warned about by #lease)
      const gone: Lease = { subnet: k.sn, attrs: { publicIP: '0.0.0.0', publicIPv6: null, backendType: '' }, expiration: null };
      if (k.sn6) gone.ipv6Subnet = k.sn6;
      return { type: 'removed', lease: gone };
    }));
    if (evs.includes(null)) return null;
    return evs.filter((e): e is StoreEvent => e !== null && e !== 'skip');
  }

  /** Keeps the last known leases (what an outage answers) in step with watch events. */
  #remember(events: readonly StoreEvent[]): void {
    if (!this.#last) return;
    const by = new Map(this.#last.map((l) => [leaseKey(l), l]));
    for (const e of events) {
      const k = leaseKey(e.type === 'unreadable' ? e : e.lease);
      if (e.type === 'unreadable') this.#lastBad.set(k, e);
      else this.#lastBad.delete(k);
      if (e.type === 'added') by.set(k, e.lease);
      else by.delete(k);
    }
    this.#last = [...by.values()];
  }

  watch(onChange: (events?: StoreEvent[]) => void): { close(): void } {
    const { log } = this.opts;
    // responses are read at once (a put may wait for its lease's TTL) and passed on in order
    let chain = Promise.resolve();
    return restartingWatch(this.#closers, async (run) => {
      if (this.#rev === null) await this.#read();
      const from = this.#rev! + 1n;
      const range = leasesRange(this.opts.prefix);
      const watcher = this.client.watch().inRange({ start: range.key, end: range.range_end }).startRevision(String(from)).watcher();
      let wasDown = false;
      let cancelled = false;
      watcher.on('connected', () => {
        run.backoff.reset();
        log.debug(`etcd watch on ${subnetsDir(this.opts.prefix)} from revision ${from}${wasDown ? ' (reconnected)' : ''}`);
        // after a reconnection, re-list: the diff catches whatever happened meanwhile
        if (wasDown) onChange();
        wasDown = false;
      });
      watcher.on('disconnected', (e: Error) => {
        if (!wasDown) log.warn(`etcd watch disconnected (${errText(e)}); reconnecting with backoff`);
        wasDown = true;
      });
      watcher.on('data', (res: IWatchResponse) => {
        if (!res.events?.length) return;
        // settled here, so that a failure waiting its turn is never an unhandled rejection
        const read = this.#events(res).then((evs) => ({ evs }), (e: unknown) => {
          log.debug(`etcd watch event: ${errText(e)}; re-listing`);
          return { evs: null };
        });
        chain = chain.then(() => read).then(({ evs }) => {
          if (evs) this.#remember(evs);
          if (!run.closed) onChange(evs ?? undefined);
        });
      });
      watcher.on('error', (e: Error) => {
        if (run.closed || cancelled) return;
        cancelled = true;
        // cancelled by etcd (e.g. compacted past our revision): re-list, diff, watch again from the new revision
        // etcd 3.4 gives no reason for a compaction (only compact_revision, which etcd3 drops)
        const why = errText(e).replace(/^Watcher canceled:\s*$/, 'by etcd: history compacted past our revision, or watch removed');
        log.warn(`etcd watch cancelled (${why}); re-listing and watching again`);
        void watcher.cancel().catch(() => undefined);
        this.#rev = null;
        onChange();
        run.restart();
      });
      return { stop: () => void watcher.cancel().catch(() => undefined) };
    }, (e, pause) => log.warn(`etcd watch: cannot list (${errText(e)}); retrying in ${pause} ms`));
  }

  acquire(attrs: LeaseAttrs, hints: AcquireHints): Promise<Lease> {
    return acquireLease({ ...hints, store: this }, attrs);
  }

  close(): void {
    this.#closers.closeAll();
    this.client.close();
  }
}

export const openEtcdLeaseStore = async (opts: EtcdStoreOptions): Promise<LeaseStore> => EtcdLeaseStore.open(opts);
