/**
 * The etcd store's logic against an in-memory fake of the etcd3 calls it
 * makes (range, txn with Version == 0, deleteRange, lease grant / revoke /
 * time-to-live): values and leases, the lost race, renewal, TTL lookups,
 * and an outage after a first list.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { parseNetConfig } from '../config';
import { EtcdLeaseStore, type EtcdClient, etcdClientOptions, normaliseEndpoint } from './etcd';
import { type LeaseAttrs, LeaseExistsError, SUBNET_TTL_MS, vxlanBackendData } from './lease';
import { acquireLease } from './acquire';
import { type Logger } from '../log';
import { formatPrefix, parseNetwork } from '../../pkg/ip';

const VALUE = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const attrs = (ip = '192.168.64.3'): LeaseAttrs => ({ publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44' }) });
const config = parseNetConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');

interface Kv { value: Buffer; lease: string; mod_revision: string }
class FakeEtcd {
  keys = new Map<string, Kv>();
  leases = new Map<string, number>();
  rev = 1;
  nextLease = 100;
  down = false;
  calls: string[] = [];
  /** runs before each txn (a racing node) */
  beforeTxn?: () => void;

  #check(what: string): void {
    this.calls.push(what);
    if (this.down) throw new Error('14 UNAVAILABLE: No connection established');
  }
  put(key: string, value: string, lease = '0'): void {
    this.keys.set(key, { value: Buffer.from(value), lease, mod_revision: String(++this.rev) });
  }
  kv = {
    range: async (r: { key: Buffer; range_end?: Buffer }) => {
      this.#check('range');
      const k = r.key.toString();
      const end = r.range_end?.toString();
      const kvs = [...this.keys].filter(([key]) => (end ? key >= k && key < end : key === k)).sort()
        .map(([key, v]) => ({ key: Buffer.from(key), ...v }));
      return { header: { revision: String(this.rev) }, kvs };
    },
    txn: async (t: { compare?: Array<{ key: Buffer; target: string; result: string; version: number }>; success?: Array<{ request_put?: { key: Buffer; value: Buffer; lease?: string } }> }) => {
      this.#check('txn');
      this.beforeTxn?.();
      const ok = (t.compare ?? []).every((c) => c.target === 'Version' && c.result === 'Equal' && c.version === 0 && !this.keys.has(c.key.toString()));
      if (ok) for (const op of t.success ?? []) this.put(op.request_put!.key.toString(), op.request_put!.value.toString(), op.request_put!.lease ?? '0');
      return { succeeded: ok };
    },
    deleteRange: async (r: { key: Buffer }) => {
      this.#check('deleteRange');
      this.keys.delete(r.key.toString());
    },
  };
  leaseClient = {
    leaseGrant: async (r: { TTL: number }) => {
      this.#check(`grant ${r.TTL}`);
      const id = String(this.nextLease++);
      this.leases.set(id, r.TTL);
      return { ID: id };
    },
    leaseRevoke: async (r: { ID: string }) => {
      this.#check(`revoke ${r.ID}`);
      this.leases.delete(r.ID);
      for (const [k, v] of this.keys) if (v.lease === r.ID) this.keys.delete(k);
    },
    leaseTimeToLive: async (r: { ID: string }) => {
      this.#check(`ttl ${r.ID}`);
      return { TTL: String(this.leases.get(r.ID) ?? -1) };
    },
  };
  /** every watcher created: its range start and start revision */
  watchers: Array<EventEmitter & { key: string; from: string; cancelled: boolean; cancel(): Promise<void> }> = [];
  watch() {
    const b = {
      key: '', from: '',
      inRange: (r: { start: Buffer }) => { b.key = r.start.toString(); return b; },
      startRevision: (rev: string) => { b.from = rev; return b; },
      watcher: () => {
        const w = Object.assign(new EventEmitter(), { key: b.key, from: b.from, cancelled: false, cancel: async () => { w.cancelled = true; } });
        this.watchers.push(w);
        return w;
      },
    };
    return b;
  }
  close(): void {}
}

