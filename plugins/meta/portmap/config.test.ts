import { parsePrefix } from '../../pkg/ip';
import { describe, expect, it } from 'vitest';
import { CniError } from '../../pkg/cni/errors';
import { conditionsBackend, containerAddrs, loadPortMapConf } from './config';

const conf = (o: object) => JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'portmap', ...o });
const code = (f: () => unknown) => {
  try { f(); } catch (e) { return (e as CniError).code; }
  return 0;
};

describe('loadPortMapConf', () => {
  it('defaults: snat on, mark bit 13, tcp, backend left to the installed tools', () => {
    const c = loadPortMapConf(conf({ runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 8080 }, { hostPort: 53, containerPort: 53, protocol: 'UDP', hostIP: '2001:DB8::1' }] } }));
    expect(c).toMatchObject({ snat: true, masqAll: false, markMasqBit: 13, backend: undefined });
    expect(c.mappings).toEqual([{ hostPort: 80, containerPort: 8080, protocol: 'tcp', hostIP: '' }, { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '2001:db8::1' }]);
  });
  it('portMappings keys match as Go\'s encoding/json matches them (containerd CRI / go-cni sends HostPort, ContainerPort, Protocol, HostIP)', () => {
    const c = loadPortMapConf(conf({ runtimeConfig: { portMappings: [{ HostPort: 18080, ContainerPort: 8080, Protocol: 'tcp', HostIP: '' }, { hostport: 53, CONTAINERPORT: 53, protocol: 'udp' }] } }));
    expect(c.mappings).toEqual([{ hostPort: 18080, containerPort: 8080, protocol: 'tcp', hostIP: '' }, { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '' }]);
    // the exact key wins over a case variant
    expect(loadPortMapConf(conf({ runtimeConfig: { portMappings: [{ hostPort: 81, HostPort: 82, containerPort: 80 }] } })).mappings[0].hostPort).toBe(81);
    expect(code(() => loadPortMapConf(conf({ runtimeConfig: { portMappings: [{ Host_Port: 1, containerPort: 2 }] } })))).toBe(7);
  });

  it('backend follows backend-specific options when unset; conflicting options are code 7', () => {
    expect(conditionsBackend(['!', '-s', 'x'])).toBe('iptables');
    expect(conditionsBackend(['ip saddr 1.2.3.4'])).toBe('nftables');
    expect(conditionsBackend([])).toBeUndefined();
    expect(loadPortMapConf(conf({ externalSetMarkChain: 'KUBE-MARK-MASQ' })).backend).toBe('iptables');
    expect(loadPortMapConf(conf({ conditionsV6: ['ip6 saddr ::1'] })).backend).toBe('nftables');
    expect(code(() => loadPortMapConf(conf({ conditionsV4: ['-s', 'x'], conditionsV6: ['ip6 saddr ::1'] })))).toBe(7);
    expect(code(() => loadPortMapConf(conf({ markMasqBit: 3, externalSetMarkChain: 'X' })))).toBe(7);
    expect(code(() => loadPortMapConf(conf({ backend: 'ebpf' })))).toBe(7);
  });
});

describe('containerAddrs', () => {
  it('first address per family of CNI_IFNAME in a sandbox; host-side and other interfaces skipped', () => {
    const r = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/run/netns/x' }, { name: 'net1', sandbox: '/run/netns/x' }],
      ips: [{ interface: 0, address: '10.0.0.1/24' }, { interface: 3, address: '10.9.0.2/24' }, { interface: 2, address: '10.0.0.2/24' },
        { interface: 2, address: 'fd00:0:0::2/64' }, { interface: 2, address: '10.0.0.3/24' }],
    };
    const a = containerAddrs(r, 'eth0');
    expect(a.v4).toEqual(parsePrefix('10.0.0.2/24'));
    expect(a.v6).toEqual(parsePrefix('fd00::2/64'));
    expect(containerAddrs({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.7/16' }] }, 'eth0').v4?.ip).toBe(0x0a000007n); // no interface index: taken
  });
});
