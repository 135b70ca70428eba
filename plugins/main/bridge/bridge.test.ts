import { describe, expect, it } from 'vitest';
import { about, handle } from '../../pkg/skel/skel';
import type { FirewallDeps } from '../../pkg/nft';
import { ADD_STEPS, createBridgePlugin } from './bridge';
import { validAttachments } from '../../pkg/cni/gc';

const noTools: FirewallDeps = { run: async () => ({ code: 0, stdout: '', stderr: '' }), iptablesNft: () => false, has: () => false };
const conf = (o: object = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'n1', type: 'bridge', ipMasq: true, ipam: { type: 'host-local', subnet: '10.1.0.0/24' }, ...o });

describe('bridge plugin (no kernel)', () => {
  const plugin = createBridgePlugin({ firewall: noTools });
  it('STATUS answers 50 when the masquerade backend tool is missing', async () => {
    const r = await handle(plugin, about('bridge'), { command: 'STATUS', path: '/nonexistent', stdin: conf() });
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 50, msg: expect.stringContaining('`nft`') });
  });
  it('ADD refuses before any side effect when the backend tool is missing', async () => {
    const r = await handle(plugin, about('bridge'), { command: 'ADD', containerId: 'c', netns: '/run/netns/none', ifname: 'eth0', path: '/x', stdin: conf({ ipMasqBackend: 'iptables' }) });
    expect(JSON.parse(r.stdout).msg).toMatch(/needs `iptables`/);
  });
  it('config errors come out as code 7 through the dispatcher', async () => {
    const r = await handle(plugin, about('bridge'), { command: 'ADD', containerId: 'c', netns: '/run/netns/none', ifname: 'eth0', path: '/x', stdin: conf({ vlan: 9999 }) });
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: 'invalid VLAN ID 9999 (must be between 0 and 4094)' });
  });
  it('names its ADD steps in the reference order', () => {
    expect(ADD_STEPS).toEqual(['bridge', 'veth', 'port', 'macspoofchk', 'ipam', 'container', 'gateway', 'forwarding', 'ipmasq', 'port-wait', 'result']);
  });
});

describe('validAttachments', () => {
  it('reads the HEAD key, the v1.1.0 key, or nothing', () => {
    expect(validAttachments(conf({ 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }))).toEqual([{ containerID: 'a', ifname: 'eth0' }]);
    expect(validAttachments(conf({ 'cni.dev/attachments': [] }))).toEqual([]);
    expect(validAttachments(conf())).toBeNull();
    expect(() => validAttachments(conf({ 'cni.dev/valid-attachments': 'x' }))).toThrow(/must be a list/);
  });
});