function setup() {
  const fake = new FakeEtcd();
  const clock = { t: Date.parse('2026-01-01T00:00:00Z'), now() { return this.t; } };
  const warnings: string[] = [];
  const log: Logger = { error: () => {}, warn: (m) => warnings.push(m), info: () => {}, debug: () => {} };
  const store = new EtcdLeaseStore(fake as unknown as EtcdClient, { endpoints: ['x'], prefix: '/coreos.com/network', clock, log });
  return { fake, clock, warnings, store };
}
const KEY = '/coreos.com/network/subnets/10.244.1.0-24';

describe('etcd store', () => {
  it("create: flanneld's value on a fresh 24 h etcd lease; a taken key is refused and its grant revoked", async () => {
    const { fake, clock, store } = setup();
    expect(await store.create(parseNetwork('10.244.1.0/24'), undefined, attrs(), SUBNET_TTL_MS)).toBe(clock.t + SUBNET_TTL_MS);
    expect(fake.keys.get(KEY)!.value.toString()).toBe(VALUE);
    expect(fake.leases.get(fake.keys.get(KEY)!.lease)).toBe(86400);
    await expect(store.create(parseNetwork('10.244.1.0/24'), undefined, attrs('192.168.64.4'), SUBNET_TTL_MS)).rejects.toBeInstanceOf(LeaseExistsError);
    expect(fake.keys.get(KEY)!.value.toString()).toBe(VALUE);
    expect([...fake.leases.keys()]).toEqual([fake.keys.get(KEY)!.lease]);
  });

  it('a reservation (TTL 0) is put on no lease and listed without expiration', async () => {
    const { fake, store } = setup();
    await store.create(parseNetwork('10.244.9.0/24'), undefined, attrs(), 0);
    expect(fake.keys.get('/coreos.com/network/subnets/10.244.9.0-24')!.lease).toBe('0');
    expect(fake.calls.filter((c) => c.startsWith('grant'))).toEqual([]);
    expect((await store.list())[0].expiration).toBeNull();
  });

  it('list: expiration from the etcd lease TTL, asked once per key revision; foreign keys skipped with a warning', async () => {
    const { fake, clock, warnings, store } = setup();
    fake.leases.set('7', 3600);
    fake.put(KEY, VALUE, '7');
    fake.put('/coreos.com/network/subnets/junk', VALUE, '7');
    const [l] = await store.list();
    expect([formatPrefix(l.subnet), l.expiration, l.attrs]).toEqual(['10.244.1.0/24', clock.t + 3600_000, attrs()]);
    expect(warnings.join('\n')).toContain('junk is not a subnet key');
    expect((await store.list()).length).toBe(1);
    expect(warnings.filter((w) => w.includes('junk'))).toHaveLength(1);
    expect(fake.calls.filter((c) => c === 'ttl 7')).toHaveLength(1);
    fake.put(KEY, VALUE, '7'); // a new revision of the key: asked again
    await store.list();
    expect(fake.calls.filter((c) => c === 'ttl 7')).toHaveLength(2);
  });

  it('update (renewal): the key moves to a new lease and the old one is revoked', async () => {
    const { fake, store } = setup();
    await store.create(parseNetwork('10.244.1.0/24'), undefined, attrs(), SUBNET_TTL_MS);
    const old = fake.keys.get(KEY)!.lease;
    await store.update(parseNetwork('10.244.1.0/24'), undefined, attrs(), SUBNET_TTL_MS);
    const now = fake.keys.get(KEY)!.lease;
    expect(now).not.toBe(old);
    expect([...fake.leases.keys()]).toEqual([now]);
    expect(fake.keys.get(KEY)!.value.toString()).toBe(VALUE);
    // a put that fails leaves the key on its lease and revokes the new grant
    fake.beforeTxn = () => { throw new Error('14 UNAVAILABLE: Connection dropped'); };
    await expect(store.update(parseNetwork('10.244.1.0/24'), undefined, attrs(), SUBNET_TTL_MS)).rejects.toThrow(/UNAVAILABLE/);
    expect([...fake.leases.keys()]).toEqual([now]);
    expect(fake.keys.get(KEY)!.lease).toBe(now);
  });

  it('acquireLease over it: a subnet taken between list and txn is retried elsewhere', async () => {
    const { fake, store } = setup();
    let raced = false;
    fake.beforeTxn = () => {
      if (raced) return;
      raced = true;
      for (let i = 1; i < 256; i++) fake.put(`/coreos.com/network/subnets/10.244.${i}.0-24`, VALUE.replace('64.3', `99.${i}`), '0');
      fake.keys.delete('/coreos.com/network/subnets/10.244.200.0-24');
    };
    const l = await acquireLease({ store, config, randInt: () => 0 }, attrs());
    expect(formatPrefix(l.subnet)).toBe('10.244.200.0/24');
    expect(fake.calls.filter((c) => c === 'txn')).toHaveLength(2);
    expect(fake.leases.size).toBe(1); // the grant of the lost attempt was revoked
  });

  it('an outage after a first list: list answers the last known leases (one warning); before any list it fails', async () => {
    const { fake, warnings, store } = setup();
    fake.down = true;
    await expect(store.list()).rejects.toThrow(/UNAVAILABLE/);
    fake.down = false;
    fake.put(KEY, VALUE, '0');
    const first = await store.list();
    fake.down = true;
    expect(await store.list()).toEqual(first);
    expect(await store.list()).toEqual(first);
    expect(warnings.filter((w) => w.startsWith('etcd unreachable'))).toHaveLength(1);
    await expect(store.update(first[0].subnet, undefined, attrs(), SUBNET_TTL_MS)).rejects.toThrow(/UNAVAILABLE/);
    fake.down = false;
    fake.keys.clear();
    expect(await store.list()).toEqual([]);
  });
});

