import { describe, expect, it } from 'vitest';
import { ConfigError, parseNetConfig, parseVxlanConfig } from './config';
import { bigIntToIp, formatPrefix } from '../pkg/ip';
import { thrownMessage } from '../../test/lib/thrown';

const conf = (o: object) => parseNetConfig(JSON.stringify(o));
const err = (o: object | string) => thrownMessage(() => parseNetConfig(typeof o === 'string' ? o : JSON.stringify(o)), ConfigError);

describe('net-conf.json', () => {
  it("applies flanneld's defaults: /24 subnets in a /16, the first subnet skipped, EnableIPv4, udp backend", () => {
    const c = conf({ Network: '10.244.0.0/16' });
    expect(formatPrefix(c.network!)).toBe('10.244.0.0/16');
    expect(c.subnetLen).toBe(24);
    expect(bigIntToIp(c.subnetMin, false)).toBe('10.244.1.0');
    expect(bigIntToIp(c.subnetMax, false)).toBe('10.244.255.0');
    expect(c.enableIPv4).toBe(true);
    expect(c.enableIPv6).toBe(false);
    expect(c.backendType).toBe('udp');
  });

  it('defaults SubnetLen to prefix+2 for networks smaller than /22 and keeps explicit bounds', () => {
    const c = conf({ Network: '10.1.0.0/26' });
    expect(c.subnetLen).toBe(28);
    expect(bigIntToIp(c.subnetMin, false)).toBe('10.1.0.16');
    expect(bigIntToIp(c.subnetMax, false)).toBe('10.1.0.48');
    const d = conf({ Network: '10.244.0.0/16', SubnetLen: 26, SubnetMin: '10.244.8.0', SubnetMax: '10.244.9.192', Backend: { Type: 'vxlan' } });
    expect([d.subnetLen, bigIntToIp(d.subnetMin, false), bigIntToIp(d.subnetMax, false), d.backendType]).toEqual([26, '10.244.8.0', '10.244.9.192', 'vxlan']);
  });

  it('matches keys case-insensitively, like encoding/json, and ignores unknown keys and nulls', () => {
    const c = conf({ network: '10.5.0.0/16', subnetlen: 25, enableipv4: true, Extra: 1, SubnetMin: null, backend: { type: 'vxlan' } });
    expect([formatPrefix(c.network!), c.subnetLen, c.backendType]).toEqual(['10.5.0.0/16', 25, 'vxlan']);
  });

  it('answers a bad field by name', () => {
    expect(err({})).toMatch(/^Network: please define a correct Network/);
    expect(err({ Network: '10.244.0.0' })).toMatch(/^Network: invalid CIDR address/);
    expect(err({ Network: 'fc00::/48' })).toMatch(/^Network: invalid IPv4 CIDR/);
    expect(err({ Network: '10.244.0.0/29' })).toMatch(/^Network: network is too small. Minimum useful network prefix is \/28/);
    expect(err({ Network: '10.244.0.0/16', SubnetLen: 31 })).toMatch(/^SubnetLen: SubnetLen must be less than \/31/);
    expect(err({ Network: '10.244.0.0/16', SubnetLen: 17 })).toMatch(/^SubnetLen: network must be able to accommodate at least four subnets/);
    expect(err({ Network: '10.244.0.0/16', SubnetLen: '24' })).toMatch(/^SubnetLen: /);
    expect(err({ Network: '10.244.0.0/16', SubnetLen: -1 })).toMatch(/^SubnetLen: /);
    expect(err({ Network: '10.244.0.0/16', SubnetMin: '10.9.0.0' })).toMatch(/^SubnetMin: SubnetMin is not in the range of the Network/);
    expect(err({ Network: '10.244.0.0/16', SubnetMax: '10.244.3.7' })).toMatch(/^SubnetMax: SubnetMax is not on a SubnetLen boundary: 10.244.3.7/);
    expect(err({ Network: '10.244.0.0/16', EnableIPv4: 'yes' })).toMatch(/^EnableIPv4: /);
    expect(err({ Network: '10.244.0.0/16', Backend: { Type: 3 } })).toMatch(/^Backend.Type: /);
    expect(err({ Network: '10.244.0.0/16', EnableIPv6: true })).toMatch(/^IPv6Network: please define a correct IPv6Network/);
    expect(err('[1]')).toMatch(/must be a JSON object/);
    expect(err('{')).toMatch(/not valid JSON/);
  });

  it('checks IPv6 the same way (/64 default, /124 minimum) and allows IPv6-only', () => {
    const c = conf({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fc00::/48' });
    expect(c.ipv6SubnetLen).toBe(64);
    expect(bigIntToIp(c.ipv6SubnetMin, true)).toBe('fc00:0:0:1::');
    expect(bigIntToIp(c.ipv6SubnetMax, true)).toBe('fc00:0:0:ffff::');
    expect(err({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fc00::/125' })).toMatch(/^IPv6Network: IPv6Network is too small.*\/124/);
  });
});

describe('vxlan Backend block', () => {
  it("has flanneld's defaults and reads any key case", () => {
    expect(parseVxlanConfig({ Type: 'vxlan' })).toEqual({ vni: 1, port: 0, mtu: 0, gbp: false, learning: false, directRouting: false });
    expect(parseVxlanConfig({ Type: 'vxlan', vni: 4096, Port: 4789, MTU: 9000, GBP: true, directRouting: true }))
      .toEqual({ vni: 4096, port: 4789, mtu: 9000, gbp: true, learning: false, directRouting: true });
  });
  it('names the bad field', () => {
    const e = (b: object) => thrownMessage(() => parseVxlanConfig(b as Record<string, unknown>), ConfigError);
    expect(e({ VNI: 1 << 24 })).toMatch(/^Backend.VNI: /);
    expect(e({ Port: 70000 })).toMatch(/^Backend.Port: /);
    expect(e({ MTU: 100 })).toMatch(/^Backend.MTU: /);
    expect(e({ DirectRouting: 'yes' })).toMatch(/^Backend.DirectRouting: /);
  });
});
