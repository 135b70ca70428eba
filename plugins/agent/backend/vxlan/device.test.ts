import { describe, expect, it } from 'vitest';
import { type Link } from '../../../pkg/netlink';
import { vxlanIncompat, vxlanSpec, type VxlanDeviceWant } from './device';
import { retryKernel } from '../kernel-batch';
import { NetlinkError } from '../../../pkg/netlink';

const want: VxlanDeviceWant = { name: 'flannel.1', vni: 1, port: 0, local: '192.168.0.1', srcLink: 2, mtu: 1450, gbp: false, learning: false, mac: '02:11:22:33:44:55' };
const link = (vx: Partial<NonNullable<Link['vxlan']>>, kind = 'vxlan'): Link => ({
  index: 5, name: 'flannel.1', kind, mtu: 1450, mac: '02:aa:bb:cc:dd:ee', flags: 0, up: true, lowerUp: true, promisc: false, masterIndex: 0, operstate: 'unknown',
  vxlan: kind === 'vxlan' ? { vni: 1, port: 8472, local: '192.168.0.1', srcLink: 2, learning: false, gbp: false, ...vx } : undefined,
});

describe('the vxlan device', () => {
  it('reuses a device with the same VNI, port, local address, underlay and GBP, whatever its MAC', () => {
    expect(vxlanIncompat(want, link({}))).toBeNull();
    expect(vxlanIncompat({ ...want, port: 8472 }, link({}))).toBeNull();
  });
  it('says what differs otherwise', () => {
    expect(vxlanIncompat(want, link({}, 'bridge'))).toBe('link type: vxlan vs bridge');
    expect(vxlanIncompat(want, link({ vni: 2 }))).toBe('vni: 1 vs 2');
    expect(vxlanIncompat(want, link({ port: 4789 }))).toBe('port: 8472 vs 4789');
    expect(vxlanIncompat(want, link({ local: '192.168.0.9' }))).toBe('vtep (external) IP: 192.168.0.1 vs 192.168.0.9');
    expect(vxlanIncompat(want, link({ srcLink: 7 }))).toBe('vtep (external) interface: 2 vs 7');
    expect(vxlanIncompat(want, link({ gbp: true }))).toBe('gbp: false vs true');
  });
  it("is created with flanneld's attributes (port 0 = the kernel's 8472, learning off)", () => {
    expect(vxlanSpec(want)).toEqual({ kind: 'vxlan', name: 'flannel.1', vni: 1, port: undefined, local: '192.168.0.1', srcLink: 2, learning: false, gbp: false, mtu: 1450, mac: '02:11:22:33:44:55' });
  });
});

describe('retryKernel', () => {
  it('retries ENOBUFS and EBUSY, not other errors', async () => {
    let n = 0;
    const noSleep = async () => {};
    expect(await retryKernel(async () => { if (++n < 3) throw new NetlinkError(105, 'fdbSet'); return 'ok'; }, 5, noSleep)).toBe('ok');
    expect(n).toBe(3);
    n = 0;
    await expect(retryKernel(async () => { n++; throw new NetlinkError(22, 'routeReplace'); }, 5, noSleep)).rejects.toThrow(/EINVAL/);
    expect(n).toBe(1);
    n = 0;
    await expect(retryKernel(async () => { n++; throw new NetlinkError(16, 'x'); }, 4, noSleep)).rejects.toThrow(/EBUSY/);
    expect(n).toBe(4);
  });
});
