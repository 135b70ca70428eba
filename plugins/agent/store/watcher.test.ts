import { describe, expect, it } from 'vitest';
import { type Lease, vxlanBackendData } from './lease';
import { formatPrefix, parseNetwork } from '../../pkg/ip';
import { LeaseWatcher } from './watcher';

const lease = (sn: string, ip: string, mac = '02:00:00:00:00:01'): Lease =>
  ({ subnet: parseNetwork(sn), attrs: { publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: mac }) }, expiration: null });
const show = (evs: Array<{ type: string; lease: Lease }>) => evs.map((e) => `${e.type} ${formatPrefix(e.lease.subnet)}`);

describe('LeaseWatcher', () => {
  it('reset: reports new and vanished peers, never our own lease', () => {
    const w = new LeaseWatcher(lease('10.244.1.0/24', '192.168.0.1'));
    expect(show(w.reset([lease('10.244.1.0/24', '192.168.0.1'), lease('10.244.2.0/24', '192.168.0.2'), lease('10.244.3.0/24', '192.168.0.3')])))
      .toEqual(['added 10.244.2.0/24', 'added 10.244.3.0/24']);
    expect(show(w.reset([lease('10.244.2.0/24', '192.168.0.2'), lease('10.244.4.0/24', '192.168.0.4')])))
      .toEqual(['added 10.244.4.0/24', 'removed 10.244.3.0/24']);
    expect(w.leases.map((l) => formatPrefix(l.subnet)).sort()).toEqual(['10.244.2.0/24', '10.244.4.0/24']);
    expect(w.reset([lease('10.244.2.0/24', '192.168.0.2'), lease('10.244.4.0/24', '192.168.0.4')])).toEqual([]);
  });

  it('reset: a peer whose VTEP MAC changed is added again (flannel would keep the stale entries)', () => {
    const w = new LeaseWatcher(lease('10.244.1.0/24', '192.168.0.1'));
    w.reset([lease('10.244.2.0/24', '192.168.0.2', '02:00:00:00:00:02')]);
    const ev = w.reset([lease('10.244.2.0/24', '192.168.0.2', '02:00:00:00:00:99')]);
    expect(show(ev)).toEqual(['added 10.244.2.0/24']);
    expect(ev[0].lease.attrs.backendData).toEqual({ VNI: 1, VtepMAC: '02:00:00:00:00:99' });
  });

  it('update: applies events, skipping our own, removing with the known lease', () => {
    const w = new LeaseWatcher(lease('10.244.1.0/24', '192.168.0.1'));
    const ev = w.update([
      { type: 'added', lease: lease('10.244.2.0/24', '192.168.0.2') },
      { type: 'added', lease: lease('10.244.1.0/24', '192.168.0.1') },
      { type: 'added', lease: lease('10.244.3.0/24', '192.168.0.3') },
    ]);
    expect(show(ev)).toEqual(['added 10.244.2.0/24', 'added 10.244.3.0/24']);
    const rm = w.update([{ type: 'removed', lease: { ...lease('10.244.2.0/24', '0.0.0.0'), attrs: { publicIP: '0.0.0.0', publicIPv6: null, backendType: '' } } }]);
    expect(rm[0].lease.attrs.publicIP).toBe('192.168.0.2'); // the entries to remove are the ones we programmed
    expect(w.leases.map((l) => formatPrefix(l.subnet))).toEqual(['10.244.3.0/24']);
  });

  it('update: a renewal and the removal of an unknown lease change nothing; a changed lease carries the one it replaces; a batch collapses per lease', () => {
    const w = new LeaseWatcher(lease('10.244.1.0/24', '192.168.0.1'));
    w.reset([lease('10.244.2.0/24', '192.168.0.2', '02:00:00:00:00:02')]);
    expect(w.update([{ type: 'added', lease: { ...lease('10.244.2.0/24', '192.168.0.2', '02:00:00:00:00:02'), expiration: 123 } }])).toEqual([]);
    expect(w.leases[0].expiration).toBe(123); // the renewed lease is kept
    expect(w.update([{ type: 'removed', lease: lease('10.244.9.0/24', '0.0.0.0') }])).toEqual([]);
    const ch = w.update([{ type: 'added', lease: lease('10.244.2.0/24', '192.168.0.2', '02:00:00:00:00:99') }]);
    expect(show(ch)).toEqual(['added 10.244.2.0/24']);
    expect(ch[0].old?.attrs.backendData).toEqual({ VNI: 1, VtepMAC: '02:00:00:00:00:02' });
    // added then removed in one batch: nothing; removed then re-added unchanged: nothing; removed then changed: one change
    expect(w.update([{ type: 'added', lease: lease('10.244.3.0/24', '192.168.0.3') }, { type: 'removed', lease: lease('10.244.3.0/24', '0.0.0.0') }])).toEqual([]);
    const cur = w.leases[0];
    expect(w.update([{ type: 'removed', lease: cur }, { type: 'added', lease: cur }])).toEqual([]);
    const again = w.update([{ type: 'removed', lease: cur }, { type: 'added', lease: lease('10.244.2.0/24', '192.168.0.5', '02:00:00:00:00:99') }]);
    expect(again.map((e) => [e.type, e.lease.attrs.publicIP, e.old?.attrs.publicIP])).toEqual([['added', '192.168.0.5', '192.168.0.2']]);
  });
});

