import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChainError, CniConfig, GcError } from './api';
import { buildOneConfig } from './result';
import { listAttachments, writeCache } from './cache';
import { confListFromBytes, type NetworkConfigList } from './conf';
import { FuncExec, RawExec, type PluginFunc } from './plugin-exec';

let dir: string;
beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'flax-api-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const stubs = path.resolve(__dirname, '../../../test/fixtures/stub-plugins');
const rt = { containerId: 'cid1', netns: '/run/netns/p1', ifName: 'eth0' };
const mkList = (plugins: object[], extra: object = {}): NetworkConfigList =>
  confListFromBytes(JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins, ...extra }));

/** An in-process plugin that answers ADD with one interface + IP named after it. */
const fake = (name: string, n: number, opts: { fail?: string } = {}): PluginFunc => async (env) => {
  if (opts.fail === env.CNI_COMMAND) return { stdout: JSON.stringify({ code: 7, msg: `${name} says no`, details: 'because' }), exitCode: 1 };
  if (env.CNI_COMMAND === 'ADD') return { stdout: JSON.stringify({ cniVersion: '1.0.0', interfaces: [{ name }], ips: [{ address: `10.0.0.${n}/24`, interface: 0 }] }), exitCode: 0 };
  if (env.CNI_COMMAND === 'VERSION') return { stdout: JSON.stringify({ cniVersion: '1.1.0', supportedVersions: n === 2 ? ['0.4.0', '1.0.0'] : ['0.4.0', '1.0.0', '1.1.0'] }), exitCode: 0 };
  return { stdout: '', exitCode: 0 };
};
const mk = (plugins: Record<string, PluginFunc>) => {
  const exec = new FuncExec(plugins);
  return { exec, cni: new CniConfig({ path: ['/stub'], cacheDir: dir, exec, stderr: null }) };
};
const stdinOf = (c: { stdin: string }) => JSON.parse(c.stdin) as Record<string, unknown>;

describe('ADD', () => {
  it('runs in order, passes each result as the next prevResult, injects name/cniVersion, caches the final result', async () => {
    const { exec, cni } = mk({ a: fake('a', 1), b: fake('b', 2) });
    const list = mkList([{ type: 'a', name: 'ignored', cniVersion: '0.3.1' }, { type: 'b' }]);
    const res = await cni.addNetworkList(list, { ...rt, args: [['K', 'V'], ['IgnoreUnknown', '1']] });
    expect(exec.calls.map((c) => `${c.plugin}:${c.env.CNI_COMMAND}`)).toEqual(['a:ADD', 'b:ADD']);
    const s0 = stdinOf(exec.calls[0]);
    expect([s0.name, s0.cniVersion, s0.prevResult]).toEqual(['net', '1.0.0', undefined]);
    expect(stdinOf(exec.calls[1]).prevResult).toEqual({ cniVersion: '1.0.0', interfaces: [{ name: 'a' }], ips: [{ interface: 0, address: '10.0.0.1/24' }], dns: {} });
    expect(exec.calls[0].env).toMatchObject({ CNI_CONTAINERID: 'cid1', CNI_NETNS: '/run/netns/p1', CNI_IFNAME: 'eth0', CNI_ARGS: 'K=V;IgnoreUnknown=1', CNI_PATH: '/stub' });
    expect(res).toMatchObject({ interfaces: [{ name: 'b' }] });
    const [att] = listAttachments(dir);
    expect(att).toMatchObject({ network: 'net', containerId: 'cid1', ifName: 'eth0', netns: '/run/netns/p1', cniArgs: [['K', 'V'], ['IgnoreUnknown', '1']] });
    expect(att.config.equals(list.bytes)).toBe(true);
  });

  it('stops at the first error, names the plugin, keeps the plugin\'s code, writes no cache', async () => {
    const { exec, cni } = mk({ a: fake('a', 1), b: fake('b', 2, { fail: 'ADD' }), c: fake('c', 3) });
    const err = await cni.addNetworkList(mkList([{ type: 'a' }, { type: 'b' }, { type: 'c' }]), rt).catch((e) => e);
    expect(err).toBeInstanceOf(ChainError);
    expect(err.message).toBe('plugin type="b" failed (add): b says no; because');
    expect(err.code).toBe(7);
    expect(exec.calls.map((c) => c.plugin)).toEqual(['a', 'b']);
    expect(listAttachments(dir)).toEqual([]);
  });

  it('validates container id, interface and network name before running anything', async () => {
    const { exec, cni } = mk({ a: fake('a', 1) });
    await expect(cni.addNetworkList(mkList([{ type: 'a' }]), { ...rt, containerId: 'bad/id' })).rejects.toThrow(/containerID/);
    await expect(cni.addNetworkList(mkList([{ type: 'a' }]), { ...rt, ifName: 'x'.repeat(16) })).rejects.toThrow(/too long/);
    expect(exec.calls).toEqual([]);
  });

  it('a missing plugin is a clear error', async () => {
    const { cni } = mk({});
    await expect(cni.addNetworkList(mkList([{ type: 'nope' }]), rt)).rejects.toThrow('plugin type="nope" failed (add): failed to find plugin "nope" in path [/stub]');
  });
});

