import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileLeaseStore, parseLeaseFile, renderLeaseFile } from './file';
import { type LeaseAttrs, LeaseExistsError, type StoreEvent, SUBNET_TTL_MS, vxlanBackendData } from './lease';
import { formatPrefix, parseNetwork } from '../../pkg/ip';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'flaxd-store-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const T0 = Date.parse('2026-03-01T12:00:00Z');
/**
 * A clock whose time and intervals the test moves: tick() runs every
 * interval's callback once (as if its period had passed).
 */
function testClock(t = T0) {
  const intervals = new Set<() => void>();
  return {
    t,
    now() { return this.t; },
    every(_ms: number, fn: () => void) {
      const entry = () => fn();
      intervals.add(entry);
      return () => { intervals.delete(entry); };
    },
    tick() { for (const fn of [...intervals]) fn(); },
    get intervals() { return intervals.size; },
  };
}
function store(dir = path.join(root, `s${++n}`), clock = testClock(), warn: string[] = []) {
  return { s: new FileLeaseStore({ dir, clock, relistMs: 60_000, warn: (m) => warn.push(m) }), dir, clock, warn };
}
/** A watch's calls in order: each a batch of events, or 'relist' (called without). */
function watchCalls(s: FileLeaseStore) {
  const calls: Array<StoreEvent[] | 'relist'> = [];
  let wake: (() => void) | undefined;
  const w = s.watch((evs) => {
    calls.push(evs ?? 'relist');
    wake?.();
  });
  return {
    calls,
    close: () => w.close(),
    /** Resolves once `k` calls have been made (woken by the calls themselves). */
    async until(k: number): Promise<void> {
      while (calls.length < k) await new Promise<void>((r) => { wake = r; });
    },
  };
}
/** One turn of the event loop: a setImmediate queued before this one has run. */
const turn = () => new Promise((r) => setImmediate(r));
const attrs = (ip: string): LeaseAttrs => ({ publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44' }) });
const sn = parseNetwork('10.244.1.0/24');

describe('FileLeaseStore', () => {
  it("writes one file per lease, named by flannel's key, holding flanneld's value byte for byte", async () => {
    const { s, dir } = store();
    const exp = await s.create(sn, undefined, attrs('192.168.64.3'), SUBNET_TTL_MS);
    expect(exp).toBe(T0 + SUBNET_TTL_MS);
    const file = path.join(dir, 'subnets/10.244.1.0-24.json');
    expect(fs.readFileSync(file, 'utf8')).toBe(
      '{"Value":{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}},'
      + '"Expiration":"2026-03-02T12:00:00.000Z"}\n');
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    const [l] = await s.list();
    expect([formatPrefix(l.subnet), l.attrs, l.expiration]).toEqual(['10.244.1.0/24', attrs('192.168.64.3'), T0 + SUBNET_TTL_MS]);
  });

  it('creates only if absent, shared between stores (agents) on the same directory', async () => {
    const a = store();
    const b = store(a.dir, a.clock);
    await a.s.create(sn, undefined, attrs('192.168.0.1'), SUBNET_TTL_MS);
    await expect(b.s.create(sn, undefined, attrs('192.168.0.2'), SUBNET_TTL_MS)).rejects.toBeInstanceOf(LeaseExistsError);
    expect((await b.s.list())[0].attrs.publicIP).toBe('192.168.0.1');
  });

  it('honours expiry: an expired lease is invisible and can be taken; a reservation never expires', async () => {
    const { s, clock } = store();
    await s.create(sn, undefined, attrs('192.168.0.1'), SUBNET_TTL_MS);
    await s.create(parseNetwork('10.244.2.0/24'), undefined, attrs('192.168.0.9'), 0);
    clock.t = T0 + SUBNET_TTL_MS;
    expect((await s.list()).map((l) => [formatPrefix(l.subnet), l.expiration])).toEqual([['10.244.2.0/24', null]]);
    await s.create(sn, undefined, attrs('192.168.0.2'), SUBNET_TTL_MS);
    expect((await s.list()).find((l) => formatPrefix(l.subnet) === '10.244.1.0/24')!.attrs.publicIP).toBe('192.168.0.2');
  });

  it('updates and deletes; delete of an absent lease is fine', async () => {
    const { s, clock } = store();
    await s.create(sn, undefined, attrs('192.168.0.1'), SUBNET_TTL_MS);
    clock.t += 1000;
    expect(await s.update(sn, undefined, attrs('192.168.0.1'), SUBNET_TTL_MS)).toBe(T0 + 1000 + SUBNET_TTL_MS);
    await s.delete(sn, undefined);
    await s.delete(sn, undefined);
    expect(await s.list()).toEqual([]);
  });

  it('lists a lease file that cannot be parsed as unreadable, naming it; skips other files with a warning, temporary files silently', async () => {
    const { s, dir, warn } = store();
    await s.create(sn, undefined, attrs('192.168.0.1'), SUBNET_TTL_MS);
    fs.writeFileSync(path.join(dir, 'subnets/10.244.3.0-24.json'), '{not json');
    fs.writeFileSync(path.join(dir, 'subnets/10.244.5.0-24.json'), '');
    fs.writeFileSync(path.join(dir, 'subnets/bogus.json'), '{}');
    fs.writeFileSync(path.join(dir, 'subnets/.10.244.4.0-24.json.123.tmp'), 'partial');
    const l = await s.list();
    expect(l.map((x) => formatPrefix(x.subnet))).toEqual(['10.244.1.0/24']);
    expect(l.unreadable?.map((u) => [formatPrefix(u.subnet), u.where, u.why.length > 0]).sort()).toEqual([
      ['10.244.3.0/24', path.join(dir, 'subnets/10.244.3.0-24.json'), true],
      ['10.244.5.0/24', path.join(dir, 'subnets/10.244.5.0-24.json'), true],
    ]);
    expect(l.unreadable?.find((u) => formatPrefix(u.subnet) === '10.244.5.0/24')?.why).toBe('empty file');
    expect(warn.join('\n')).toMatch(/bogus\.json ignored: not a subnet key/);
    expect(warn.join('\n')).not.toMatch(/10\.244\.[35]/); // reported by the listing (the agent warns), not here
    // an unreadable file is taken by create() (a node restarting reclaims it from its subnet.env); once valid it lists again
    fs.writeFileSync(path.join(dir, 'subnets/10.244.3.0-24.json'), renderLeaseFile(attrs('192.168.0.3'), null));
    expect((await s.list()).unreadable?.map((u) => formatPrefix(u.subnet))).toEqual(['10.244.5.0/24']);
  });

  it('parses what it renders, including dual-stack keys and reservations', () => {
    const l = parseLeaseFile('10.244.1.0-24&fc00::-64.json', renderLeaseFile({ ...attrs('10.0.0.1'), publicIPv6: 'fc00::1' }, null));
    expect([formatPrefix(l.subnet), l.ipv6Subnet && formatPrefix(l.ipv6Subnet), l.attrs.publicIPv6, l.expiration]).toEqual(['10.244.1.0/24', 'fc00::/64', 'fc00::1', null]);
    expect(() => parseLeaseFile('10.244.1.0-24.json', '{"Value":{},"Expiration":"soon"}')).toThrow(/Expiration/);
  });

  it("notices another agent's change through the directory watch", async () => {
    const a = store();
    const b = store(a.dir, a.clock);
    const w = watchCalls(a.s);
    try {
      await w.until(1); // the re-list it starts with
      await b.s.create(sn, undefined, attrs('192.168.0.7'), SUBNET_TTL_MS);
      await w.until(2);
      expect(w.calls[1]).toMatchObject([{ type: 'added', lease: { attrs: { publicIP: '192.168.0.7' } } }]);
    } finally {
      w.close();
    }
  });

  it('reports the changed lease files as events: created, renewed, deleted, expired (never the temporary files)', async () => {
    const a = store();
    const b = store(a.dir, a.clock);
    const seen: string[] = [];
    let wake: (() => void) | undefined;
    const w = a.s.watch((evs) => {
      for (const e of evs ?? []) seen.push(e.type === 'unreadable' ? `unreadable ${formatPrefix(e.subnet)} ${path.basename(e.where)}` : `${e.type} ${formatPrefix(e.lease.subnet)} ${e.lease.attrs.publicIP}`);
      if (!evs) seen.push('relist');
      wake?.();
    });
    // woken by the watch's calls, not by time
    const until = async (k: number) => { while (seen.length < k) await new Promise<void>((r) => { wake = r; }); };
    try {
      // the watch starts with one re-list: a lease written just before it is not missed
      await until(1);
      expect(seen).toEqual(['relist']);
      seen.length = 0;
      await b.s.create(sn, undefined, attrs('192.168.0.7'), SUBNET_TTL_MS);
      await until(1);
      await b.s.update(sn, undefined, attrs('192.168.0.8'), SUBNET_TTL_MS);
      await until(2);
      await b.s.delete(sn, undefined);
      await until(3);
      expect(seen).toEqual(['added 10.244.1.0/24 192.168.0.7', 'added 10.244.1.0/24 192.168.0.8', 'removed 10.244.1.0/24 0.0.0.0']);
      // emptied or garbled in place: unreadable, not removed
      seen.length = 0;
      await b.s.create(sn, undefined, attrs('192.168.0.7'), SUBNET_TTL_MS);
      await until(1);
      const file = path.join(a.dir, 'subnets/10.244.1.0-24.json');
      fs.writeFileSync(file, '');
      await until(2);
      fs.writeFileSync(file, '{{{');
      await until(3);
      // (writeFileSync truncates, then writes: one or two notifications, each unreadable)
      expect(seen[0]).toBe('added 10.244.1.0/24 192.168.0.7');
      expect(new Set(seen.slice(1))).toEqual(new Set(['unreadable 10.244.1.0/24 10.244.1.0-24.json']));
      seen.length = 0;
      await b.s.update(sn, undefined, attrs('192.168.0.7'), SUBNET_TTL_MS);
      await until(1);
      seen.length = 0;
      // a lease written already expired is reported removed
      await b.s.update(sn, undefined, attrs('192.168.0.9'), SUBNET_TTL_MS);
      a.clock.t += SUBNET_TTL_MS + 1;
      await until(1);
      expect(seen[0]).toBe('removed 10.244.1.0/24 0.0.0.0');
    } finally {
      w.close();
    }
  });

  it('list() reads a file again only when it changed (a rewrite, an edit in place), and never hands out its cached leases', async () => {
    const { s, dir } = store();
    await s.create(sn, undefined, attrs('192.168.0.7'), SUBNET_TTL_MS);
    const [a] = await s.list();
    a.attrs = attrs('10.9.9.9'); // a caller's change to what it got
    expect((await s.list())[0].attrs.publicIP).toBe('192.168.0.7');
    await s.update(sn, undefined, attrs('192.168.0.8'), SUBNET_TTL_MS);
    expect((await s.list())[0].attrs.publicIP).toBe('192.168.0.8');
    const file = path.join(dir, 'subnets/10.244.1.0-24.json');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('192.168.0.8', '192.168.0.99'));
    expect((await s.list())[0].attrs.publicIP).toBe('192.168.0.99');
    fs.rmSync(file);
    expect(await s.list()).toEqual([]);
  });

  it('relistMs 0: only the one re-list a watch starts with, no periodic one (the agent loop re-lists itself)', async () => {
    const clock = testClock();
    const s = new FileLeaseStore({ dir: path.join(root, `s${++n}`), clock, relistMs: 0 });
    const w = watchCalls(s);
    await w.until(1);
    expect(clock.intervals).toBe(0); // no periodic re-list
    clock.tick();
    await turn();
    expect(w.calls).toEqual(['relist']);
    w.close();
    let fired = 0;
    const w2 = s.watch(() => { fired++; });
    w2.close(); // closed before its first turn: nothing
    await turn();
    expect(fired).toBe(0);
  });

  it('re-lists periodically as a backstop', async () => {
    const clock = testClock();
    const s = new FileLeaseStore({ dir: path.join(root, `s${++n}`), clock, relistMs: 30 });
    const w = watchCalls(s);
    await w.until(1); // the re-list it starts with
    clock.tick();
    clock.tick();
    expect(w.calls).toEqual(['relist', 'relist', 'relist']);
    w.close();
    expect(clock.intervals).toBe(0);
    clock.tick();
    expect(w.calls.length).toBe(3); // closed: no more calls
  });
});
