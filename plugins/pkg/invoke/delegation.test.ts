import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CniError } from '../cni/errors';
import type { CmdArgs, PluginFuncs } from '../skel/skel';
import { about } from '../skel/skel';
import { execAdd, execDel } from '../ipam/run-ipam';
import { isFlaxBundle } from './bundle';
import { delegate } from './delegation';
import { RawExec, findInPath } from './plugin-exec';
import { InProcessExec } from './inprocess';
import { processHost } from '../host/process';

const raw = new RawExec();

const dir = mkdtempSync(path.join(tmpdir(), 'flax-ipam-'));
const dir2 = mkdtempSync(path.join(tmpdir(), 'flax-ipam2-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(dir2, { recursive: true, force: true });
});
const capture = path.join(dir, 'capture');

// A foreign IPAM plugin: records env + stdin, answers per verb.
writeFileSync(path.join(dir, 'fake-ipam'), `#!/bin/sh
cat > ${capture}.stdin
env | grep ^CNI_ | sort > ${capture}.env
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.9.0.5/24","gateway":"10.9.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}' ;;
DEL) exit 0 ;;
*) echo '{"cniVersion":"0.4.0","code":11,"msg":"try later","details":"busy"}'; exit 1 ;;
esac
`);
chmodSync(path.join(dir, 'fake-ipam'), 0o755);
writeFileSync(path.join(dir, 'bad-ipam'), '#!/bin/sh\necho not json\nexit 0\n');
chmodSync(path.join(dir, 'bad-ipam'), 0o755);
// Looks like one of our bundles (the in-process path never executes it).
writeFileSync(path.join(dir2, 'ours'), '#!/usr/bin/env node\nvar __imu=1;\nvar __flaxDir=__dirname;\nprocess.exit(99)\n');
chmodSync(path.join(dir2, 'ours'), 0o755);
writeFileSync(path.join(dir2, 'marked'), '#!/usr/bin/env node\n// flax-executable\nprocess.exit(99)\n');
writeFileSync(path.join(dir2, 'launcher'), '#!/bin/sh\n# flax-executable launcher: node with x\nexec node x\n');

const args = (over: Partial<CmdArgs> = {}): CmdArgs => ({
  command: 'ADD', containerId: 'ctr1', netns: '/run/netns/x', ifname: 'eth0', args: 'IgnoreUnknown=1', path: [dir2, dir], stdin: '', host: processHost(), ...over,
});
const conf = JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'bridge', ipam: { type: 'fake-ipam' } });


