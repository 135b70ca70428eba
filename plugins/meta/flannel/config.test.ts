/**
 * The delegate config flannel renders, against flannel-io/cni-plugin's own
 * expectations for the same inputs (its flannel_linux_test.go: v4, v6,
 * dual-stack, two networks, a user ipam block) and the standard conflist of
 * kube-flannel.yml, byte for byte where the reference's bytes are known
 * (Go's json.Marshal of the map: sorted keys, routes as types.Route).
 */
import { describe, expect, it } from 'vitest';
import { delegateBytes, loadFlannelConf, renderDelegate } from './config';
import { parseSubnetEnv } from './subnet-env';

const V4 = 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';
const V6 = 'FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';
const DUAL = 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';
const MULTI = 'FLANNEL_NETWORK=10.1.0.0/16,192.168.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';

const render = (conf: object, env: string) =>
  JSON.parse(delegateBytes(renderDelegate(loadFlannelConf(JSON.stringify(conf)), parseSubnetEnv(env, 'subnet.env'))));
const base = { name: 'cni-flannel', type: 'flannel' };

describe('flannel delegate rendering (flannel-io/cni-plugin expectations)', () => {
  it('IPv4', () => {
    expect(render(base, V4)).toEqual({
      ipMasq: false, isGateway: true, mtu: 1472, name: 'cni-flannel', type: 'bridge',
      ipam: { routes: [{ dst: '10.1.0.0/16' }], ranges: [[{ subnet: '10.1.17.0/24' }]], type: 'host-local' },
    });
  });
  it('two IPv4 networks', () => {
    expect(render(base, MULTI).ipam.routes).toEqual([{ dst: '10.1.0.0/16' }, { dst: '192.168.0.0/16' }]);
  });
  it('IPv6 only', () => {
    expect(render(base, V6).ipam).toEqual({ routes: [{ dst: 'fc00::/48' }], ranges: [[{ subnet: 'fc00::/64' }]], type: 'host-local' });
  });
  it('dual-stack', () => {
    expect(render(base, DUAL).ipam).toEqual({
      routes: [{ dst: '10.1.0.0/16' }, { dst: 'fc00::/48' }],
      ranges: [[{ subnet: '10.1.17.0/24' }], [{ subnet: 'fc00::/64' }]], type: 'host-local',
    });
  });
  it('a user ipam block: its type, extra keys and routes kept; ranges and flannel routes set', () => {
    const ipam = { type: 'my-ipam', 'unknown-param': 'unknown-value', routes: [{ dst: '10.96.0.0/12' }, { dst: '192.168.244.0/24', gw: '10.1.17.20' }] };
    expect(render({ ...base, ipam }, V4).ipam).toEqual({
      type: 'my-ipam', 'unknown-param': 'unknown-value', ranges: [[{ subnet: '10.1.17.0/24' }]],
      routes: [{ dst: '10.96.0.0/12' }, { dst: '192.168.244.0/24', gw: '10.1.17.20' }, { dst: '10.1.0.0/16' }],
    });
    expect(render({ ...base, ipam: { dataDir: '/x' } }, V4).ipam.dataDir).toBe('/x');
  });
  it('delegate overrides win; ipMasq follows FLANNEL_IPMASQ; cniVersion copied; runtimeConfig passed on', () => {
    const d = render({ ...base, cniVersion: '0.3.1', delegate: { hairpinMode: true, isDefaultGateway: true, mtu: 1400 }, runtimeConfig: { portMappings: [] } },
      V4.replace('IPMASQ=true', 'IPMASQ=false'));
    expect(d).toMatchObject({ cniVersion: '0.3.1', hairpinMode: true, isDefaultGateway: true, isGateway: true, mtu: 1400, ipMasq: true, runtimeConfig: { portMappings: [] } });
    expect(render({ ...base, delegate: { type: 'ipvlan', master: 'eth0' } }, V4)).not.toHaveProperty('isGateway');
  });
  it('the bytes of kube-flannel.yml\'s default delegate, as the reference writes them', () => {
    const conf = { cniVersion: '0.3.1', name: 'cbr0', type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } };
    const env = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';
    expect(delegateBytes(renderDelegate(loadFlannelConf(JSON.stringify(conf)), parseSubnetEnv(env, 'subnet.env')))).toBe(
      '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},'
      + '"isDefaultGateway":true,"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}');
  });
  it('a user route keeps its host bits and types.Route field order', () => {
    const conf = { ...base, ipam: { routes: [{ gw: 'FC00::1', priority: 5, dst: '10.96.0.5/12', mtu: 0 }] } };
    const bytes = delegateBytes(renderDelegate(loadFlannelConf(JSON.stringify(conf)), parseSubnetEnv(V4, 's')));
    expect(bytes).toContain('"routes":[{"dst":"10.96.0.5/12","gw":"fc00::1","priority":5},{"dst":"10.1.0.0/16"}]');
  });
});

describe('flannel config errors', () => {
  const bad = (conf: object) => () => renderDelegate(loadFlannelConf(JSON.stringify({ ...base, ...conf })), parseSubnetEnv(V4, 's'));
  it('delegate may not set name or ipam; type must be a string', () => {
    expect(bad({ delegate: { name: 'x' } })).toThrow(/must not have 'name'/);
    expect(bad({ delegate: { ipam: {} } })).toThrow(/must not have 'ipam'/);
    expect(bad({ delegate: { type: 5 } })).toThrow(/\(string\) 'type'/);
  });
  it('relative subnetFile / dataDir are refused; bad routes named', () => {
    expect(bad({ subnetFile: 'run/subnet.env' })).toThrow(/subnetFile must be an absolute path/);
    expect(bad({ dataDir: 'x' })).toThrow(/dataDir must be an absolute path/);
    expect(bad({ ipam: { routes: [{ dst: 'nope' }] } })).toThrow(/ipam.routes\[0\]: invalid dst/);
  });
});

describe('subnet.env', () => {
  it('reads subnets as their network, several networks, v6', () => {
    expect(parseSubnetEnv(MULTI, 'f')).toEqual({ networks: ['10.1.0.0/16', '192.168.0.0/16'], subnet: '10.1.17.0/24', ip6Networks: [], mtu: 1472, ipmasq: true });
    expect(parseSubnetEnv(V6, 'f')).toMatchObject({ ip6Subnet: 'fc00::/64', ip6Networks: ['fc00::/48'] });
  });
  it('every missing or malformed key is named', () => {
    expect(() => parseSubnetEnv('FLANNEL_MTU=1450\n', '/run/flannel/subnet.env'))
      .toThrow('/run/flannel/subnet.env is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_IPMASQ');
    expect(() => parseSubnetEnv(V4.replace('1472', 'big'), 'f')).toThrow(/FLANNEL_MTU is not a number/);
    expect(() => parseSubnetEnv(V4.replace('10.1.17.1/24', '10.1.17.1'), 'f')).toThrow(/FLANNEL_SUBNET is not a CIDR/);
    expect(() => parseSubnetEnv(V4.replace('IPMASQ=true', 'IPMASQ=yes'), 'f')).toThrow(/FLANNEL_IPMASQ must be true or false/);
    expect(() => parseSubnetEnv(V4.replace('10.1.0.0/16', 'fc00::/48'), 'f')).toThrow(/FLANNEL_NETWORK must be an IPv4 CIDR/);
  });
});