describe('capability args', () => {
  it('are injected into runtimeConfig only for capabilities the plugin declares true', () => {
    const list = mkList([
      { type: 'a', capabilities: { portMappings: true, bandwidth: false } },
      { type: 'b', runtimeConfig: { x: 1 } },
      { type: 'c', capabilities: { mac: true }, runtimeConfig: { x: 1 } },
    ]);
    const caps = { capabilityArgs: { portMappings: [{ hostPort: 1 }], bandwidth: { ingressRate: 1 }, mac: 'c2:00:00:00:00:01' } };
    const s = list.plugins.map((p) => JSON.parse(buildOneConfig('net', '1.0.0', p, null, { ...rt, ...caps }).toString()));
    expect(s[0].runtimeConfig).toEqual({ portMappings: [{ hostPort: 1 }] });
    expect(s[1].runtimeConfig).toEqual({ x: 1 }); // nothing declared: left alone
    expect(s[2].runtimeConfig).toEqual({ mac: 'c2:00:00:00:00:01' }); // replaced, as libcni does
  });
});

describe('DEL', () => {
  it('runs in reverse with the cached result converted to the list version, then removes the cache entry', async () => {
    const { exec, cni } = mk({ a: fake('a', 1), b: fake('b', 2) });
    const list = mkList([{ type: 'a' }, { type: 'b' }], { cniVersion: '0.4.0' });
    await cni.addNetworkList(list, rt);
    exec.calls.length = 0;
    await cni.delNetworkList(list, rt);
    expect(exec.calls.map((c) => `${c.plugin}:${c.env.CNI_COMMAND}`)).toEqual(['b:DEL', 'a:DEL']);
    for (const c of exec.calls) expect(stdinOf(c).prevResult).toEqual({ cniVersion: '0.4.0', interfaces: [{ name: 'b' }], ips: [{ version: '4', interface: 0, address: '10.0.0.2/24' }], dns: {} });
    expect(listAttachments(dir)).toEqual([]);
  });

  it('without a cache entry, DEL runs without prevResult; a corrupt entry is dropped', async () => {
    const { exec, cni } = mk({ a: fake('a', 1) });
    const list = mkList([{ type: 'a' }]);
    await cni.delNetworkList(list, rt);
    expect(stdinOf(exec.calls[0]).prevResult).toBeUndefined();
    writeCache(dir, { kind: 'cniCacheV1', containerId: 'cid1', ifName: 'eth0', networkName: 'net', config: list.bytes, result: { cniVersion: '9.9.9' } });
    await cni.delNetworkList(list, rt);
    expect(stdinOf(exec.calls[1]).prevResult).toBeUndefined();
    expect(listAttachments(dir)).toEqual([]);
  });

  it('an interface name or container id with "/" never makes DEL read or unlink a file outside results/', async () => {
    const { cni } = mk({ a: fake('a', 1) });
    const list = mkList([{ type: 'a' }]);
    // a file that is not a cache entry, reachable by a crafted ifname / container id
    const victim = path.join(dir, 'victim');
    writeFileSync(victim, 'not json');
    await cni.delNetworkList(list, { ...rt, ifName: 'x/../../victim' }).catch(() => undefined);
    await cni.delNetworkList(list, { ...rt, containerId: 'c/../../victim' }).catch(() => undefined);
    expect(readFileSync(victim, 'utf8')).toBe('not json');
    await expect(cni.checkNetworkList(list, { ...rt, ifName: 'x/../../victim' })).resolves.toBeUndefined();
  });

  it('stops at the first error and keeps the cache entry for a retry', async () => {
    const { cni } = mk({ a: fake('a', 1), b: fake('b', 2, { fail: 'DEL' }) });
    const list = mkList([{ type: 'a' }, { type: 'b' }]);
    await cni.addNetworkList(list, rt);
    await expect(cni.delNetworkList(list, rt)).rejects.toThrow(/type="b" failed \(del\)/);
    expect(listAttachments(dir)).toHaveLength(1);
  });
});