describe('findInPath', () => {
  it('finds the first match and rejects paths', () => {
    expect(findInPath('fake-ipam', [dir2, dir], 'IPAM plugin')).toBe(path.join(dir, 'fake-ipam'));
    expect(() => findInPath('nope', [dir], 'IPAM plugin')).toThrow(/failed to find plugin "nope"/);
    expect(() => findInPath('nope', [dir], 'IPAM plugin')).toThrow(expect.objectContaining({ code: 7 }));
    expect(() => findInPath('nope', [dir])).toThrow(expect.objectContaining({ code: 5 }));
    expect(() => findInPath('../x', [dir], 'IPAM plugin')).toThrow(CniError);
    expect(() => findInPath('x', [], 'IPAM plugin')).toThrow(/CNI_PATH/);
  });
  it('recognises our bundles', () => {
    expect(isFlaxBundle(path.join(dir2, 'ours'))).toBe(true);
    expect(isFlaxBundle(path.join(dir2, 'marked'))).toBe(true);
    expect(isFlaxBundle(path.join(dir2, 'launcher'))).toBe(true);
    expect(isFlaxBundle(path.join(dir, 'fake-ipam'))).toBe(false);
    expect(isFlaxBundle(path.join(dir, 'missing'))).toBe(false);
  });
  it('recognises names of the self-contained multi-call binary (npm run package / flax install)', () => {
    const pkg = mkdtempSync(path.join(tmpdir(), 'flax-pkg-'));
    const bin = mkdtempSync(path.join(tmpdir(), 'flax-bin-'));
    try {
      writeFileSync(path.join(pkg, 'flax'), '\x7fELF not really');
      writeFileSync(path.join(pkg, 'PACKAGE.json'), JSON.stringify({ executables: ['bridge', 'host-local'] }));
      symlinkSync(path.join(pkg, 'flax'), path.join(bin, 'host-local'));
      symlinkSync(path.join(pkg, 'flax'), path.join(bin, 'static'));
      expect(isFlaxBundle(path.join(bin, 'host-local'))).toBe(true);
      expect(isFlaxBundle(path.join(bin, 'static'))).toBe(false); // not one of its names
      rmSync(path.join(pkg, 'PACKAGE.json'));
      expect(isFlaxBundle(path.join(bin, 'host-local'))).toBe(false);
    } finally {
      rmSync(pkg, { recursive: true, force: true });
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('exec delegation', () => {
  it('passes the whole config on stdin and the same env with CNI_COMMAND', async () => {
    const r = await execAdd(raw, 'fake-ipam', args(), conf, '0.4.0');
    expect(r.ips).toEqual([{ address: '10.9.0.5/24', gateway: '10.9.0.1' }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    expect(readFileSync(`${capture}.stdin`, 'utf8')).toBe(conf);
    expect(readFileSync(`${capture}.env`, 'utf8').trim().split('\n')).toEqual([
      'CNI_ARGS=IgnoreUnknown=1', 'CNI_COMMAND=ADD', 'CNI_CONTAINERID=ctr1', 'CNI_IFNAME=eth0', 'CNI_NETNS=/run/netns/x', `CNI_PATH=${dir2}:${dir}`,
    ]);
    await execDel(raw, 'fake-ipam', args({ command: 'DEL', netns: '' }), conf);
    expect(readFileSync(`${capture}.env`, 'utf8')).toContain('CNI_COMMAND=DEL');
    expect(readFileSync(`${capture}.env`, 'utf8')).toContain('CNI_NETNS=\n');
  });
  it('turns the plugin error into a CniError with its code', async () => {
    const e = (await delegate(raw, 'CHECK', 'fake-ipam', args(), conf).catch((x: unknown) => x)) as CniError;
    expect(e).toBeInstanceOf(CniError);
    expect(e.code).toBe(11);
    expect(e.message).toBe('try later');
    expect(e.details).toBe('busy');
  });
  it('reports garbage output as a decode error', async () => {
    await expect(delegate(raw, 'ADD', 'bad-ipam', args(), conf)).rejects.toMatchObject({ code: 6 });
  });
});

describe('in-process delegation', () => {
  const seen: CmdArgs[] = [];
  const plugin: PluginFuncs = {
    add: async (a) => { seen.push(a); return { cniVersion: '1.0.0', ips: [{ address: '10.9.0.6/24' }] }; },
    del: async (a) => { seen.push(a); },
    check: async () => { throw new CniError(7, 'bad'); },
  };
  it('runs through handle() only when the binary found is our bundle', async () => {
    const exec = new InProcessExec({ ours: { plugin, about: about('ours') }, 'fake-ipam': { plugin, about: about('fake-ipam') } });
    const res = await delegate(exec, 'ADD', 'ours', args(), conf);
    expect(exec.counts).toEqual({ inProcess: 1, exec: 0 });
    expect(res.out).toMatchObject({ cniVersion: '1.0.0', ips: [{ address: '10.9.0.6/24' }] });
    expect(seen[0]).toMatchObject({ command: 'ADD', containerId: 'ctr1', netns: '/run/netns/x', ifname: 'eth0', path: [dir2, dir], stdin: Buffer.from(conf) });
    await expect(delegate(exec, 'CHECK', 'ours', args(), JSON.stringify({ cniVersion: '1.0.0', name: 'n' }))).rejects.toMatchObject({ code: 7, message: 'bad' });
    // handed over but the binary is foreign → exec
    await delegate(exec, 'ADD', 'fake-ipam', args(), conf);
    expect(exec.counts).toEqual({ inProcess: 2, exec: 1 });
  });
  it('a plugin built without an Exec execs every delegate (no registry: what runs in-process is chosen where the plugin is built)', async () => {
    const ours = new InProcessExec({ ours: { plugin, about: about('ours') } });
    await delegate(ours, 'ADD', 'ours', args(), conf);
    expect(ours.counts).toEqual({ inProcess: 1, exec: 0 });
    await expect(delegate(raw, 'ADD', 'ours', args(), conf)).rejects.toMatchObject({ code: 999 }); // exec'd: exits 99
  });
});
