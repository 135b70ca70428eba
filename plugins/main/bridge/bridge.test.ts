import { describe, expect, it } from 'vitest';
import { processHost } from '../../pkg/host/process';
import { about, handle } from '../../pkg/skel/skel';
import type { FirewallDeps } from '../../pkg/nft';
import { ADD_STEPS, createBridgePlugin } from './bridge';
import { validAttachments } from '../../pkg/cni/gc';
import { FuncExec } from '../../pkg/invoke/plugin-exec';

const noTools: FirewallDeps = { run: async () => ({ code: 0, stdout: '', stderr: '' }), iptablesNft: () => false, has: () => false };
const conf = (o: object = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'n1', type: 'bridge', ipMasq: true, ipam: { type: 'host-local', subnet: '10.1.0.0/24' }, ...o });

describe('bridge plugin (no kernel)', () => {
  const plugin = createBridgePlugin({ firewall: noTools });
  it('STATUS answers 50 when the masquerade backend tool is missing', async () => {
    const r = await handle(plugin, about('bridge'), { command: 'STATUS', path: '/nonexistent', stdin: conf() }, processHost());
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 50, msg: expect.stringContaining('`nft`') });
  });
  it('ADD refuses before any side effect when the backend tool is missing', async () => {
    const r = await handle(plugin, about('bridge'), { command: 'ADD', containerId: 'c', netns: '/run/netns/none', ifname: 'eth0', path: '/x', stdin: conf({ ipMasqBackend: 'iptables' }) }, processHost());
    expect(JSON.parse(r.stdout).msg).toMatch(/needs `iptables`/);
  });
  it('config errors come out as code 7 through the dispatcher', async () => {
    const r = await handle(plugin, about('bridge'), { command: 'ADD', containerId: 'c', netns: '/run/netns/none', ifname: 'eth0', path: '/x', stdin: conf({ vlan: 9999 }) }, processHost());
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: 'invalid VLAN ID 9999 (must be between 0 and 4094)' });
  });
  it('a non-boolean iptablesTombstone is code 7, before anything runs', async () => {
    const calls: string[] = [];
    const rec = createBridgePlugin({ firewall: { ...noTools, has: () => true, run: async (bin) => { calls.push(bin); return { code: 0, stdout: '', stderr: '' }; } } });
    const r = await handle(rec, about('bridge'), { command: 'ADD', containerId: 'c', netns: '/run/netns/none', ifname: 'eth0', path: '/x', stdin: conf({ iptablesTombstone: 'yes' }) }, processHost());
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('iptablesTombstone') });
    expect(calls).toEqual([]);
  });
  it('names its ADD steps in the reference order', () => {
    expect(ADD_STEPS).toEqual(['bridge', 'veth', 'port', 'macspoofchk', 'ipam', 'container', 'gateway', 'forwarding', 'ipmasq', 'port-wait', 'result']);
  });
});

describe('bridge IPAM delegation through the Exec of its context (no kernel)', () => {
  const withNft: FirewallDeps = { ...noTools, has: (t) => t === 'nft' };
  it('STATUS and GC hand the whole config and the CNI environment to the IPAM plugin; its error is the answer', async () => {
    const exec = new FuncExec({
      'host-local': async (env) => (env.CNI_COMMAND === 'STATUS'
        ? { stdout: JSON.stringify({ code: 50, msg: 'ipam unavailable' }), exitCode: 1 }
        : { stdout: '', exitCode: 0 }),
    });
    const plugin = createBridgePlugin({ firewall: withNft, exec });
    const gcConf = conf({ ipMasq: false, 'cni.dev/valid-attachments': [] });
    const gc = await handle(plugin, about('bridge'), { command: 'GC', path: '/opt/cni/bin', stdin: gcConf }, processHost());
    expect(gc).toMatchObject({ exitCode: 0 });
    const st = await handle(plugin, about('bridge'), { command: 'STATUS', path: '/opt/cni/bin', stdin: conf() }, processHost());
    expect(JSON.parse(st.stdout)).toMatchObject({ code: 50, msg: 'ipam unavailable' });
    expect(exec.calls.map((c) => [c.plugin, c.env.CNI_COMMAND, c.env.CNI_PATH, c.env.CNI_CONTAINERID])).toEqual([
      ['host-local', 'GC', '/opt/cni/bin', undefined], ['host-local', 'STATUS', '/opt/cni/bin', undefined],
    ]);
    expect(JSON.parse(exec.calls[0].stdin)).toEqual(JSON.parse(gcConf));
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