describe('etcd client options', () => {
  it('endpoints as flanneld takes them; TLS files read, a missing one named', () => {
    expect(normaliseEndpoint('10.0.0.1:2379')).toBe('http://10.0.0.1:2379');
    expect(normaliseEndpoint('https://etcd:2379')).toBe('https://etcd:2379');
    expect(etcdClientOptions({ endpoints: ['a:1', 'http://b:2'] }).hosts).toEqual(['http://a:1', 'http://b:2']);
    expect(() => etcdClientOptions({ endpoints: ['a:1'], cafile: '/nonexistent/ca.pem' })).toThrow(/--etcd-cafile \/nonexistent\/ca.pem/);
    expect(() => etcdClientOptions({ endpoints: ['a:1'], certfile: '/etc/hostname' })).toThrow(/need --etcd-cafile/);
    // --etcd-username / --etcd-password: etcd3's password auth (a token fetched with them, then sent with each call)
    expect(etcdClientOptions({ endpoints: ['a:1'] }).auth).toBeUndefined();
    expect(etcdClientOptions({ endpoints: ['a:1'], username: 'flannel', password: 's3cret' }).auth).toEqual({ username: 'flannel', password: 's3cret' });
    expect(() => etcdClientOptions({ endpoints: ['a:1'], password: 's3cret' })).toThrow('--etcd-password needs --etcd-username');
  });
});

