import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cli';
import { UsageError } from '../usage';
import { resolveNetns } from './cnitool';
import type { CliIo } from '../command';
import { runNetns } from './netns';
import { attachmentState, jsonWithBigInts } from './status';
import { runTombstones } from './tombstones';
import type { FirewallDeps } from '../../pkg/nft';
import { MASQ_CHAIN, MASQ_TABLE, iptablesChainName, legacyMasqComment, masqRuleExpr } from '../../pkg/nft/masq';
import { parsePrefix } from '../../pkg/ip';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-cli-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function io(env: NodeJS.ProcessEnv = {}, uid?: number): CliIo & { out: string; err: string } {
  const o = { out: '', err: '', env, ...(uid === undefined ? {} : { uid }), stdout: (s: string) => void (o.out += s), stderr: (s: string) => void (o.err += s) };
  return o;
}

describe('resolveNetns: a name is looked up as cnitool users expect', () => {
  const run = path.join(tmp, 'run');
  const cwd = path.join(tmp, 'cwd');
  mkdirSync(run);
  mkdirSync(cwd);
  writeFileSync(path.join(run, 'pod1'), '');
  writeFileSync(path.join(cwd, 'local'), '');

  it('a path is taken as given (made absolute)', () => {
    expect(resolveNetns('/proc/1/ns/net', 'add', run, cwd)).toBe('/proc/1/ns/net');
    expect(resolveNetns('./x', 'add', run, cwd)).toBe(path.join(cwd, 'x'));
  });
  it('a name is <run dir>/<name> when that exists, else ./<name>', () => {
    expect(resolveNetns('pod1', 'add', run, cwd)).toBe(path.join(run, 'pod1'));
    expect(resolveNetns('local', 'check', run, cwd)).toBe(path.join(cwd, 'local'));
  });
  it('a name found nowhere: ADD/CHECK name both paths tried; DEL uses the pinned path (idempotent)', () => {
    expect(() => resolveNetns('nope', 'add', run, cwd)).toThrow(`netns "nope" not found: tried ${path.join(run, 'nope')} and ${path.join(cwd, 'nope')}`);
    expect(resolveNetns('nope', 'del', run, cwd)).toBe(path.join(run, 'nope'));
  });
});

describe('flax netns (pure parts)', () => {
  it('list of an empty dir says it is empty (stderr: stdout stays a plain list)', () => {
    const dir = mkdtempSync(path.join(tmp, 'ns-'));
    const o = io();
    expect(runNetns('list', [], o, dir)).toBe(0);
    expect(o.out).toBe('');
    expect(o.err).toBe(`no network namespaces in ${dir}\n`);
  });
  it('add/del without a name is a usage error', () => {
    expect(() => runNetns('add', [], io())).toThrow(UsageError);
    expect(() => runNetns('del', [], io())).toThrow(/del needs a <name>/);
  });
  it('del of a missing namespace says so and fails', () => {
    const dir = mkdtempSync(path.join(tmp, 'ns-'));
    const o = io();
    expect(runNetns('del', ['ghost'], o, dir)).toBe(1);
    expect(o.err).toBe(`flax: netns "ghost" does not exist (${path.join(dir, 'ghost')})\n`);
  });
});

describe('flax status (pure parts)', () => {
  it('STATE: stale when the netns is gone, ok when present, - when unknown', () => {
    expect(attachmentState('/run/netns/a', () => true)).toBe('ok');
    expect(attachmentState('/run/netns/a', () => false)).toBe('stale');
    expect(attachmentState('', () => false)).toBe('-');
  });
  it('bigints become exact JSON numbers', () => {
    const j = jsonWithBigInts({ size: 1n << 64n, used: 2, free: 18446744073709551614n, s: 'x' });
    expect(j).toContain('"size": 18446744073709551616');
    expect(j).toContain('"free": 18446744073709551614');
    expect(JSON.parse(j)).toMatchObject({ used: 2, s: 'x' });
    expect(typeof JSON.parse(j).size).toBe('number');
  });
});

