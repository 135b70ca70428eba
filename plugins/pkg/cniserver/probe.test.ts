import { describe, expect, it } from 'vitest';
import { servingLine } from '../../cli/commands/status';
import { clientSocket, parseReply, statusRequest } from './probe';

const reply = (code: number, out: string, err = '') => {
  const h = Buffer.alloc(32);
  h.write('FLAXCNR1', 0, 'latin1');
  h.writeInt32LE(code, 8);
  h.writeBigUInt64LE(BigInt(Buffer.byteLength(out)), 16);
  h.writeBigUInt64LE(BigInt(Buffer.byteLength(err)), 24);
  return Buffer.concat([h, Buffer.from(out), Buffer.from(err)]);
};

describe('CNI server probe (flax status)', () => {
  it('the request is the client\'s 40-byte header + the name ".status", no env, stdin or fds', () => {
    const r = statusRequest();
    expect(r.length).toBe(40 + 7);
    expect(r.toString('latin1', 0, 8)).toBe('FLAXCNI1');
    expect(r.readUInt32LE(8)).toBe(7); // name_len
    expect([r.readUInt32LE(12), Number(r.readBigUInt64LE(16)), r.readInt32LE(24), r.readUInt32LE(28), r.readUInt32LE(32)]).toEqual([0, 0, 0, 0, 0]);
    expect(r.toString('utf8', 40)).toBe('.status');
  });

  it('parses a whole reply; a cut one, a longer one or a wrong magic is null', () => {
    expect(parseReply(reply(0, '{"pid":1}\n', 'é'))).toEqual({ exitCode: 0, stdout: '{"pid":1}\n', stderr: 'é' });
    expect(parseReply(reply(1, 'x'))).toMatchObject({ exitCode: 1 });
    const whole = reply(0, 'abc');
    expect(parseReply(whole.subarray(0, whole.length - 1))).toBeNull();
    expect(parseReply(Buffer.concat([whole, Buffer.from('z')]))).toBeNull();
    expect(parseReply(Buffer.concat([Buffer.from('FLAXCNR2'), whole.subarray(8)]))).toBeNull();
    expect(parseReply(Buffer.alloc(0))).toBeNull();
  });

  it('the socket is the client\'s: FLAX_CNI_SOCKET (even empty), else /run/flax/cni.sock', () => {
    expect(clientSocket({})).toBe('/run/flax/cni.sock');
    expect(clientSocket({ FLAX_CNI_SOCKET: '/x.sock' })).toBe('/x.sock');
    expect(clientSocket({ FLAX_CNI_SOCKET: '' })).toBe('');
  });

  it('one line: served by flaxd with its counts, or standalone and why', () => {
    const info = { pid: 42, socket: '/s', since: 1_000_000, served: 7, failed: 1, refused: 0, deferred: 0, workers: 2, latency: {} };
    expect(servingLine({ served: true, socket: '/s', info }, 1_000_000 + 3_725_000)).toBe('served by flaxd (pid 42, up 1h2m, 2 workers): 7 calls answered, 1 with an error, 0 refused');
    expect(servingLine({ served: true, socket: '/s', info: { ...info, workers: 1 } }, 1_000_000 + 65_000)).toMatch(/up 1m5s, 1 worker\)/);
    expect(servingLine({ served: false, socket: '/s', why: 'no socket at /s' })).toBe('standalone plugins: no socket at /s');
    expect(servingLine({ served: true, socket: '/s', info: { ...info, deferred: 3 } }, 1_000_000)).toMatch(/0 refused, 3 handed to the standalone plugin \(callers in another mount namespace\)$/);
  });
});

describe('the names the static client stands in for', () => {
  it('are what the server serves (build.mjs and package.mjs link them to the client)', async () => {
    const { servedPlugins } = await import('../../suite');
    // @ts-expect-error an .mjs build script without types
    const { CNI_CLIENT_NAMES } = await import('../../../scripts/cni-worker-bundle.mjs');
    expect([...CNI_CLIENT_NAMES].sort()).toEqual(Object.keys(servedPlugins()).sort());
  });

  it('are the names the client answers VERSION for itself (native/cniclient plugins[])', async () => {
    const { readFileSync } = await import('node:fs');
    // @ts-expect-error an .mjs build script without types
    const { CNI_CLIENT_NAMES } = await import('../../../scripts/cni-worker-bundle.mjs');
    const src = readFileSync(new URL('../../../native/cniclient/cniclient.c', import.meta.url), 'utf8');
    const list = /static const char \*const plugins\[\] = \{([^}]*)\};/.exec(src)?.[1];
    expect(list, 'plugins[] in cniclient.c').toBeDefined();
    expect([...list!.matchAll(/"([^"]+)"/g)].map((m) => m[1]).sort()).toEqual([...CNI_CLIENT_NAMES].sort());
  });
});
