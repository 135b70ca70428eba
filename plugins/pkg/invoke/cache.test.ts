import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheFilePath, listAttachments, marshalCache, readCache, unmarshalCache, writeCache, type CachedInfo } from './cache';

let dir: string;
beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'flax-cache-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const conflist = Buffer.from('{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"bridge"}]}\n');
const entry = (over: Partial<CachedInfo> = {}): CachedInfo => ({
  kind: 'cniCacheV1', containerId: 'c1', config: conflist, ifName: 'eth0', networkName: 'net1', netns: '/run/netns/p1',
  cniArgs: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'p<1>']],
  capabilityArgs: { portMappings: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }], bandwidth: { ingressRate: 1 } },
  result: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', mac: '0a:58:0a:f4:00:02', sandbox: '/run/netns/p1' }], ips: [{ interface: 0, address: '10.1.0.2/24', gateway: '10.1.0.1' }], dns: {} },
  ...over,
});

describe('cniCacheV1 format (byte-compatible with libcni json.Marshal(&cachedInfo))', () => {
  it('writes the struct fields in declaration order, maps key-sorted, Go escaping, compact', () => {
    const want = '{"kind":"cniCacheV1","containerId":"c1","config":"' + conflist.toString('base64') + '","ifName":"eth0","networkName":"net1",'
      + '"netns":"/run/netns/p1","cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","p\\u003c1\\u003e"]],'
      + '"capabilityArgs":{"bandwidth":{"ingressRate":1},"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},'
      + '"result":{"cniVersion":"1.0.0","dns":{},"interfaces":[{"mac":"0a:58:0a:f4:00:02","name":"eth0","sandbox":"/run/netns/p1"}],"ips":[{"address":"10.1.0.2/24","gateway":"10.1.0.1","interface":0}]}}';
    expect(marshalCache(entry())).toBe(want);
  });

  it('omits empty netns, cniArgs, capabilityArgs and result (omitempty)', () => {
    expect(marshalCache(entry({ netns: '', cniArgs: [], capabilityArgs: {}, result: undefined })))
      .toBe(`{"kind":"cniCacheV1","containerId":"c1","config":"${conflist.toString('base64')}","ifName":"eth0","networkName":"net1"}`);
  });

  it('round-trips', () => {
    const c = entry();
    const back = unmarshalCache(marshalCache(c))!;
    expect(back.config.equals(conflist)).toBe(true);
    expect({ ...back, config: null }).toEqual({ ...c, config: null });
  });

  it('file <dir>/results/<net>-<cid>-<if>, dir 0700, file 0600; atomic write', () => {
    const f = writeCache(dir, entry());
    expect(f).toBe(path.join(dir, 'results', 'net1-c1-eth0'));
    expect(statSync(path.join(dir, 'results')).mode & 0o777).toBe(0o700);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(f, 'utf8')).toBe(marshalCache(entry()));
    expect(() => cacheFilePath(dir, 'n', '', 'eth0')).toThrow(/container ID/);
  });

  it('reads libcni v1 entries, the legacy bare-result format, and reports corrupt files', () => {
    writeCache(dir, entry());
    expect(readCache(dir, 'net1', 'c1', 'eth0').kind).toBe('v1');
    writeFileSync(path.join(dir, 'results', 'net1-c2-eth0'), '{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.3/24"}]}');
    expect(readCache(dir, 'net1', 'c2', 'eth0')).toMatchObject({ kind: 'legacy' });
    writeFileSync(path.join(dir, 'results', 'net1-c3-eth0'), '{nope');
    expect(readCache(dir, 'net1', 'c3', 'eth0').kind).toBe('corrupt');
    expect(readCache(dir, 'net1', 'c4', 'eth0').kind).toBe('none');
  });

  it('listAttachments: v1 entries only, sorted, optionally one container', () => {
    writeCache(dir, entry({ containerId: 'b', networkName: 'n2' }));
    writeCache(dir, entry({ containerId: 'a' }));
    writeCache(dir, entry({ containerId: 'a', ifName: 'net1' }));
    writeFileSync(path.join(dir, 'results', 'junk'), 'x');
    mkdirSync(path.join(dir, 'results', 'subdir'));
    expect(listAttachments(dir).map((a) => `${a.network}/${a.containerId}/${a.ifName}`)).toEqual(['n2/b/eth0', 'net1/a/eth0', 'net1/a/net1']);
    expect(listAttachments(dir, 'a').map((a) => a.ifName)).toEqual(['eth0', 'net1']);
    expect(listAttachments(path.join(dir, 'none'))).toEqual([]);
  });
});
