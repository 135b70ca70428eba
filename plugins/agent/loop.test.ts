import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeLeaseStore } from '../../test/lib/agent/fake-store';
import { type Lease, SUBNET_TTL_MS, vxlanBackendData } from './store/lease';
import { type Logger } from './log';
import { AgentLoop, LeaseRevokedError } from './loop';
import { type ApplyResult } from './backend/types';
import { type PeersNow, peersNow } from './store/watcher';
import { type LeaseEvent } from './store/lease';
import { formatPrefix, parseNetwork } from '../pkg/ip';

const lease = (sn: string, ip: string, expiration: number | null): Lease =>
  ({ subnet: parseNetwork(sn), attrs: { publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: '02:00:00:00:00:01' }) }, expiration });

function setup(ownExp: number | null) {
  const clock = { now: () => Date.now() };
  const store = new FakeLeaseStore(clock);
  const own = lease('10.244.1.0/24', '192.168.0.1', ownExp);
  store.put(own);
  const lines: string[] = [];
  const log: Logger = { error: (m) => lines.push(`E ${m}`), warn: (m) => lines.push(`W ${m}`), info: (m) => lines.push(`I ${m}`), debug: () => {} };
  const seen: string[][] = [];
  let release: (() => void) | null = null;
  const net = {
    slow: false,
    async reconcile(now: PeersNow) {
      const peers = peersNow(now);
      seen.push(peers.map((p) => formatPrefix(p.subnet)).sort());
      if (net.slow) await new Promise<void>((r) => { release = r; });
      return { deviceCreated: false, peers: peers.length, routes: peers.length, repairs: 0, failures: 0 };
    },
  };
  const observed: string[] = [];
  const observer = {
    reconciled: (r: { peers: number; routes: number }) => observed.push(`reconciled ${r.peers}/${r.routes}`),
    storeError: (op: string) => observed.push(`store error ${op}`),
    leaseExpiration: (ms: number | null) => observed.push(`expiry ${ms}`),
    leaseParseError: () => observed.push('parse error'),
  };
  const loop = new AgentLoop({ store, net, own, log, clock, reconcileIntervalMs: 10_000, renewMarginMinutes: 60, observer });
  return { store, own, loop, seen, lines, net, observed, release: () => release?.() };
}

beforeEach(() => { vi.useFakeTimers({ now: Date.parse('2026-05-01T00:00:00Z') }); });
afterEach(() => { vi.useRealTimers(); });