describe('flax tombstones (a fake firewall that keeps the chains it is given)', () => {
  const LONG = `long-${'n'.repeat(120)}`;
  /** the masquerade table holds `rules`; iptables-restore input `:CNI-… - [0:0]` creates the chain in its family, `-A POSTROUTING -s … -j CNI-…` its jump */
  function firewall(rules: [string, string, string][], failRestore = false) {
    const chains = new Set<string>();
    const jumps: { family: string; chain: string; src: string }[] = [];
    const restores: string[] = [];
    const nft = (items: object[]) => JSON.stringify({ nftables: items });
    const fw: FirewallDeps = {
      iptablesNft: () => true,
      has: () => true,
      run: async (bin, args, input) => {
        if (bin === 'nft' && args.join(' ') === `-j list table inet ${MASQ_TABLE}`) {
          return { code: 0, stderr: '', stdout: nft(rules.map(([n, id, ip], i) => ({ rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: i + 1, comment: legacyMasqComment(n, id), expr: masqRuleExpr(parsePrefix(ip)) } }))) };
        }
        const natOf = /^-j list table (ip6?) nat$/.exec(args.join(' '));
        if (bin === 'nft' && natOf) {
          const family = natOf[1];
          const proto = family === 'ip6' ? 'ip6' : 'ip';
          return {
            code: 0, stderr: '', stdout: nft([
              ...[...chains].filter((c) => c.split(' ')[0] === family).map((c) => ({ chain: { family, table: 'nat', name: c.split(' ')[1] } })),
              ...jumps.filter((j) => j.family === family).map((j) => ({ rule: { family, table: 'nat', chain: 'POSTROUTING', expr: [{ match: { op: '==', left: { payload: { protocol: proto, field: 'saddr' } }, right: j.src } }, { jump: { target: j.chain } }] } })),
            ]),
          };
        }
        if (bin.endsWith('tables-restore')) {
          if (failRestore) return { code: 1, stdout: '', stderr: 'iptables-restore: line 2 failed' };
          restores.push(`${bin}\n${input}`);
          const family = bin.startsWith('ip6') ? 'ip6' : 'ip';
          for (const m of input!.matchAll(/^:(CNI-\S+) /gm)) chains.add(`${family} ${m[1]}`);
          for (const m of input!.matchAll(/^-A POSTROUTING -s (\S+) -j (CNI-\S+)/gm)) jumps.push({ family, chain: m[2], src: m[1] });
          return { code: 0, stdout: '', stderr: '' };
        }
        throw new Error(`unexpected ${bin} ${args.join(' ')}`);
      },
    };
    return { fw, chains, restores };
  }
  const dirs = { cniConfDir: path.join(tmp, 'no-conf'), cacheDir: path.join(tmp, 'no-cache') };

  it('one line per tombstone written, a summary; a second run writes nothing', async () => {
    const f = firewall([['net', 'a', '10.1.0.5/24'], ['net', 'a', 'fd00::5/64'], ['net', 'b', '10.1.0.6/24']]);
    const o = io();
    expect(await runTombstones(dirs, o, f.fw)).toBe(0);
    expect(o.out).toBe(`wrote net a ${iptablesChainName('net', 'a')} (10.1.0.5, fd00::5)\nwrote net b ${iptablesChainName('net', 'b')} (10.1.0.6)\n`
      + 'wrote 2 tombstone(s), 0 already present, 0 skipped\n');
    expect(o.err).toBe('');
    expect(f.restores.map((r) => r.split('\n')[0]).sort()).toEqual(['ip6tables-restore', 'iptables-restore', 'iptables-restore']);
    const again = io();
    expect(await runTombstones(dirs, again, f.fw)).toBe(0);
    expect(again.out).toBe('wrote 0 tombstone(s), 2 already present, 0 skipped\n');
    expect(f.restores).toHaveLength(3);
  });

  it('--dry-run and --network', async () => {
    const f = firewall([['net', 'a', '10.1.0.5/24'], ['other', 'b', '10.2.0.6/24']]);
    const o = io();
    expect(await runTombstones({ ...dirs, dryRun: true, network: 'other' }, o, f.fw)).toBe(0);
    expect(o.out).toBe(`would write other b ${iptablesChainName('other', 'b')} (10.2.0.6)\nwould write 1 tombstone(s), 0 already present, 0 skipped\n`);
    expect(f.restores).toEqual([]);
  });

  it('a hashed network name: resolved from --cni-conf-dir, else skipped on stderr (exit 0); a failed write exits 1', async () => {
    const conf = mkdtempSync(path.join(tmp, 'conf-'));
    const rules: [string, string, string][] = [[LONG, 'c', '10.3.0.5/24']];
    const skipped = io();
    expect(await runTombstones(dirs, skipped, firewall(rules).fw)).toBe(0);
    expect(skipped.err).toMatch(/^flax tombstones: skipped "name-sha256: [0-9a-f]{16} id: c" \(10\.3\.0\.5\): the network name is hashed/);
    expect(skipped.out).toBe('wrote 0 tombstone(s), 0 already present, 1 skipped\n');
    writeFileSync(path.join(conf, '10-long.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: LONG, plugins: [{ type: 'bridge' }] }));
    const f = firewall(rules);
    const resolved = io();
    expect(await runTombstones({ ...dirs, cniConfDir: conf }, resolved, f.fw)).toBe(0);
    expect(resolved.out).toContain(`wrote ${LONG} c ${iptablesChainName(LONG, 'c')} (10.3.0.5)`);
    const failed = io();
    expect(await runTombstones({ ...dirs, cniConfDir: conf }, failed, firewall(rules, true).fw)).toBe(1);
    expect(failed.err).toBe(`flax tombstones: failed ${LONG} c ${iptablesChainName(LONG, 'c')} (10.3.0.5): iptables-restore failed: iptables-restore: line 2 failed\n`);
    expect(failed.out).toBe('wrote 0 tombstone(s), 0 already present, 0 skipped, 1 failed\n');
  });
});

describe('flax (main): root-only commands, option values, output formats, completion and help', () => {
  afterEach(() => vi.restoreAllMocks());
  /** yargs prints --help and completions with console.log */
  async function logged(argv: string[], o = io()): Promise<{ code: number; log: string; err: string }> {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
    const code = await main(argv, o);
    return { code, log: lines.join('\n') + '\n' + o.out, err: o.err };
  }

  it.each([['gc', '--dry-run'], ['status'], ['tombstones', '--dry-run']])('%s as non-root: exit 1, "must run as root", nothing run', async (...argv) => {
    const o = io({ NETCONFPATH: path.join(tmp, 'no-such-conf') }, 65534);
    expect(await main(argv, o)).toBe(1);
    expect(o.err).toBe(`flax: ${argv[0]}: must run as root (running as uid 65534)\n`);
    expect(o.out).toBe('');
  });

  it('status --cache-dir / --cni-conf-dir that is not a directory: exit 1 naming it', async () => {
    const missing = path.join(tmp, 'nonexistent');
    const o = io({}, 0);
    expect(await main(['status', '--cache-dir', missing], o)).toBe(1);
    expect(o.err).toBe(`flax: status: --cache-dir ${missing}: no such directory\n`);
    expect(o.out).toBe('');
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, '');
    const f = io({}, 0);
    expect(await main(['status', '--netconf-path', file, '--cache-dir', tmp], f)).toBe(1);
    expect(f.err).toBe(`flax: status: --cni-conf-dir ${file}: not a directory\n`);
  });

  it('status: --cni-conf-dir (alias --netconf-path) over NETCONFPATH; -o json and --json', async () => {
    const conf = mkdtempSync(path.join(tmp, 'conf-'));
    const cache = mkdtempSync(path.join(tmp, 'cache-'));
    const env = { NETCONFPATH: path.join(tmp, 'env-conf'), FLAX_CNI_SOCKET: '' };
    for (const argv of [['--cni-conf-dir', conf, '-o', 'json'], ['--netconf-path', conf, '--json']]) {
      const o = io(env, 0);
      expect(await main(['status', '--cache-dir', cache, ...argv], o), o.err).toBe(0);
      expect(JSON.parse(o.out)).toMatchObject({ confDir: conf, cacheDir: cache });
    }
    const fromEnv = io({ ...env, NETCONFPATH: conf }, 0);
    expect(await main(['status', '--cache-dir', cache], fromEnv), fromEnv.err).toBe(0);
    expect(fromEnv.out).toContain(`Networks (${conf})`);
    const both = io(env, 0);
    expect(await main(['status', '--cache-dir', cache, '--json', '-o', 'table'], both)).toBe(2);
    expect(both.err).toMatch(/--json and -o table contradict each other/);
  });

  it('gc --min-age abc: a usage error showing what was typed', async () => {
    const o = io({}, 0);
    expect(await main(['gc', '--min-age', 'abc'], o)).toBe(2);
    expect(o.err).toBe(`flax: gc: --min-age: expected seconds (a number >= 0), got "abc" (see 'flax gc --help')\n`);
  });

  it('netns add bad/name: a usage error (exit 2), nothing created', async () => {
    for (const bad of ['bad/name', '..', '']) {
      expect(() => runNetns('add', [bad], io())).toThrow(UsageError);
      const o = io();
      expect(await main(['netns', 'add', 'flaxt-ok-never', bad], o), bad).toBe(2);
      expect(o.err).toMatch(bad ? /invalid netns name/ : /add needs a <name>|invalid netns name ""/);
    }
  });

  it('version -o json', async () => {
    const o = io();
    expect(await main(['version', '-o', 'json'], o)).toBe(0);
    expect(JSON.parse(o.out)).toMatchObject({ version: expect.any(String), cniVersions: expect.arrayContaining(['1.0.0', '1.1.0']) });
    const t = io();
    expect(await main(['version'], t)).toBe(0);
    expect(t.out).toMatch(/^flax \S+ \(CNI spec 0\.1\.0 - 1\.1\.0\)\n$/);
  });

  it('completion bash|zsh prints a script that asks the flax being completed', async () => {
    for (const shell of ['bash', 'zsh']) {
      const o = io();
      expect(await main(['completion', shell], o)).toBe(0);
      expect(o.out).toContain('--get-yargs-completions');
      expect(o.out).toMatch(shell === 'zsh' ? /^#compdef flax\n[\s\S]*compdef _flax_completions flax/ : /complete -o bashdefault -o default -F _flax_completions flax/);
    }
    const bad = io();
    expect(await main(['completion', 'fish'], bad)).toBe(2);
    expect(bad.err).toMatch(/invalid <shell> "fish": choose one of bash, zsh/);
  });

  it('completions: commands, a command\'s verbs, an option\'s choices, the config-dir flag and its alias', async () => {
    expect((await logged(['--get-yargs-completions', 'flax', ''])).log.split('\n')).toEqual(expect.arrayContaining(['cni', 'gc', 'status', 'sandbox', 'completion']));
    expect((await logged(['--get-yargs-completions', 'flax', 'sandbox', ''])).log.split('\n')).toEqual(expect.arrayContaining(['run', 'exec', 'ls', 'inspect', 'rm']));
    expect((await logged(['--get-yargs-completions', 'flax', 'status', '-o', ''])).log.split('\n')).toEqual(expect.arrayContaining(['table', 'json']));
    expect((await logged(['--get-yargs-completions', 'flax', 'gc', '--'])).log.split('\n')).toEqual(expect.arrayContaining(['--cni-conf-dir', '--netconf-path', '--output', '--json']));
  });

  it('--help: numbers as numbers; sandbox run --help lists run\'s options only', async () => {
    const gc = await logged(['gc', '--help']);
    expect(gc.log).toMatch(/--min-age [^[]*\[number\] \[default: 60\]/);
    expect((await logged(['demo', '--help'])).log).toMatch(/--pods\s+number of pods, 1-50 \(default 3\)\s+\[number\]/);
    const run = (await logged(['sandbox', 'run', '--help'])).log;
    expect(run).toContain('flax sandbox run <name>');
    for (const o of ['--net', '--hostname', '--cni-conf-dir, --netconf-path', '--cni-path', '--cache-dir', '--sandbox-dir']) expect(run).toContain(o);
    for (const o of ['--detach', '--force', '--timeout', '--json', '--output']) expect(run).not.toContain(o);
    const ls = (await logged(['sandbox', 'ls', '--help'])).log;
    expect(ls).toMatch(/-o, --output/);
    expect(ls).not.toContain('--net ');
  });
});
