import { describe, expect, it } from 'vitest';
import { type Addr, type Link } from '../../pkg/netlink';
import { selectExtIface } from './iface';

const link = (index: number, name: string): Link => ({ index, name, kind: '', mtu: 1500, mac: '', flags: 0, up: true, lowerUp: true, promisc: false, masterIndex: 0, operstate: 'up' });
const addr = (index: number, address: string, scope = 0): Addr => ({ index, family: 2, address, prefixLen: 24, cidr: `${address}/24`, scope, flags: 0, tentative: false, dadfailed: false, permanent: true, noDad: false, noPrefixRoute: false });
const links = [link(1, 'lo'), link(2, 'eth0'), link(3, 'eth1'), link(4, 'bare')];
const addrs = [addr(1, '127.0.0.1', 254), addr(2, '192.168.0.1'), addr(3, '10.0.0.1'), addr(3, '10.0.0.2')];
const sel = (o: Partial<{ iface: string[]; ifaceRegex: string[]; ifaceCanReach: string; publicIp: string }>) => ({ iface: [], ifaceRegex: [], publicIp: '', ...o });
const pick = (r: ReturnType<typeof selectExtIface>) => ('error' in r ? r.error : `${r.link.name} ${r.ifaceAddr} ${r.publicIP}`);

describe('external interface', () => {
  it('takes the default route interface when nothing is named', () => {
    expect(pick(selectExtIface(sel({}), links, addrs, 3))).toBe('eth1 10.0.0.1 10.0.0.1');
    expect(pick(selectExtIface(sel({}), links, addrs, undefined))).toMatch(/no default route/);
  });
  it('takes --iface by name or address in order, first match wins; --public-ip overrides the published address', () => {
    expect(pick(selectExtIface(sel({ iface: ['nope', 'eth0'] }), links, addrs, 3))).toBe('eth0 192.168.0.1 192.168.0.1');
    expect(pick(selectExtIface(sel({ iface: ['10.0.0.2'] }), links, addrs, 2))).toBe('eth1 10.0.0.2 10.0.0.2');
    expect(pick(selectExtIface(sel({ iface: ['eth0'], publicIp: '203.0.113.7' }), links, addrs, 2))).toBe('eth0 192.168.0.1 203.0.113.7');
  });
  it('matches --iface-regex against names, then addresses; fails naming what was asked', () => {
    expect(pick(selectExtIface(sel({ ifaceRegex: ['^eth1$'] }), links, addrs, 2))).toBe('eth1 10.0.0.1 10.0.0.1');
    expect(pick(selectExtIface(sel({ ifaceRegex: ['^192\\.168\\.'] }), links, addrs, 3))).toBe('eth0 192.168.0.1 192.168.0.1');
    expect(pick(selectExtIface(sel({ iface: ['bare', 'lo'], ifaceRegex: ['zz'] }), links, addrs, 2))).toBe('failed to find an interface with an IPv4 address matching --iface bare, --iface lo, --iface-regex zz');
  });

  it('--iface-can-reach: the route lookup\'s interface and source address, after --iface and --iface-regex, instead of the default route', () => {
    // the kernel's answer for 10.0.0.9: out of eth1 (index 3) from 10.0.0.2 (not the interface's first address)
    expect(pick(selectExtIface(sel({ ifaceCanReach: '10.0.0.9' }), links, addrs, 2, undefined, undefined, { oif: 3, src: '10.0.0.2' }))).toBe('eth1 10.0.0.2 10.0.0.2');
    expect(pick(selectExtIface(sel({ ifaceCanReach: '10.0.0.9' }), links, addrs, 2, undefined, undefined, { oif: 3 }))).toBe('eth1 10.0.0.1 10.0.0.1');
    expect(pick(selectExtIface(sel({ iface: ['eth0'], ifaceCanReach: '10.0.0.9' }), links, addrs, 3, undefined, undefined, { oif: 3 }))).toBe('eth0 192.168.0.1 192.168.0.1');
    expect(pick(selectExtIface(sel({ iface: ['nope'], ifaceCanReach: '10.0.0.9' }), links, addrs, 2, undefined, undefined, { oif: 3 }))).toBe('eth1 10.0.0.1 10.0.0.1');
    // no route: never the default route's interface; the error names the flag and the kernel's answer
    expect(pick(selectExtIface(sel({ ifaceCanReach: '10.9.9.9' }), links, addrs, 2, undefined, undefined, { error: 'no route: routeGet 10.9.9.9: ENETUNREACH' })))
      .toBe('failed to find an interface with an IPv4 address matching --iface-can-reach 10.9.9.9 (--iface-can-reach 10.9.9.9: no route: routeGet 10.9.9.9: ENETUNREACH)');
    expect(pick(selectExtIface(sel({ ifaceCanReach: '10.9.9.9' }), links, addrs, 2, undefined, undefined, { oif: 4 }))).toMatch(/the route's interface bare has no IPv4 address/);
  });
});