describe('AgentLoop', () => {
  it('reconciles with the peers (never our own lease) on store changes and on the interval', async () => {
    const t = setup(Date.now() + SUBNET_TTL_MS);
    t.store.put(lease('10.244.2.0/24', '192.168.0.2', null));
    await t.loop.sync('start');
    expect(t.seen).toEqual([['10.244.2.0/24']]);
    const done = t.loop.run();
    t.store.put(lease('10.244.3.0/24', '192.168.0.3', null));
    await vi.advanceTimersByTimeAsync(1);
    expect(t.seen.at(-1)).toEqual(['10.244.2.0/24', '10.244.3.0/24']);
    expect(t.lines).toContain('I peer added: 10.244.3.0/24 public 192.168.0.3');
    const n = t.seen.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(t.seen.length).toBe(n + 1);
    t.loop.stop();
    expect(await done).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.seen.length).toBe(n + 1); // stopped: no more rounds
  });

  it('coalesces triggers during a reconcile into exactly one more', async () => {
    const t = setup(null);
    const done = t.loop.run();
    t.net.slow = true;
    t.store.put(lease('10.244.2.0/24', '192.168.0.2', null));
    await vi.advanceTimersByTimeAsync(1);
    for (let i = 3; i < 8; i++) t.store.put(lease(`10.244.${i}.0/24`, `192.168.0.${i}`, null));
    t.net.slow = false;
    t.release();
    await vi.advanceTimersByTimeAsync(1);
    expect(t.seen).toHaveLength(2);
    expect(t.seen[1]).toHaveLength(6);
    t.loop.stop();
    expect(await done).toBe(0);
  });

  it('renews the lease renewMargin before expiry, and retries a failed renewal a minute later', async () => {
    const t = setup(Date.now() + SUBNET_TTL_MS);
    const done = t.loop.run();
    await vi.advanceTimersByTimeAsync(23 * 3600_000 - 1000);
    expect(t.store.calls.filter((c) => c.startsWith('update'))).toEqual([]);
    const update = t.store.update.bind(t.store);
    let failOnce = true;
    t.store.update = async (...a) => { if (failOnce) { failOnce = false; throw new Error('disk full'); } return update(...a); };
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.lines.some((l) => l.startsWith('E lease renewal failed: disk full'))).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.store.calls).toContain(`update 10.244.1.0-24 ttl=${SUBNET_TTL_MS}`);
    expect(t.own.expiration).toBe(Date.now() + SUBNET_TTL_MS);
    expect(t.observed.filter((x) => !x.startsWith('reconciled'))).toEqual(['store error renew', `expiry ${Date.now() + SUBNET_TTL_MS}`]);
    t.loop.stop();
    expect(await done).toBe(0);
  });

  it('reports each reconcile and a failed store listing to the observer', async () => {
    const t = setup(Date.now() + SUBNET_TTL_MS);
    t.store.put(lease('10.244.2.0/24', '192.168.0.2', null));
    await t.loop.sync('start');
    t.store.list = async () => { throw new Error('etcd down'); };
    await expect(t.loop.sync('interval')).rejects.toThrow('etcd down');
    expect(t.observed).toEqual(['reconciled 1/1', 'store error list']);
  });

  it('never renews a reservation', async () => {
    const t = setup(null);
    const done = t.loop.run();
    await vi.advanceTimersByTimeAsync(48 * 3600_000);
    expect(t.store.calls.filter((c) => c.startsWith('update'))).toEqual([]);
    t.loop.stop();
    expect(await done).toBe(0);
  });

  it('ends with LeaseRevokedError when our lease leaves the store (or expires)', async () => {
    const t = setup(Date.now() + SUBNET_TTL_MS);
    const done = t.loop.run();
    const failed = expect(done).rejects.toBeInstanceOf(LeaseRevokedError);
    t.store.remove(t.own.subnet);
    await vi.advanceTimersByTimeAsync(1);
    await failed;
    const u = setup(Date.now() + 1000);
    await expect(u.loop.sync('x')).resolves.toBeDefined();
    await vi.advanceTimersByTimeAsync(1000);
    await expect(u.loop.sync('x')).rejects.toThrow(/was removed from the store/);
  });

  it('applies store events incrementally (no re-list, no full reconcile); falls back to a full reconcile when the backend cannot or fails', async () => {
    const t = setup(null);
    const applied: string[][] = [];
    let answer: 'ok' | 'null' | 'fail' = 'ok';
    const net = t.net as typeof t.net & { apply?: (ch: readonly LeaseEvent[]) => Promise<ApplyResult | null> };
    net.apply = async (ch) => {
      applied.push(ch.map((e) => `${e.old ? 'changed' : e.type} ${formatPrefix(e.lease.subnet)}`));
      if (answer === 'null') return null;
      const delta = ch.reduce((n, e) => n + (e.type === 'removed' ? -1 : e.old ? 0 : 1), 0);
      return { repairs: ch.length * 3, failures: answer === 'fail' ? 1 : 0, peers: delta, routes: delta };
    };
    t.store.put(lease('10.244.2.0/24', '192.168.0.2', null));
    await t.loop.sync('start');
    const done = t.loop.run();
    const lists = () => t.store.calls.filter((c) => c === 'list').length;
    const l0 = lists();
    t.store.put(lease('10.244.3.0/24', '192.168.0.3', null));
    t.store.put(lease('10.244.4.0/24', '192.168.0.4', null));
    await vi.advanceTimersByTimeAsync(1);
    t.store.put(lease('10.244.4.0/24', '192.168.0.44', null)); // changed
    t.store.put(lease('10.244.4.0/24', '192.168.0.44', null)); // a renewal: nothing to do
    t.store.remove(parseNetwork('10.244.2.0/24'));
    await vi.advanceTimersByTimeAsync(1);
    // the first event is applied at once; what arrives meanwhile is applied next, in one go (the renewal adds nothing)
    expect(applied).toEqual([['added 10.244.3.0/24'], ['added 10.244.4.0/24'], ['changed 10.244.4.0/24'], ['removed 10.244.2.0/24']]);
    expect(lists()).toBe(l0);
    expect(t.seen).toHaveLength(1); // only the start-up reconcile
    expect(t.lines).toContain('I peer changed: 10.244.4.0/24 public 192.168.0.44');
    expect(t.observed.at(-1)).toBe('reconciled 2/2'); // the metrics follow the applies

    answer = 'null';
    t.store.put(lease('10.244.5.0/24', '192.168.0.5', null));
    await vi.advanceTimersByTimeAsync(1);
    answer = 'fail';
    t.store.put(lease('10.244.6.0/24', '192.168.0.6', null));
    await vi.advanceTimersByTimeAsync(1);
    expect(t.seen.slice(1)).toEqual([
      ['10.244.3.0/24', '10.244.4.0/24', '10.244.5.0/24'],
      ['10.244.3.0/24', '10.244.4.0/24', '10.244.5.0/24', '10.244.6.0/24'],
    ]);
    expect(lists()).toBe(l0); // still no re-list: the events told us everything

    // a store that notifies without events makes the loop re-list
    t.store.events = false;
    t.store.put(lease('10.244.7.0/24', '192.168.0.7', null));
    await vi.advanceTimersByTimeAsync(1);
    expect(lists()).toBe(l0 + 1);
    expect(t.seen.at(-1)).toHaveLength(5);
    t.loop.stop();
    expect(await done).toBe(0);
  });

  it('an event removing our own lease re-lists, and ends the loop when it is really gone', async () => {
    const t = setup(null);
    await t.loop.sync('start');
    const done = t.loop.run();
    const failed = expect(done).rejects.toBeInstanceOf(LeaseRevokedError);
    t.store.remove(t.own.subnet);
    await vi.advanceTimersByTimeAsync(1);
    await failed;
  });

  it('applies events while a full reconcile reads the kernel (its plan sees them), replays those applied after it planned, and holds them while the store is listed', async () => {
    const t = setup(null);
    await t.loop.sync('start');
    const gate = () => { let open!: () => void; const p = new Promise<void>((r) => { open = r; }); return { p, open }; };
    let dumped = gate();
    let applied = gate();
    const calls: string[] = [];
    const net = t.net as typeof t.net & { apply?: (ch: readonly LeaseEvent[]) => Promise<ApplyResult | null> };
    net.reconcile = async (now: PeersNow) => {
      calls.push('reconcile: reading the kernel');
      await dumped.p; // the kernel's tables being read
      calls.push(`reconcile plans with ${peersNow(now).map((p) => formatPrefix(p.subnet)).join(' ') || 'none'}`);
      await applied.p; // its batch in flight
      calls.push('reconcile done');
      return { deviceCreated: false, peers: 0, routes: 0, repairs: 0, failures: 0 };
    };
    net.apply = async (ch) => {
      calls.push(`apply ${ch.map((e) => `${e.type} ${formatPrefix(e.lease.subnet)}`).join(' ')}`);
      return { repairs: 3, failures: 0, peers: 0, routes: 0 };
    };
    const done = t.loop.run();
    await vi.advanceTimersByTimeAsync(10_000); // the interval: a full sync starts
    t.store.put(lease('10.244.2.0/24', '192.168.0.2', null));
    await vi.advanceTimersByTimeAsync(1);
    dumped.open();
    await vi.advanceTimersByTimeAsync(1);
    t.store.put(lease('10.244.3.0/24', '192.168.0.3', null)); // after the plan: applied now and once more after the reconcile
    await vi.advanceTimersByTimeAsync(1);
    applied.open();
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([
      'reconcile: reading the kernel',
      'apply added 10.244.2.0/24',
      'reconcile plans with 10.244.2.0/24',
      'apply added 10.244.3.0/24',
      'reconcile done',
      'apply added 10.244.3.0/24',
    ]);

    // while the store is being listed, events wait (the listing is adopted first)
    calls.length = 0;
    [dumped, applied] = [gate(), gate()];
    dumped.open();
    applied.open();
    const list = t.store.list.bind(t.store);
    let listed!: () => void;
    t.store.list = async () => { const l = await list(); await new Promise<void>((r) => { listed = r; }); return l; };
    await vi.advanceTimersByTimeAsync(10_000);
    t.store.put(lease('10.244.4.0/24', '192.168.0.4', null));
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([]);
    listed(); // the listing predates the new lease: adopted first, then the event applied on top of it, and planned with
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual(['apply added 10.244.4.0/24', 'reconcile: reading the kernel', 'reconcile plans with 10.244.2.0/24 10.244.3.0/24 10.244.4.0/24', 'reconcile done']);
    t.loop.stop();
    expect(await done).toBe(0);
  });

  it("an unreadable peer lease keeps the peer programmed, warns naming it once, counts it; a real removal removes it", async () => {
    const t = setup(null);
    const applied: string[] = [];
    const net = t.net as typeof t.net & { apply?: (ch: readonly LeaseEvent[]) => Promise<ApplyResult | null> };
    net.apply = async (ch) => { applied.push(...ch.map((e) => `${e.type} ${formatPrefix(e.lease.subnet)}`)); return { repairs: 1, failures: 0, peers: 0, routes: 0 }; };
    t.store.put(lease('10.244.2.0/24', '192.168.0.2', null));
    await t.loop.sync('start');
    const done = t.loop.run();
    t.store.corrupt(parseNetwork('10.244.2.0/24'));
    await vi.advanceTimersByTimeAsync(1);
    t.store.corrupt(parseNetwork('10.244.2.0/24'));
    await vi.advanceTimersByTimeAsync(10_000); // and a full re-list on the interval
    expect(applied).toEqual([]);
    expect(t.seen.at(-1)).toEqual(['10.244.2.0/24']);
    expect(t.lines.filter((l) => l.startsWith('W'))).toEqual(['W lease fake:10.244.2.0-24 (10.244.2.0/24) cannot be parsed: unexpected end of JSON input; keeping the last good lease of 192.168.0.2']);
    expect(t.observed.filter((x) => x === 'parse error')).toHaveLength(1);
    // never read good: skipped (counted)
    t.store.corrupt(parseNetwork('10.244.9.0/24'));
    await vi.advanceTimersByTimeAsync(1);
    expect(t.lines.at(-1)).toMatch(/^W lease fake:10\.244\.9\.0-24 .*; skipped \(never read good\)$/);
    expect(t.observed.filter((x) => x === 'parse error')).toHaveLength(2);
    // the file deleted: removed
    t.store.remove(parseNetwork('10.244.2.0/24'));
    await vi.advanceTimersByTimeAsync(1);
    expect(applied).toEqual(['removed 10.244.2.0/24']);
    t.loop.stop();
    expect(await done).toBe(0);
  });

  it('our own lease unreadable: written again from the lease we hold (TTL kept), no shutdown; by event and by listing', async () => {
    const t = setup(Date.now() + SUBNET_TTL_MS);
    await t.loop.sync('start');
    const done = t.loop.run();
    let ended = false;
    done.then(() => { ended = true; }, () => { ended = true; });
    t.store.corrupt(t.own.subnet);
    await vi.advanceTimersByTimeAsync(1);
    expect(ended).toBe(false);
    expect(t.store.calls).toContain(`update 10.244.1.0-24 ttl=${SUBNET_TTL_MS}`);
    expect(t.store.leases.get('10.244.1.0-24')?.attrs).toEqual(t.own.attrs);
    expect(t.lines.filter((l) => l.startsWith('W'))).toEqual(['W lease fake:10.244.1.0-24 (10.244.1.0/24) cannot be parsed: unexpected end of JSON input; this is our lease: writing it again']);
    expect(t.lines.some((l) => l.startsWith('I our lease fake:10.244.1.0-24 written again'))).toBe(true);
    expect(t.observed).toContain('parse error');
    // a store without events: the listing shows it unreadable, sync() writes it again
    t.store.events = false;
    t.store.corrupt(t.own.subnet);
    await t.loop.sync('x');
    expect(t.store.leases.has('10.244.1.0-24')).toBe(true);
    expect(t.observed.filter((x) => x === 'parse error')).toHaveLength(2);
    // a reservation stays a reservation
    const u = setup(null);
    await u.loop.sync('start');
    u.store.corrupt(u.own.subnet);
    await u.loop.sync('x');
    expect(u.store.calls).toContain('update 10.244.1.0-24 ttl=0');
    t.loop.stop();
    expect(await done).toBe(0);
    expect(ended).toBe(true);
  });
});
