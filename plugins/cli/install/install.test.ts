import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkInstall } from '../commands/install';
import { UsageError } from '../usage';
import { BRIDGE_CONFLIST, checkConflist, conflistFileName, FLANNEL_CONFLIST } from './conflists';

const root = path.resolve(__dirname, '../../..');

describe('install conflists', () => {
  it('--network bridge is conf/10-flax-bridge.conflist', () => {
    expect(BRIDGE_CONFLIST).toEqual(JSON.parse(readFileSync(path.join(root, 'conf/10-flax-bridge.conflist'), 'utf8')));
  });
  it('--network flannel is kube-flannel\'s cni-conf.json: cbr0, 0.3.1, flannel delegate + portmap', () => {
    expect(FLANNEL_CONFLIST).toEqual({
      name: 'cbr0', cniVersion: '0.3.1',
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
  });
});
