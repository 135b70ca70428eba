import { describe, expect, it } from 'vitest';
import { processHost } from '../host/process';
import { handle, about, type CmdArgs, type PluginFuncs, type Request } from './skel';
import { loadNetConf, NetConfSchema } from '../cni/conf';
import { SUPPORTED_VERSIONS } from '../cni/version';
import * as z from 'zod/mini';

function recorder() {
  const calls: CmdArgs[] = [];
  const Schema = z.extend(NetConfSchema, { mtu: z.optional(z.number().check(z.int(), z.minimum(68), z.maximum(65535))) });
  const p: PluginFuncs = {
    add: async (a) => {
      calls.push(a);
      const c = loadNetConf(a.stdin, Schema, { unsupportedFields: ['bogus'] });
      return { cniVersion: c.cniVersion, interfaces: [{ name: a.ifname, sandbox: a.netns }], ips: [{ interface: 0, address: '10.0.0.2/24' }] };
    },
    del: async (a) => { calls.push(a); loadNetConf(a.stdin, Schema); },
    check: async (a) => { calls.push(a); },
    status: async (a) => { calls.push(a); },
    gc: async (a) => { calls.push(a); },
  };
  return { calls, p };
}
const conf = (v: string | undefined, extra: Record<string, unknown> = {}) => JSON.stringify({ ...(v ? { cniVersion: v } : {}), name: 'net1', type: 'x', ...extra });
const base = (cmd: string, stdin: string, over: Partial<Request> = {}): Request => ({
  command: cmd, containerId: 'c1', netns: '/run/netns/x', ifname: 'eth0', args: '', path: '/opt/cni/bin', stdin, ...over,
});
const run = async (req: Request) => {
  const { p } = recorder();
  const r = await handle(p, about('test'), req, processHost());
  return { ...r, json: r.stdout ? JSON.parse(r.stdout) : undefined };
};

