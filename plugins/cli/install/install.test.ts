import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkInstall, runInstall } from '../commands/install';
import type { FirewallDeps } from '../../pkg/nft';
import { MASQ_CHAIN, MASQ_TABLE, masqComment, masqRuleExpr } from '../../pkg/nft/masq';
import { parsePrefix } from '../../pkg/ip';
import { UsageError } from '../usage';
import { BRIDGE_CONFLIST, checkConflist, conflistFileName, FLANNEL_CONFLIST } from './conflists';

const root = path.resolve(__dirname, '../../..');

describe('install conflists', () => {
  it('--network bridge is conf/10-flax-bridge.conflist', () => {
    expect(BRIDGE_CONFLIST).toEqual(JSON.parse(readFileSync(path.join(root, 'conf/10-flax-bridge.conflist'), 'utf8')));
  });
  it('--network flannel is kube-flannel\'s cni-conf.json (cbr0, flannel delegate + portmap), at 1.0.0 with cniVersions', () => {
    expect(FLANNEL_CONFLIST).toEqual({
      name: 'cbr0', cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'],
      plugins: [{ type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } }, { type: 'portmap', capabilities: { portMappings: true } }],
    });
  });
  it('checks a --conflist before anything is written', () => {
    expect(checkConflist('{"name":"n","plugins":[{"type":"bridge"}]}', 'f')).toBe('n');
    for (const bad of ['not json', '{"plugins":[{"type":"x"}]}', '{"name":"n","plugins":[]}', '{"name":"n","plugins":[{}]}', '[]']) {
      expect(() => checkConflist(bad, 'f'), bad).toThrow(UsageError);
    }
  });
  it('names an installed conflist after its file, or 10-<network>.conflist', () => {
    expect(conflistFileName('/x/20-a.conflist', 'a')).toBe('20-a.conflist');
    expect(conflistFileName('/etc/kube-flannel/cni-conf.json', 'cbr0')).toBe('10-cbr0.conflist');
  });
});

describe('flax install usage', () => {
  it('rejects contradictory options', () => {
    expect(() => checkInstall({ conflist: 'a', network: 'bridge' })).toThrow(/exclude/);
    expect(() => checkInstall({ uninstall: true, network: 'bridge' })).toThrow(/--uninstall/);
    expect(() => checkInstall({ confName: 'x.conflist' })).toThrow(/needs --conflist/);
    expect(() => checkInstall({ network: 'bridge', confName: '../x.conflist' })).toThrow(/--conf-name/);
    expect(() => checkInstall({ network: 'bridge', confName: 'x.txt' })).toThrow(/--conf-name/);
    expect(() => checkInstall({ network: 'flannel', confName: '10-flannel.conflist', force: true })).not.toThrow();
    expect(() => checkInstall({ uninstall: true, force: true })).not.toThrow();
    expect(() => checkInstall({ uninstall: true, cniConfDir: '/x', cacheDir: '/y' })).not.toThrow();
    expect(() => checkInstall({ network: 'bridge', cacheDir: '/y' })).toThrow(/--cache-dir is for --uninstall/);
  });
});

describe('flax install --uninstall writes the tombstones first (fake firewall)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-uninstall-unit-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  /** a bin dir as install leaves it: one link listed in the manifest */
  function installedBin(): string {
    const bin = mkdtempSync(path.join(tmp, 'bin-'));
    mkdirSync(path.join(bin, '.flax/0123456789abcdef'), { recursive: true });
    writeFileSync(path.join(bin, '.flax/0123456789abcdef/flax'), '');
    symlinkSync('.flax/0123456789abcdef/flax', path.join(bin, 'flax'));
    writeFileSync(path.join(bin, '.flax/install.json'), JSON.stringify({
      format: 1, current: '0123456789abcdef', versions: ['0123456789abcdef'], links: { [path.join(bin, 'flax')]: '.flax/0123456789abcdef/flax' }, files: {}, replaced: {},
    }));
    return bin;
  }
  /** one masquerade rule, no reference chain; iptables-restore answers `code` */
  const fw = (code: number, restores: string[] = []): FirewallDeps => ({
    iptablesNft: () => true,
    has: () => true,
    run: async (bin, args, input) => {
      if (bin === 'nft' && args[2] === 'table') {
        const rule = { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 1, comment: masqComment('net', 'eth0', 'ctr'), expr: masqRuleExpr(parsePrefix('10.1.0.5/24')) };
        return { code: 0, stderr: '', stdout: JSON.stringify({ nftables: [{ rule }] }) };
      }
      if (bin === 'iptables-restore') restores.push(input!);
      return { code: bin === 'iptables-restore' ? code : 0, stdout: bin === 'nft' ? '{"nftables":[]}' : '', stderr: code ? 'iptables-restore: line 2 failed' : '' };
    },
  });
  const io = () => {
    const o = { out: '', err: '', env: {}, stdout: (s: string) => void (o.out += s), stderr: (s: string) => void (o.err += s) };
    return o;
  };
  const args = (bin: string, force = false) => ({ uninstall: true, cniBinDir: bin, cniConfDir: path.join(tmp, 'no-conf'), cacheDir: path.join(tmp, 'no-cache'), force });

  it('reports how many it wrote, then uninstalls', async () => {
    const bin = installedBin();
    const o = io();
    const restores: string[] = [];
    expect(await runInstall(args(bin), o, fw(0, restores))).toBe(0);
    expect(restores).toHaveLength(1);
    expect(o.out.split('\n')[0]).toBe('flax install: wrote 1 tombstone(s), 0 already present, 0 skipped (iptables chains the reference plugins\' DEL needs)');
    expect(o.out).toContain(`removed ${path.join(bin, 'flax')}`);
    expect(existsSync(path.join(bin, '.flax'))).toBe(false);
  });

  it('a tombstone that cannot be written stops the uninstall (exit 1, nothing removed); --force uninstalls anyway', async () => {
    const bin = installedBin();
    const o = io();
    expect(await runInstall(args(bin), o, fw(1))).toBe(1);
    expect(o.err).toContain('flax install: tombstones: failed net ctr CNI-');
    expect(o.err).toMatch(/flax install: 1 tombstone\(s\) could not be written: after uninstall the reference plugins' DEL would fail for those pods; nothing was uninstalled \(re-run, or pass --force\)\n$/);
    expect(lstatSync(path.join(bin, 'flax')).isSymbolicLink()).toBe(true);
    expect(existsSync(path.join(bin, '.flax/install.json'))).toBe(true);
    const forced = io();
    expect(await runInstall(args(bin, true), forced, fw(1))).toBe(0);
    expect(forced.err).toContain('uninstalling anyway (--force)');
    expect(existsSync(path.join(bin, 'flax'))).toBe(false);
  });

  it('nothing installed: no tombstones are written', async () => {
    const o = io();
    const restores: string[] = [];
    expect(await runInstall(args(mkdtempSync(path.join(tmp, 'empty-'))), o, fw(0, restores))).toBe(0);
    expect(o.out).toMatch(/^flax install: nothing to uninstall/);
    expect(restores).toEqual([]);
  });
});
