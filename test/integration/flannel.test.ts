/**
 * The flannel meta-plugin, black-box through dist/bin/flannel in throwaway
 * namespaces: subnet.env → delegate config file → bridge/host-local (ours
 * in-process, or the reference exec'd), the file's lifecycle, CHECK,
 * STATUS, GC and the errors.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createTestNetns, destroyTestNetns, netnsTest } from '../lib/netns';
import { REF_BIN, cni, ours, requireBuilt, type CniCall } from '../lib/cni';
import { linkDetail, netnsState, ping, podView, reservations } from '../lib/state';

const BIN = ours('flannel');
let tmp: string;
beforeAll(() => {
  requireBuilt('flannel', 'bridge', 'host-local');
  tmp = mkdtempSync(path.join(tmpdir(), 'flax-flannel-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';
let n = 0;
function setup(env: string | null = ENV, extra: Record<string, unknown> = {}) {
  const dir = path.join(tmp, `n${++n}`);
  const subnetFile = path.join(dir, 'subnet.env');
  const dataDir = path.join(dir, 'flannel');
  const ipamDir = path.join(dir, 'ipam');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (env !== null) writeFileSync(subnetFile, env);
  const conf = { cniVersion: '1.1.0', name: 'flnet', type: 'flannel', subnetFile, dataDir, delegate: { bridge: 'flaxfl0', hairpinMode: true }, ipam: { dataDir: ipamDir }, ...extra };
  return { conf, subnetFile, dataDir, ipamDir };
}

interface Fx { host: string; pod: string }
const it = netnsTest.extend<Fx>({ host: async ({ ns }, use) => use(ns), pod: async ({ ns2 }, use) => use(ns2) });
const call = (f: Fx, command: string, stdin: object, over: Partial<CniCall> = {}) =>
  cni(BIN, { command, containerId: 'ctrF', netns: f.pod, ifname: 'eth0', stdin, hostNs: f.host, ...over });

describe('flannel delegating to bridge + host-local', () => {
  it('ADD renders and keeps the delegate config, the pod reaches its gateway; CHECK; DEL removes everything', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, dataDir, ipamDir } = setup();
    const r = call(f, 'ADD', conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json.ips).toEqual([{ interface: 2, address: '10.244.1.2/24', gateway: '10.244.1.1' }]);
    expect(r.json.routes).toEqual([{ dst: '10.244.0.0/16' }]);
    const file = path.join(dataDir, 'ctrF');
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toBe(
      `{"bridge":"flaxfl0","cniVersion":"1.1.0","hairpinMode":true,"ipMasq":false,"ipam":{"dataDir":"${ipamDir}","ranges":[[{"subnet":"10.244.1.0/24"}]],`
      + '"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1450,"name":"flnet","type":"bridge"}',
    );
    expect(linkDetail(f.host, 'flaxfl0').mtu).toBe(1450);
    expect(podView(f.pod, 'eth0').routes).toContain('10.244.0.0/16 via 10.244.1.1');
    expect(ping(f.pod, '10.244.1.1')).toBe(true);
    expect(netnsState(f.host).masqRules).toEqual([]); // FLANNEL_IPMASQ=true: the agent masquerades, not bridge
    expect(call(f, 'CHECK', { ...conf, prevResult: r.json }).code).toBe(0);
    const d = call(f, 'DEL', conf);
    expect(d.code, d.stdout).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(reservations(ipamDir, 'flnet')).toEqual([]);
    expect(netnsState(f.pod).links).toEqual([]);
    expect(call(f, 'DEL', conf).code).toBe(0); // idempotent, no file
    expect(call(f, 'CHECK', { ...conf, prevResult: r.json }).json.code).toBe(3);
  });

  it('a failed ADD leaves no file, and never replaces the file of a live pod of the same id', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, dataDir } = setup();
    const bad = call(f, 'ADD', conf, { args: 'IP=notanip' });
    expect(bad.json.code).toBe(4);
    expect(existsSync(path.join(dataDir, 'ctrF'))).toBe(false);
    expect(call(f, 'ADD', conf).code).toBe(0);
    const before = readFileSync(path.join(dataDir, 'ctrF'), 'utf8');
    const [podB] = createTestNetns(1);
    try {
      const dup = call(f, 'ADD', { ...conf, delegate: { bridge: 'flaxfl0', hairpinMode: false } }, { netns: podB });
      expect(dup.code).toBe(1);
      expect(readFileSync(path.join(dataDir, 'ctrF'), 'utf8')).toBe(before);
    } finally {
      destroyTestNetns([podB]);
    }
    expect(call(f, 'DEL', conf).code).toBe(0);
  });

  it('subnet.env missing: ADD is "try again later" (11) and writes nothing; STATUS says the agent has not written it (50)', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, dataDir, subnetFile } = setup(null);
    const r = call(f, 'ADD', conf);
    expect(r.json.code).toBe(11);
    expect(r.json.msg).toBe(`subnet file ${subnetFile} does not exist: the flannel agent (flaxd or flanneld) has not written it yet`);
    expect(existsSync(dataDir)).toBe(false);
    expect(netnsState(f.host).links).toEqual([]);
    const s = cni(BIN, { command: 'STATUS', stdin: conf });
    expect(s.json.code).toBe(50);
    expect(s.json.msg).toMatch(/has not written it yet/);
    writeFileSync(subnetFile, ENV.replace('FLANNEL_MTU=1450\n', ''));
    expect(call(f, 'ADD', conf).json.msg).toMatch(/is missing FLANNEL_MTU/);
    expect(cni(BIN, { command: 'STATUS', stdin: conf }).json.code).toBe(50);
    writeFileSync(subnetFile, ENV);
    expect(cni(BIN, { command: 'STATUS', stdin: conf }).code).toBe(0);
  });

  it('GC removes the files of containers not in the valid list (older than the grace period) and forwards GC', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, dataDir, ipamDir } = setup();
    expect(call(f, 'ADD', conf).code).toBe(0);
    // a container that died without DEL: its file and its reservation
    writeFileSync(path.join(dataDir, 'gone'), '{"type":"bridge"}');
    const old = Date.now() / 1000 - 600;
    utimesSync(path.join(dataDir, 'gone'), old, old);
    writeFileSync(path.join(ipamDir, 'flnet', '10.244.1.77'), 'gone\r\neth0');
    utimesSync(path.join(ipamDir, 'flnet', '10.244.1.77'), old, old);
    writeFileSync(path.join(dataDir, 'young'), '{"type":"bridge"}');
    const g = cni(BIN, { command: 'GC', stdin: { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'ctrF', ifname: 'eth0' }] } });
    expect(g.code, g.stdout).toBe(0);
    expect(readdirSync(dataDir).sort()).toEqual(['ctrF', 'young']);
    expect(reservations(ipamDir, 'flnet')).toEqual(['10.244.1.2']);
    expect(call(f, 'DEL', conf).code).toBe(0);
  });

  it('delegates to the reference bridge when CNI_PATH finds it (exec path)', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, dataDir, ipamDir } = setup(ENV, { cniVersion: '1.0.0' });
    const r = call(f, 'ADD', conf, { path: REF_BIN });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json.ips[0].address).toBe('10.244.1.2/24');
    expect(ping(f.pod, '10.244.1.1')).toBe(true);
    expect(call(f, 'DEL', conf, { path: REF_BIN }).code).toBe(0);
    expect(existsSync(path.join(dataDir, 'ctrF'))).toBe(false);
    expect(reservations(ipamDir, 'flnet')).toEqual([]);
  });
});
