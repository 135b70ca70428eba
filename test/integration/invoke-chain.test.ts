/**
 * The real chain loopback > bridge > host-local driven through the invoke
 * library, in throwaway namespaces: a "node" netns where the plugins run
 * (via nsenter), pod netns attached to it. Runs with the reference plugins
 * (/usr/lib/cni) and with flax's (dist/bin) when they are built.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { confListFromFile } from '../../plugins/pkg/invoke/conf';
import { listAttachments } from '../../plugins/pkg/invoke/cache';
import { RawExec } from '../../plugins/pkg/invoke/plugin-exec';
import { CniConfig } from '../../plugins/pkg/invoke/api';
import { createTestNetns, destroyTestNetns, execIn, ipJson } from '../lib/netns';

const root = path.resolve(__dirname, '../..');
const sets = [
  { name: 'reference', dir: '/usr/lib/cni', version: '1.0.0' },
  { name: 'flax', dir: path.join(root, 'dist/bin'), version: '1.1.0' },
].filter((s) => ['loopback', 'bridge', 'host-local'].every((p) => existsSync(path.join(s.dir, p))));

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot || sets.length === 0).each(sets)('chain through the library: $name plugins', (set) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-chain-'));
  const [node, pod1, pod2] = createTestNetns(3);
  afterAll(() => {
    destroyTestNetns([pod1, pod2, node]);
    rmSync(tmp, { recursive: true, force: true });
  });
  const dataDir = path.join(tmp, 'ipam');
  const conf = path.join(tmp, '10-chain.conflist');
  writeFileSync(conf, JSON.stringify({
    cniVersion: set.version, name: 'chain',
    plugins: [
      { type: 'loopback' },
      { type: 'bridge', bridge: 'flaxt0', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.251.0.0/24' }]], dataDir } },
    ],
  }));
  const list = confListFromFile(conf);
  const cacheDir = path.join(tmp, 'cache');
  const cni = new CniConfig({ path: [set.dir], cacheDir, stderr: null, exec: new RawExec({}, ['nsenter', `--net=${node}`, '--']) });
  const rt1 = { containerId: 'pod1', netns: pod1, ifName: 'eth0' };
  const rt2 = { containerId: 'pod2', netns: pod2, ifName: 'eth0' };

  it('ADD attaches both pods: addresses in the pods, cache entries, host-local files', async () => {
    const r1 = await cni.addNetworkList(list, rt1);
    const r2 = await cni.addNetworkList(list, rt2);
    expect(r1.cniVersion).toBe(set.version);
    const ip1 = (r1.ips as { address: string }[])[0].address;
    const ip2 = (r2.ips as { address: string }[])[0].address;
    expect([ip1, ip2]).toEqual(['10.251.0.2/24', '10.251.0.3/24']);
    const addrs = ipJson<{ addr_info: { local: string }[] }[]>(pod1, ['addr', 'show', 'eth0'])[0].addr_info.map((a) => a.local);
    expect(addrs).toContain('10.251.0.2');
    expect(listAttachments(cacheDir).map((a) => a.containerId)).toEqual(['pod1', 'pod2']);
    expect(readdirSync(path.join(dataDir, 'chain')).filter((f) => f.startsWith('10.'))).toEqual(['10.251.0.2', '10.251.0.3']);
    execIn(pod1, 'ping', ['-c1', '-W2', '10.251.0.3']);
  });

  it('CHECK passes with the cached result', async () => {
    await cni.checkNetworkList(list, rt1);
  });

  it('GC with pod1 valid DELs pod2 only (veth gone, IP released, cache entry removed)', async () => {
    const rep = await cni.gcNetworkList(list, [{ containerID: 'pod1', ifname: 'eth0' }]);
    expect(rep.deleted.map((a) => a.containerId)).toEqual(['pod2']);
    expect(execIn(pod2, 'ip', ['-o', 'link', 'show'])).not.toContain('eth0');
    expect(readdirSync(path.join(dataDir, 'chain')).filter((f) => f.startsWith('10.'))).toEqual(['10.251.0.2']);
    expect(listAttachments(cacheDir).map((a) => a.containerId)).toEqual(['pod1']);
  });

  it('DEL removes pod1 and is idempotent; nothing is left', async () => {
    await cni.delNetworkList(list, rt1);
    await cni.delNetworkList(list, rt1);
    expect(readdirSync(path.join(dataDir, 'chain')).filter((f) => f.startsWith('10.'))).toEqual([]);
    expect(listAttachments(cacheDir)).toEqual([]);
    expect(execIn(node, 'ip', ['-o', 'link', 'show', 'type', 'veth'])).toBe('');
  });
});