describe('etcd store watch', () => {
  it('from the revision after the last list; unreadable events and reconnections re-list; a cancelled watch re-lists and starts again from the new revision', async () => {
    vi.useFakeTimers();
    try {
      const { fake, warnings, store } = setup();
      fake.put(KEY, VALUE, '0');
      await store.list(); // revision 2
      let changes = 0;
      const h = store.watch(() => { changes++; });
      await vi.advanceTimersByTimeAsync(0);
      expect(fake.watchers.map((w) => [w.key, w.from])).toEqual([['/coreos.com/network/subnets/', '3']]);
      const w = fake.watchers[0];
      w.emit('connected', {});
      w.emit('data', { events: [] }); // a progress notification
      expect(changes).toBe(0);
      w.emit('data', { events: [{}] });
      await vi.advanceTimersByTimeAsync(0);
      expect(changes).toBe(1);
      w.emit('disconnected', new Error('14 UNAVAILABLE'));
      w.emit('disconnected', new Error('14 UNAVAILABLE'));
      w.emit('connected', {});
      expect(changes).toBe(2);
      expect(warnings.filter((m) => m.startsWith('etcd watch disconnected'))).toHaveLength(1);
      // compaction: etcd cancels the watch; the store re-lists (at the new revision) and watches again after a pause
      fake.put('/coreos.com/network/subnets/10.244.2.0-24', VALUE.replace('64.3', '64.4'), '0');
      fake.put('/coreos.com/network/subnets/10.244.2.0-24', VALUE.replace('64.3', '64.5'), '0');
      w.emit('error', new Error('Watcher canceled: '));
      expect(changes).toBe(3);
      expect(w.cancelled).toBe(true);
      expect(warnings.at(-1)).toContain('etcd watch cancelled (by etcd: history compacted past our revision, or watch removed)');
      await vi.advanceTimersByTimeAsync(1000);
      expect(fake.watchers.map((x) => x.from)).toEqual(['3', '5']);
      h.close();
      expect(fake.watchers[1].cancelled).toBe(true);
      fake.watchers[1].emit('error', new Error('Watcher canceled: '));
      await vi.advanceTimersByTimeAsync(60_000);
      expect(fake.watchers).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('passes puts and deletes on as lease events, in order, and keeps the last known leases in step (an outage answers them)', async () => {
    const { fake, store } = setup();
    fake.put(KEY, VALUE, '0');
    await store.list();
    const seen: string[] = [];
    const h = store.watch((evs) => {
      if (!evs) seen.push('relist');
      for (const e of evs ?? []) seen.push(e.type === 'unreadable' ? `unreadable ${e.where}` : `${e.type} ${formatPrefix(e.lease.subnet)} ${e.lease.attrs.publicIP} ${e.lease.expiration}`);
    });
    await new Promise((r) => setTimeout(r, 0));
    const w = fake.watchers[0];
    const K2 = '/coreos.com/network/subnets/10.244.2.0-24';
    fake.leases.set('9', 3600);
    fake.put(K2, VALUE.replace('64.3', '64.4'), '9');
    const kv = (k: string) => ({ key: Buffer.from(k), ...fake.keys.get(k)!, value: fake.keys.get(k)!.value });
    w.emit('data', { events: [{ type: 'Put', kv: kv(K2) }] });
    w.emit('data', { events: [{ type: 'Delete', kv: { key: Buffer.from(KEY) } }, { type: 'Put', kv: { ...kv(K2), key: Buffer.from('/coreos.com/network/subnets/junk') } }] });
    for (let i = 0; i < 10 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 1));
    expect(seen).toEqual([`added 10.244.2.0/24 192.168.64.4 ${Date.parse('2026-01-01T00:00:00Z') + 3600_000}`, 'removed 10.244.1.0/24 0.0.0.0 null']);
    fake.down = true;
    expect((await store.list()).map((l) => `${formatPrefix(l.subnet)} ${l.attrs.publicIP}`)).toEqual(['10.244.2.0/24 192.168.64.4']);
    // a put whose TTL cannot be asked: the agent is told to re-list
    const K3 = '/coreos.com/network/subnets/10.244.3.0-24';
    fake.put(K3, VALUE.replace('64.3', '64.6'), '9');
    w.emit('data', { events: [{ type: 'Put', kv: kv(K3) }] });
    for (let i = 0; i < 10 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 1));
    expect(seen[2]).toBe('relist');
    // keys on one etcd lease, in one response: its TTL is asked once
    fake.down = false;
    const K4 = '/coreos.com/network/subnets/10.244.4.0-24';
    fake.put(K4, VALUE.replace('64.3', '64.7'), '9');
    fake.put(K3, VALUE.replace('64.3', '64.8'), '9');
    const asked = fake.calls.filter((c) => c === 'ttl 9').length;
    w.emit('data', { events: [{ type: 'Put', kv: kv(K3) }, { type: 'Put', kv: kv(K4) }] });
    for (let i = 0; i < 10 && seen.length < 5; i++) await new Promise((r) => setTimeout(r, 1));
    expect(seen.slice(3).map((x) => x.split(' ').slice(0, 3).join(' '))).toEqual(['added 10.244.3.0/24 192.168.64.8', 'added 10.244.4.0/24 192.168.64.7']);
    expect(fake.calls.filter((c) => c === 'ttl 9').length - asked).toBe(1);
    h.close();
  });

  it('a watch that cannot list first retries with backoff until etcd answers', async () => {
    vi.useFakeTimers();
    try {
      const { fake, warnings, store } = setup();
      fake.down = true;
      const h = store.watch(() => {});
      await vi.advanceTimersByTimeAsync(3000);
      expect(fake.watchers).toHaveLength(0);
      expect(warnings.filter((m) => m.startsWith('etcd watch: cannot list')).length).toBeGreaterThanOrEqual(2);
      fake.down = false;
      await vi.advanceTimersByTimeAsync(5000);
      expect(fake.watchers.map((w) => w.from)).toEqual(['2']);
      h.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a garbage value under a subnet key is unreadable, never a removal: listed as such (also during an outage), its put an unreadable event; its delete removes', async () => {
    const { fake, store, warnings } = setup();
    const K2 = '/coreos.com/network/subnets/10.244.2.0-24';
    fake.put(KEY, VALUE, '0');
    fake.put(K2, '{{{', '0');
    const l = await store.list();
    expect(l.map((x) => formatPrefix(x.subnet))).toEqual(['10.244.1.0/24']);
    expect(l.unreadable?.map((u) => [formatPrefix(u.subnet), u.where])).toEqual([['10.244.2.0/24', `etcd key ${K2}`]]);
    expect(warnings).toEqual([]); // the agent warns (once each time a key turns unreadable), not the store at every list
    const seen: string[] = [];
    const h = store.watch((evs) => {
      if (!evs) seen.push('relist');
      for (const e of evs ?? []) seen.push(e.type === 'unreadable' ? `unreadable ${e.where} ${e.why}` : `${e.type} ${formatPrefix(e.lease.subnet)}`);
    });
    await new Promise((r) => setTimeout(r, 0));
    const w = fake.watchers[0];
    fake.put(KEY, '', '0');
    w.emit('data', { events: [{ type: 'Put', kv: { key: Buffer.from(KEY), ...fake.keys.get(KEY)! } }] });
    for (let i = 0; i < 10 && seen.length < 1; i++) await new Promise((r) => setTimeout(r, 1));
    expect(seen).toEqual([`unreadable etcd key ${KEY} empty value`]);
    // an outage answers the last listing, with both keys unreadable (the agent keeps their last good leases)
    fake.down = true;
    const out = await store.list();
    expect([out.length, out.unreadable?.map((u) => formatPrefix(u.subnet)).sort()]).toEqual([0, ['10.244.1.0/24', '10.244.2.0/24']]);
    fake.down = false;
    w.emit('data', { events: [{ type: 'Delete', kv: { key: Buffer.from(K2) } }] });
    for (let i = 0; i < 10 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 1));
    expect(seen[1]).toBe('removed 10.244.2.0/24');
    h.close();
  });
});