describe('skel.handle', () => {
  it('ADD renders the result in the config version', async () => {
    for (const v of SUPPORTED_VERSIONS) {
      const r = await run(base('ADD', conf(v)));
      expect(r.exitCode).toBe(0);
      expect(r.json.cniVersion).toBe(v);
      if (v < '0.3.0') expect(r.json.ip4.ip).toBe('10.0.0.2/24');
      else expect(r.json.ips[0].address).toBe('10.0.0.2/24');
    }
  });
  it('a config without cniVersion is 0.1.0', async () => {
    const r = await run(base('ADD', conf(undefined)));
    expect(r.json.cniVersion).toBe('0.1.0');
    expect(r.json.ip4).toBeDefined();
  });
  it('VERSION lists every supported version and needs only CNI_COMMAND', async () => {
    const r = await run({ command: 'VERSION', stdin: '' });
    expect(r.exitCode).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
    const r2 = await run({ command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}', netns: 'dummy', ifname: 'dummy', path: 'dummy' });
    expect(r2.json.supportedVersions).toContain('1.0.0');
  });
  it('missing env vars: code 4 naming every one', async () => {
    const r = await run({ command: 'ADD', stdin: conf('1.0.0') });
    expect(r.exitCode).toBe(1);
    expect(r.json.code).toBe(4);
    expect(r.json.msg).toContain('CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH');
    const gc = await run({ command: 'GC', stdin: conf('1.1.0') });
    expect(gc.json.msg).toContain('[CNI_PATH]');
  });
  it('unknown command is code 4', async () => {
    expect((await run(base('FROB', conf('1.0.0')))).json.code).toBe(4);
  });
  it('DEL accepts an empty CNI_NETNS (containerd ctr)', async () => {
    const r = await run(base('DEL', conf('1.0.0'), { netns: '' }));
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('');
  });
  it('ADD with an empty CNI_NETNS is code 4', async () => {
    expect((await run(base('ADD', conf('1.0.0'), { netns: '' }))).json.code).toBe(4);
  });
  it('relative CNI_NETNS is code 4', async () => {
    expect((await run(base('ADD', conf('1.0.0'), { netns: '../x' }))).json.code).toBe(4);
  });
  it('empty container id is code 4 (missing, as the reference); bad characters code 4', async () => {
    const empty = (await run(base('ADD', conf('1.0.0'), { containerId: '' }))).json;
    expect(empty.code).toBe(4);
    expect(empty.msg).toBe('required env variables [CNI_CONTAINERID] missing');
    expect((await run(base('DEL', conf('1.0.0'), { containerId: '' }))).json.code).toBe(4);
    expect((await run(base('ADD', conf('1.0.0'), { containerId: '../../etc' }))).json.code).toBe(4);
  });
  it('bad ifname is code 4', async () => {
    for (const n of ['../eth0', 'a/b', 'x'.repeat(16), '.', 'a b']) expect((await run(base('ADD', conf('1.0.0'), { ifname: n }))).json.code).toBe(4);
  });
  it('malformed JSON is code 6, non-object too', async () => {
    for (const s of ['{', 'null', '[]', '"x"', '']) {
      const r = await run(base('ADD', s));
      expect(r.json.code).toBe(6);
      expect(r.json.cniVersion).toBe('1.1.0');
    }
  });
  it('huge stdin is code 6', async () => {
    expect((await run(base('ADD', conf('1.0.0', { pad: 'x'.repeat(5 << 20) })))).json.code).toBe(6);
  });
  it('unsupported version is code 1 with details', async () => {
    const r = await run(base('ADD', conf('0.9.9')));
    expect(r.json.code).toBe(1);
    expect(r.json.details).toContain('0.9.9');
  });
  it('wrong types are code 7 naming the field; errors carry the config version', async () => {
    const r = await run(base('ADD', conf('1.0.0', { mtu: 'big' })));
    expect(r.json.code).toBe(7);
    expect(r.json.msg).toContain('mtu');
    expect(r.json.cniVersion).toBe('1.0.0');
    const huge = await run(base('ADD', conf('1.0.0', { mtu: 1e12 })));
    expect(huge.json.code).toBe(7);
  });
  it('bad network name is code 7', async () => {
    expect((await run(base('ADD', JSON.stringify({ cniVersion: '1.0.0', name: '../evil', type: 'x' })))).json.code).toBe(7);
    expect((await run(base('ADD', JSON.stringify({ cniVersion: '1.0.0', type: 'x' })))).json.code).toBe(7);
  });
  it('unsupported field is code 2 naming it', async () => {
    const r = await run(base('ADD', conf('1.0.0', { bogus: 1 })));
    expect(r.json.code).toBe(2);
    expect(r.json.msg).toContain('bogus');
  });
  it('CHECK needs 0.4.0, GC and STATUS need 1.1.0', async () => {
    expect((await run(base('CHECK', conf('0.3.1')))).json.code).toBe(1);
    expect((await run(base('CHECK', conf('0.4.0')))).exitCode).toBe(0);
    for (const v of ['GC', 'STATUS']) {
      expect((await run(base(v, conf('1.0.0')))).json.code).toBe(1);
      const ok = await run({ command: v, path: '/x', stdin: conf('1.1.0') });
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout).toBe('');
    }
  });
  it('a plugin crash becomes code 999 on stdout', async () => {
    const p: PluginFuncs = { add: async () => { throw new Error('boom'); }, del: async () => {}, check: async () => {} };
    const r = await handle(p, about('x'), base('ADD', conf('1.0.0')), processHost());
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.0.0', code: 999, msg: 'boom' });
  });
  it('passes env through as CmdArgs', async () => {
    const { p, calls } = recorder();
    const host = processHost({ PATH: '/bin' }, { write: () => true });
    await handle(p, about('t'), base('ADD', conf('1.0.0'), { path: '/a:/b::', args: 'IgnoreUnknown=1' }), host);
    expect(calls[0]).toMatchObject({ command: 'ADD', containerId: 'c1', netns: '/run/netns/x', ifname: 'eth0', path: ['/a', '/b'], args: 'IgnoreUnknown=1' });
    expect(calls[0].host).toBe(host);
  });
  it('an internal error\'s stack goes to the Host\'s stderr when its environment sets FLAX_DEBUG, not to the process\'s', async () => {
    const p: PluginFuncs = { add: async () => { throw new Error('boom'); }, del: async () => {}, check: async () => {} };
    const seen: string[] = [];
    const host = processHost({ FLAX_DEBUG: '1' }, { write: (s) => seen.push(String(s)) });
    await handle(p, about('x'), base('ADD', conf('1.0.0')), host);
    expect(seen.join('')).toMatch(/^Error: boom\n\s+at /);
    seen.length = 0;
    await handle(p, about('x'), base('ADD', conf('1.0.0')), processHost({}, { write: (s) => seen.push(String(s)) }));
    expect(seen).toEqual([]);
  });
  it('prevResult of a bad shape is code 6', async () => {
    const r = await run(base('ADD', conf('1.0.0', { prevResult: { ips: 'x' } })));
    expect(r.json.code).toBe(6);
  });
});
