import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../../pkg/ip';
import { planGatewayAddr } from './links';

const a = (cidr: string) => { const [address, p] = cidr.split('/'); return { cidr, address: address!, prefixLen: Number(p) }; };
const gw = parsePrefix('10.244.5.1/24');
const net = [parsePrefix('10.244.0.0/16')];

describe('planGatewayAddr (stale bridge address)', () => {
  it('the gateway already there: nothing to do', () => {
    expect(planGatewayAddr('cni0', [a('10.244.5.1/24')], gw, false, net, [])).toEqual({ kind: 'present' });
  });
  it('no address: add', () => {
    expect(planGatewayAddr('cni0', [], gw, false, net, [])).toEqual({ kind: 'add', replace: [], healed: false });
  });
  it('a stale gateway inside the Network, no ports: replaced', () => {
    expect(planGatewayAddr('cni0', [a('10.244.3.1/24')], gw, false, net, [])).toEqual({ kind: 'add', replace: [a('10.244.3.1/24')], healed: true });
  });
  it('a stale gateway with pods attached: refused, naming address, ports and fix', () => {
    const p = planGatewayAddr('cni0', [a('10.244.3.1/24')], gw, false, net, ['veth1234', 'veth5678']);
    expect(p.kind).toBe('refuse');
    const m = (p as { message: string }).message;
    expect(m).toContain('"cni0" already has an IP address different from 10.244.5.1/24');
    expect(m).toContain('10.244.3.1/24');
    expect(m).toContain('veth1234, veth5678');
    expect(m).toMatch(/fix:/);
  });
  it('an address outside the known Network is not stale: refused as the reference does', () => {
    const p = planGatewayAddr('cni0', [a('192.168.7.1/24')], gw, false, net, []);
    expect(p.kind).toBe('refuse');
    expect((p as { message: string }).message).toContain('192.168.7.1/24');
    expect((p as { message: string }).message).toContain('forceAddress');
  });
  it('no Network known (a plain bridge conf without a route containing the subnet): the reference\'s error', () => {
    const ref = { kind: 'refuse', message: '"cni0" already has an IP address different from 10.244.5.1/24' };
    expect(planGatewayAddr('cni0', [a('10.244.3.1/24')], gw, false, [], [])).toEqual(ref);
    // a default route is no Network
    expect(planGatewayAddr('cni0', [a('10.244.3.1/24')], gw, false, [parsePrefix('0.0.0.0/0')], [])).toEqual(ref);
  });
  it('forceAddress replaces every conflicting address, with or without ports', () => {
    expect(planGatewayAddr('cni0', [a('192.168.7.1/24')], gw, true, net, ['veth1'])).toEqual({ kind: 'add', replace: [a('192.168.7.1/24')], healed: false });
  });
  it('IPv6: a non-overlapping address (link-local) is left alone', () => {
    const g6 = parsePrefix('fd00:5::1/64');
    const n6 = [parsePrefix('fd00::/16')];
    expect(planGatewayAddr('cni0', [a('fe80::1/64')], g6, false, n6, [])).toEqual({ kind: 'add', replace: [], healed: false });
    expect(planGatewayAddr('cni0', [a('fd00:5::9/64')], g6, false, n6, [])).toMatchObject({ kind: 'add', healed: true });
  });
});
