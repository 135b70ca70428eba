/**
 * nft through libnftables in process (the addon's nftRun, used by pkg/nft's
 * runner instead of one `nft` process per call): the same sequence of
 * commands in two throwaway netns, one through nftRun, one through the
 * `nft` command, gives the same exit codes, stdout and stderr byte for
 * byte; and it acts in the calling thread's netns only.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { ours, requireBuilt } from '../lib/cni';

let lib: string, cli: string;
beforeAll(() => {
  requireBuilt('flax.node');
  [lib, cli] = createTestNetns(2);
});
afterAll(() => destroyTestNetns([lib, cli].filter(Boolean)));

const CMDS: string[][] = [
  ['-j', 'list', 'table', 'inet', 'nope'],
  ['-j', JSON.stringify({ nftables: [{ add: { table: { family: 'inet', name: 't1' } } }, { add: { chain: { family: 'inet', table: 't1', name: 'c', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } } }] })],
  ['-j', JSON.stringify({ nftables: [{ add: { rule: { family: 'inet', table: 't1', chain: 'c', comment: 'name: n id: x', expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '10.1.0.2' } }, { masquerade: null }] } } }] })],
  ['-j', 'list', 'ruleset'],
  ['-j', '--echo', 'add table ip tx; add chain ip tx c; add rule ip tx c ip saddr 1.2.3.4 counter'],
  ['delete', 'table', 'ip', 'tx'],
  ['delete', 'table', 'ip', 'tx'],
  ['-j', '{"nftables": [{"bogus": 1}]}'],
  ['-j', 'list', 'table', 'inet', 't1'],
];

describe('nftRun (libnftables in process)', () => {
  it('answers every command as the nft command does, in the calling thread\'s netns', () => {
    const script = `const m={exports:{}};process.dlopen(m,${JSON.stringify(ours('flax.node'))});
      process.stdout.write(JSON.stringify(${JSON.stringify(CMDS)}.map((a)=>m.exports.nftRun(a))));`;
    const r = spawnSync('nsenter', [`--net=${lib}`, '--', process.execPath, '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const viaLib = JSON.parse(r.stdout) as Array<{ code: number; stdout: string; stderr: string }>;
    const viaCli = CMDS.map((a) => {
      const c = spawnSync('nsenter', [`--net=${cli}`, '--', 'nft', ...a], { encoding: 'utf8' });
      return { code: c.status, stdout: c.stdout, stderr: c.stderr };
    });
    expect(viaLib).toEqual(viaCli);
    expect(viaLib[0].code).toBe(1); // the cases do include failures
    expect(viaLib[3].stdout).toContain('"comment": "name: n id: x"');
    // nothing landed in the test process's own netns
    expect(spawnSync('nft', ['list', 'table', 'inet', 't1'], { encoding: 'utf8' }).status).not.toBe(0);
  });

  it('refuses an option it does not handle (the runner then runs the command)', () => {
    const script = `const m={exports:{}};process.dlopen(m,${JSON.stringify(ours('flax.node'))});
      try { m.exports.nftRun(['-a', 'list', 'ruleset']); } catch (e) { process.stdout.write(e.code + ' ' + e.message); }`;
    const r = spawnSync('nsenter', [`--net=${lib}`, '--', process.execPath, '-e', script], { encoding: 'utf8' });
    expect(r.stdout).toBe('ENOTSUP nftRun: option -a is not handled');
  });
});
