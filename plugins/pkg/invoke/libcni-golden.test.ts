/**
 * Byte-for-byte comparison with libcni. The golden files were produced by
 * the distribution's libcni (1.1.2) driving the stub plugins
 * (test/fixtures/libcni-golden/regen.sh): every plugin's stdin and CNI_*
 * environment for ADD, CHECK and DEL, the printed ADD result, and the cache
 * file. libcni ≥ 1.2 adds `"netns"` to the cache entry (omitempty), which we
 * write too; it is the only difference from 1.1.2's entry.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CniConfig } from './api';
import { loadConfList } from './conf';
import { RawExec } from './plugin-exec';
import { goMarshalIndent } from './gojson';

const fixtures = path.resolve(__dirname, '../../../test/fixtures');
const golden = path.join(fixtures, 'libcni-golden');
const stubs = path.join(fixtures, 'stub-plugins');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-golden-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('same bytes as libcni for the stub chain alpha > beta > gamma', async () => {
  const rec = path.join(tmp, 'calls');
  const cacheDir = path.join(tmp, 'cache');
  mkdirSync(rec);
  const env: NodeJS.ProcessEnv = { ...process.env, STUB_RECORD_DIR: rec };
  for (const k of Object.keys(env)) if (k.startsWith('CNI_') || (k.startsWith('STUB_') && k !== 'STUB_RECORD_DIR')) delete env[k];
  const cni = new CniConfig({ path: [stubs], cacheDir, exec: new RawExec(), stderr: null, env });
  const list = loadConfList(path.join(golden, 'net.d'), 'golden');
  const rt = {
    containerId: 'golden-cid', netns: '/run/netns/golden-pod', ifName: 'eth0',
    args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'golden<pod>']] as [string, string][],
    capabilityArgs: JSON.parse('{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000,"ingressBurst":2000},"mac":"c2:11:22:33:44:55","ips":["10.9.0.99/24"]}'),
  };
  const result = await cni.addNetworkList(list, rt);
  const cacheFile = readFileSync(path.join(cacheDir, 'results', 'golden-golden-cid-eth0'), 'utf8');
  await cni.checkNetworkList(list, rt);
  await cni.delNetworkList(list, rt);

  it('prints the ADD result as cnitool/libcni does', () => {
    expect(goMarshalIndent(result)).toBe(readFileSync(path.join(golden, 'out/add.stdout'), 'utf8').trimEnd());
  });
  it('writes the same cache entry (plus libcni 1.2\'s netns field)', () => {
    const want = readFileSync(path.join(golden, 'out/cache-after-add'), 'utf8');
    expect(cacheFile).toContain('"networkName":"golden","netns":"/run/netns/golden-pod","cniArgs"');
    expect(cacheFile.replace('"netns":"/run/netns/golden-pod",', '')).toBe(want);
  });
  it('removes the cache entry after DEL', () => {
    expect(readdirSync(path.join(cacheDir, 'results'))).toEqual([]);
  });
  const goldenCalls = readdirSync(path.join(golden, 'out/calls')).sort();
  it('makes the same calls in the same order', () => {
    expect(readdirSync(rec).sort()).toEqual(goldenCalls);
  });
  for (const f of goldenCalls) {
    it(`${f} is identical`, () => {
      let ours = readFileSync(path.join(rec, f), 'utf8');
      if (f.endsWith('.env')) ours = ours.split(stubs).join('@STUBS@');
      expect(ours).toBe(readFileSync(path.join(golden, 'out/calls', f), 'utf8'));
    });
  }
});