describe('LeaseWatcher: unreadable leases are no removal', () => {
  const bad = (sn: string) => ({ subnet: parseNetwork(sn), where: `/leases/subnets/${sn.replace('/', '-')}.json`, why: 'empty file' });

  it('update: an unreadable value keeps the last good lease; a real removal still removes', () => {
    const w = new LeaseWatcher(lease('10.244.1.0/24', '192.168.0.1'));
    w.reset([lease('10.244.2.0/24', '192.168.0.2')]);
    expect(w.update([{ type: 'unreadable', ...bad('10.244.2.0/24') }])).toEqual([]);
    expect(w.leases.map((l) => l.attrs.publicIP)).toEqual(['192.168.0.2']);
    // never read good: skipped; our own: nothing for the watcher
    expect(w.update([{ type: 'unreadable', ...bad('10.244.3.0/24') }, { type: 'unreadable', ...bad('10.244.1.0/24') }])).toEqual([]);
    // readable again, unchanged: nothing; then deleted: removed
    expect(w.update([{ type: 'added', lease: lease('10.244.2.0/24', '192.168.0.2') }])).toEqual([]);
    expect(show(w.update([{ type: 'unreadable', ...bad('10.244.2.0/24') }, { type: 'removed', lease: lease('10.244.2.0/24', '0.0.0.0') }]))).toEqual(['removed 10.244.2.0/24']);
  });

  it('reset: a known peer among the unreadable keys keeps its last good lease until it expires; an unknown one is skipped', () => {
    const w = new LeaseWatcher(lease('10.244.1.0/24', '192.168.0.1'));
    w.reset([lease('10.244.2.0/24', '192.168.0.2'), { ...lease('10.244.3.0/24', '192.168.0.3'), expiration: 5000 }]);
    expect(w.reset([], [bad('10.244.2.0/24'), bad('10.244.3.0/24'), bad('10.244.4.0/24')], 1000)).toEqual([]);
    expect(w.leases.map((l) => formatPrefix(l.subnet)).sort()).toEqual(['10.244.2.0/24', '10.244.3.0/24']);
    // its last good expiration passed while unreadable: really gone
    expect(show(w.reset([], [bad('10.244.2.0/24'), bad('10.244.3.0/24')], 5000))).toEqual(['removed 10.244.3.0/24']);
    // the file deleted: not listed at all, removed
    expect(show(w.reset([], [], 6000))).toEqual(['removed 10.244.2.0/24']);
  });
});
