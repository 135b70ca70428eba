import { describe, expect, it } from 'vitest';
import { type NetlinkEvent } from '../../pkg/netlink';
import { kernelChangeReason as reason, OurDevices } from './kernel-events';
import { parseNetwork } from '../../pkg/ip';

const nets = [parseNetwork('10.244.0.0/16'), parseNetwork('fc00::/48')];
const link = (name: string, deleted: boolean, up = true, index = 5) => ({ kind: 'link', deleted, link: { name, up, index } }) as unknown as NetlinkEvent;
const route = (dst: string, deleted: boolean) => ({ kind: 'route', deleted, route: { dst } }) as unknown as NetlinkEvent;
const neigh = (ip: string | undefined, deleted: boolean, index: number) => ({ kind: 'neigh', deleted, neigh: { ip, index } }) as unknown as NetlinkEvent;
const ours = new Set([5]);
const kernelChangeReason = (e: NetlinkEvent, n: typeof nets) => reason(e, n, ours);

describe('kernel changes that call for a reconcile', () => {
  it('our device deleted or down; other links never', () => {
    expect(kernelChangeReason(link('flannel.1', true), nets)).toBe('device flannel.1 deleted');
    expect(kernelChangeReason(link('flannel-v6.4096', true), nets)).toBe('device flannel-v6.4096 deleted');
    expect(kernelChangeReason(link('flannel.1', false, false), nets)).toBe('device flannel.1 is down');
    expect(kernelChangeReason(link('flannel.1', false, true), nets)).toBeNull();
    expect(kernelChangeReason(link('cni0', true), nets)).toBeNull();
    expect(kernelChangeReason(link('flannel.x', true), nets)).toBeNull();
  });

  it('a removed route into either Network; not one outside, not a new one', () => {
    expect(kernelChangeReason(route('10.244.3.0/24', true), nets)).toBe('route 10.244.3.0/24 removed');
    expect(kernelChangeReason(route('fc00:0:0:3::/64', true), nets)).toBe('route fc00:0:0:3::/64 removed');
    expect(kernelChangeReason(route('10.244.3.0/24', false), nets)).toBeNull();
    expect(kernelChangeReason(route('10.0.0.0/8', true), nets)).toBeNull();
    expect(kernelChangeReason(route('192.168.1.0/24', true), nets)).toBeNull();
    expect(kernelChangeReason(route('10.244.3.0/24', true), [nets[1]])).toBeNull();
  });

  it('a removed neighbour in the Network on our device (a peer VTEP); pods\' entries on other links and FDB entries never', () => {
    expect(kernelChangeReason(neigh('10.244.3.0', true, 5), nets)).toBe('neighbour 10.244.3.0 removed');
    expect(kernelChangeReason(neigh('10.244.3.7', true, 9), nets)).toBeNull();
    expect(kernelChangeReason(neigh(undefined, true, 5), nets)).toBeNull();
    expect(kernelChangeReason(neigh('192.168.77.12', true, 5), nets)).toBeNull();
    expect(kernelChangeReason(neigh('10.244.3.0', false, 5), nets)).toBeNull();
  });

  it('OurDevices: seeded by a dump, kept by link events', () => {
    const d = new OurDevices();
    d.seed([{ index: 1, name: 'lo' }, { index: 7, name: 'flannel.1' }, { index: 8, name: 'cni0' }]);
    expect([...d.indexes]).toEqual([7]);
    d.see(link('flannel.1', true, true, 7));
    d.see(link('flannel-v6.1', false, true, 12));
    d.see(link('eth0', false, true, 2));
    expect([...d.indexes]).toEqual([12]);
  });
});