describe('CHECK', () => {
  it('runs forward with the cached result; disableCheck skips; < 0.4.0 is refused', async () => {
    const { exec, cni } = mk({ a: fake('a', 1), b: fake('b', 2) });
    const list = mkList([{ type: 'a' }, { type: 'b' }]);
    await cni.addNetworkList(list, rt);
    exec.calls.length = 0;
    await cni.checkNetworkList(list, rt);
    expect(exec.calls.map((c) => `${c.plugin}:${c.env.CNI_COMMAND}`)).toEqual(['a:CHECK', 'b:CHECK']);
    expect(stdinOf(exec.calls[0]).prevResult).toMatchObject({ interfaces: [{ name: 'b' }] });
    exec.calls.length = 0;
    await cni.checkNetworkList({ ...list, disableCheck: true }, rt);
    expect(exec.calls).toEqual([]);
    await expect(cni.checkNetworkList({ ...list, cniVersion: '0.3.1' }, rt)).rejects.toThrow(/does not support the CHECK command/);
  });
});

describe('GC', () => {
  const seed = (cni: CniConfig, list: NetworkConfigList) => Promise.all([
    cni.addNetworkList(list, { ...rt, containerId: 'keep' }),
    cni.addNetworkList(list, { ...rt, containerId: 'stale', args: [['K', 'V']] }),
    cni.addNetworkList({ ...list, name: 'other' }, { ...rt, containerId: 'stale' }),
  ]);

  it('DELs every cached attachment of this network not in the valid list, then sends GC with both keys', async () => {
    const { exec, cni } = mk({ a: fake('a', 1), b: fake('b', 2) });
    const list = mkList([{ type: 'a' }, { type: 'b' }], { cniVersion: '1.1.0' });
    await seed(cni, list);
    exec.calls.length = 0;
    const rep = await cni.gcNetworkList(list, [{ containerID: 'keep', ifname: 'eth0' }]);
    expect(rep.deleted.map((a) => a.containerId)).toEqual(['stale']);
    expect(exec.calls.map((c) => `${c.plugin}:${c.env.CNI_COMMAND}:${c.env.CNI_CONTAINERID}`)).toEqual(['b:DEL:stale', 'a:DEL:stale', 'a:GC:', 'b:GC:']);
    expect(exec.calls[0].env.CNI_ARGS).toBe('K=V'); // the cached CNI_ARGS
    const gc = exec.calls[2].stdin;
    expect(gc).toContain('"cni.dev/attachments":[{"containerID":"keep","ifname":"eth0"}],"cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]');
    expect(listAttachments(dir).map((a) => `${a.network}/${a.containerId}`)).toEqual(['net/keep', 'other/stale']);
  });

  it('with no valid list: everything of the network is stale and GC carries no attachment keys', async () => {
    const { exec, cni } = mk({ a: fake('a', 1), b: fake('b', 2) });
    const list = mkList([{ type: 'a' }, { type: 'b' }], { cniVersion: '1.1.0' });
    await seed(cni, list);
    exec.calls.length = 0;
    await cni.gcNetworkList(list);
    expect(exec.calls.filter((c) => c.env.CNI_COMMAND === 'GC').every((c) => !c.stdin.includes('cni.dev/'))).toBe(true);
    expect(listAttachments(dir).map((a) => `${a.network}/${a.containerId}`)).toEqual(['other/stale']);
  });

  it('continues past errors and reports them all; < 1.1.0 sends no GC; disableGC does nothing', async () => {
    const { exec, cni } = mk({ a: fake('a', 1, { fail: 'GC' }), b: fake('b', 2, { fail: 'DEL' }) });
    const list = mkList([{ type: 'a' }, { type: 'b' }], { cniVersion: '1.1.0' });
    await seed(cni, list);
    const err = await cni.gcNetworkList(list, []).catch((e) => e);
    expect(err).toBeInstanceOf(GcError);
    expect(err.report.errors.map((e: Error) => e.message.slice(0, 40))).toEqual(['failed to delete stale attachment keep e', 'failed to delete stale attachment stale ', 'failed to GC plugin a: a says no; becaus']);
    expect(err.report.gcSent).toEqual(['b']);
    exec.calls.length = 0;
    await expect(cni.gcNetworkList({ ...list, disableGC: true })).resolves.toMatchObject({ deleted: [] });
    expect(exec.calls).toEqual([]);
    const { exec: e2, cni: c2 } = mk({ a: fake('a', 1), b: fake('b', 2) });
    await c2.gcNetworkList({ ...list, cniVersion: '1.0.0', name: 'zzz' });
    expect(e2.calls).toEqual([]);
  });
});

