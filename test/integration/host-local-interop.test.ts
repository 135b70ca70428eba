/**
 * Interoperability with the reference host-local (/usr/lib/cni/host-local,
 * v1.1.1, cniVersion ≤ 1.0.0): one data directory, both binaries.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OURS, REF, netConf, run } from '../lib/host-local';

let dir: string;
const net = () => path.join(dir, 'hlnet');
const reservations = () => readdirSync(net()).filter((f) => /^[0-9a-f]+[.:]/.test(f)).sort();
const DUAL = { ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd00:77::/64' }]] };
const addr = (r: { json: { ips: { address: string }[] } }) => r.json.ips.map((i) => i.address);

beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'flax-hl-interop-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!existsSync(REF))('host-local interop with the reference plugin', () => {
  it.each(['0.4.0', '1.0.0'])('reference ADD → our CHECK/DEL; our ADD → reference CHECK/DEL (%s)', async (v) => {
    const conf = netConf(dir, DUAL, {}, v);
    const r = await run(REF, { command: 'ADD', id: 'ref1', stdin: conf });
    expect(r.code).toBe(0);
    expect(addr(r)).toEqual(['10.77.0.2/24', 'fd00:77::2/64']);
    const o = await run(OURS, { command: 'ADD', id: 'ours1', stdin: conf });
    expect(addr(o)).toEqual(['10.77.0.3/24', 'fd00:77::3/64']); // continues the reference's round robin
    // identical bytes
    expect(readFileSync(path.join(net(), '10.77.0.2'), 'latin1')).toBe('ref1\r\neth0');
    expect(readFileSync(path.join(net(), '10.77.0.3'), 'latin1')).toBe('ours1\r\neth0');
    // and the same mode (the reference's 0644, less the umask)
    const mode = (f: string) => (statSync(path.join(net(), f)).mode & 0o7777).toString(8);
    expect([mode('10.77.0.3'), mode('fd00:77::3')]).toEqual([mode('10.77.0.2'), mode('fd00:77::2')]);
    expect(mode('10.77.0.2')).toBe((0o644 & ~process.umask()).toString(8));
    expect((await run(OURS, { command: 'CHECK', id: 'ref1', stdin: conf })).code).toBe(0);
    expect((await run(REF, { command: 'CHECK', id: 'ours1', stdin: conf })).code).toBe(0);
    // duplicate detection across binaries
    expect((await run(OURS, { command: 'ADD', id: 'ref1', stdin: conf })).json.msg).toMatch(/duplicate allocation is not allowed/);
    expect((await run(REF, { command: 'ADD', id: 'ours1', stdin: conf })).json.msg).toMatch(/duplicate allocation is not allowed/);
    expect((await run(OURS, { command: 'DEL', id: 'ref1', stdin: conf })).code).toBe(0);
    expect((await run(REF, { command: 'DEL', id: 'ours1', stdin: conf })).code).toBe(0);
    expect(reservations()).toEqual([]);
    // the reference can allocate again and ours too, no confusion from our index
    expect(addr(await run(REF, { command: 'ADD', id: 'ref2', stdin: conf }))).toEqual(['10.77.0.4/24', 'fd00:77::4/64']);
    expect(addr(await run(OURS, { command: 'ADD', id: 'ours2', stdin: conf }))).toEqual(['10.77.0.5/24', 'fd00:77::5/64']);
  });

  it('alternating ADDs and DELs by both binaries never hand out an address twice', async () => {
    const conf = netConf(dir, { ranges: [[{ subnet: '10.77.0.0/27' }]] }, {}, '1.0.0');
    const live = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const bin = i % 2 ? OURS : REF;
      const id = `c${i}`;
      const r = await run(bin, { command: 'ADD', id, stdin: conf });
      expect(r.code, r.stdout).toBe(0);
      const a = addr(r)[0];
      expect([...live.values()]).not.toContain(a);
      live.set(id, a);
      if (i % 3 === 2) {
        const victim = [...live.keys()][0];
        const d = await run(i % 2 ? REF : OURS, { command: 'DEL', id: victim, stdin: conf });
        expect(d.code).toBe(0);
        live.delete(victim);
      }
    }
    expect(reservations()).toEqual([...live.values()].map((a) => a.split('/')[0]).sort());
  }, 120_000);

  it('concurrent ADDs by both binaries: all distinct, all recorded; concurrent DELs release everything', async () => {
    const conf = netConf(dir, { ranges: [[{ subnet: '10.77.0.0/26' }]] }, {}, '1.0.0');
    const jobs = Array.from({ length: 40 }, (_, i) => run(i % 2 ? OURS : REF, { command: 'ADD', id: `c${i}`, stdin: conf }));
    const rs = await Promise.all(jobs);
    expect(rs.map((r) => r.code)).toEqual(Array(40).fill(0));
    const addrs = rs.map((r) => addr(r)[0].split('/')[0]);
    expect(new Set(addrs).size).toBe(40);
    expect(reservations()).toEqual([...addrs].sort());
    addrs.forEach((a, i) => expect(readFileSync(path.join(net(), a), 'latin1')).toBe(`c${i}\r\neth0`));
    const dels = await Promise.all(Array.from({ length: 40 }, (_, i) => run(i % 2 ? REF : OURS, { command: 'DEL', id: `c${i}`, stdin: conf })));
    expect(dels.map((r) => r.code)).toEqual(Array(40).fill(0));
    expect(reservations()).toEqual([]);
  }, 120_000);

  it('our GC sweeps reservations the reference made', async () => {
    const conf = netConf(dir, DUAL, {}, '1.0.0');
    await run(REF, { command: 'ADD', id: 'keep', stdin: conf });
    await run(REF, { command: 'ADD', id: 'drop', stdin: conf });
    const gcConf = { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] };
    expect((await run(OURS, { command: 'GC', stdin: gcConf })).code).toBe(0);
    expect(reservations()).toHaveLength(4); // younger than the grace period: kept
    const old = new Date(Date.now() - 60_000);
    for (const f of reservations()) utimesSync(path.join(net(), f), old, old);
    expect((await run(OURS, { command: 'GC', stdin: gcConf })).code).toBe(0);
    expect(reservations()).toEqual(['10.77.0.2', 'fd00:77::2']);
    expect(readFileSync(path.join(net(), '10.77.0.2'), 'latin1')).toBe('keep\r\neth0');
    // the reference still works on the swept directory and does not reuse the swept address first
    expect(addr(await run(REF, { command: 'ADD', id: 'next', stdin: conf }))).toEqual(['10.77.0.4/24', 'fd00:77::4/64']);
  });
});