describe('STATUS and VERSION', () => {
  it('STATUS asks each plugin in order and stops at the first error; < 1.1.0 is not asked', async () => {
    const unavailable: PluginFunc = async () => ({ stdout: JSON.stringify({ code: 50, msg: 'not ready' }), exitCode: 1 });
    const { exec, cni } = mk({ a: fake('a', 1), b: unavailable, c: fake('c', 3) });
    const list = mkList([{ type: 'a' }, { type: 'b' }, { type: 'c' }], { cniVersion: '1.1.0' });
    const err = await cni.getStatusNetworkList(list).catch((e) => e);
    expect(err.code).toBe(50);
    expect(exec.calls.map((c) => c.plugin)).toEqual(['a', 'b']);
    expect(exec.calls[0].env).toMatchObject({ CNI_COMMAND: 'STATUS', CNI_CONTAINERID: '', CNI_NETNS: '', CNI_IFNAME: '' });
    expect(await cni.getStatusNetworkList({ ...list, cniVersion: '1.0.0' })).toBe(false);
  });

  it('validateNetworkList / negotiateVersion use each plugin\'s VERSION', async () => {
    const { exec, cni } = mk({ a: fake('a', 1), b: fake('b', 2) });
    const list = mkList([{ type: 'a', capabilities: { mac: true } }, { type: 'b' }], { cniVersion: '1.1.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    await expect(cni.validateNetworkList(list)).rejects.toThrow('plugin b does not support config version "1.1.0"');
    expect(await cni.validateNetworkList({ ...list, cniVersion: '1.0.0' })).toEqual(['mac']);
    expect((await cni.negotiateVersion(list)).cniVersion).toBe('1.0.0');
    expect(JSON.parse(exec.calls[0].stdin)).toEqual({ cniVersion: '1.1.0' });
    expect(exec.calls[0].env).toMatchObject({ CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy' });
    expect(exec.calls.filter((c) => c.plugin === 'a')).toHaveLength(1); // memoised
  });
});

describe('RawExec with stub executables', () => {
  const env = (extra: Record<string, string>) => {
    const e: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...extra };
    return new CniConfig({ path: [stubs], cacheDir: dir, stderr: null, env: e, timeoutMs: 1500 });
  };
  const list = mkList([{ type: 'alpha' }, { type: 'beta' }]);

  it('garbage on stdout is a clear decode error naming the plugin', async () => {
    const err = await env({ STUB_GARBAGE: 'beta' }).addNetworkList(list, rt).catch((e) => e);
    expect(err.message).toMatch(/^plugin type="beta" failed \(add\): plugin beta printed invalid JSON: .*output: "this is not json"/);
    expect(err.code).toBe(6);
  });
  it('a CNI error object is passed through with its code', async () => {
    const err = await env({ STUB_FAIL: 'alpha' }).addNetworkList(list, rt).catch((e) => e);
    expect(err.message).toBe('plugin type="alpha" failed (add): stub alpha refuses; asked to fail');
    expect(err.code).toBe(11);
  });
  it('stderr is captured when the plugin dies without an error object', async () => {
    const err = await env({ STUB_STDERR: 'alpha' }).addNetworkList(list, rt).catch((e) => e);
    expect(err.message).toContain('netplugin failed: "panic: stub alpha exploded"');
    expect(err.cause.stderr).toBe('panic: stub alpha exploded');
  });
  it('a hung plugin is killed after the timeout', async () => {
    const t = Date.now();
    const err = await env({ STUB_SLEEP: 'alpha' }).addNetworkList(list, rt).catch((e) => e);
    expect(err.message).toMatch(/plugin alpha timed out after 1500 ms/);
    expect(Date.now() - t).toBeLessThan(5000);
  });
  it('a non-executable plugin file is a clear error', async () => {
    const d2 = mkdtempSync(path.join(os.tmpdir(), 'flax-noexec-'));
    writeFileSync(path.join(d2, 'alpha'), '#!/bin/sh\n');
    chmodSync(path.join(d2, 'alpha'), 0o644);
    const cni = new CniConfig({ path: [d2], cacheDir: dir, stderr: null, exec: new RawExec() });
    await expect(cni.addNetworkList(list, rt)).rejects.toThrow(/failed to execute plugin alpha .*not executable/);
    rmSync(d2, { recursive: true });
  });
  it('the first CNI_PATH dir that has the plugin wins', async () => {
    const d2 = mkdtempSync(path.join(os.tmpdir(), 'flax-first-'));
    writeFileSync(path.join(d2, 'alpha'), '#!/bin/sh\necho \'{"cniVersion":"1.0.0","ips":[{"address":"192.0.2.1/24"}]}\'\n', { mode: 0o755 });
    const cni = new CniConfig({ path: [d2, stubs], cacheDir: dir, stderr: null });
    expect(await cni.addNetworkList(mkList([{ type: 'alpha' }]), rt)).toMatchObject({ ips: [{ address: '192.0.2.1/24' }] });
    expect(readFileSync(path.join(dir, 'results', 'net-cid1-eth0'), 'utf8')).toContain('192.0.2.1/24');
    rmSync(d2, { recursive: true });
  });
});
