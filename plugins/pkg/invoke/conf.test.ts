import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { confListFromBytes, jsonSyntaxError, loadConfList, loadConfigs, NotFoundError } from './conf';

let dir: string;
beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'flax-conf-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const w = (name: string, v: unknown) => writeFileSync(path.join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
const list = (name: string, plugins: unknown[] = [{ type: 'bridge' }], extra: object = {}) => ({ cniVersion: '1.0.0', name, plugins, ...extra });

describe('loadConfigs', () => {
  it('loads conflists in sorted order first, then legacy .conf/.json files together in sorted order', () => {
    w('20-a.conflist', list('a'));
    w('10-b.conflist', list('b'));
    w('05-x.conf', { cniVersion: '0.4.0', name: 'x', type: 'bridge' });
    w('01-y.json', { cniVersion: '0.3.1', name: 'y', type: 'ptp' });
    w('99-ignored.txt', list('z'));
    mkdirSync(path.join(dir, 'dir.conflist'));
    const { lists, errors } = loadConfigs(dir);
    expect(errors).toEqual([]);
    expect(lists.map((l) => l.name)).toEqual(['b', 'a', 'y', 'x']);
  });

  it('converts a legacy .conf into a one-plugin list with libcni bytes (Go-marshalled, keys sorted)', () => {
    w('10-x.conf', '{"type":"bridge","name":"x","cniVersion":"0.4.0","ipam":{"type":"host-local","subnet":"10.1.0.0/16"}}');
    const [l] = loadConfigs(dir).lists;
    expect(l.plugins).toHaveLength(1);
    expect(l.cniVersion).toBe('0.4.0');
    expect(l.bytes.toString()).toBe('{"cniVersion":"0.4.0","name":"x","plugins":[{"cniVersion":"0.4.0","ipam":{"subnet":"10.1.0.0/16","type":"host-local"},"name":"x","type":"bridge"}]}');
  });

  it('keeps a conflist\'s bytes verbatim (the cache stores them) and re-marshals each plugin sorted', () => {
    const text = '{ "name": "n", "cniVersion": "1.0.0",\n "plugins": [ { "type": "bridge", "bridge": "b0" } ] }\n';
    w('10.conflist', text);
    const [l] = loadConfigs(dir).lists;
    expect(l.bytes.toString()).toBe(text);
    expect(l.plugins[0].bytes.toString()).toBe('{"bridge":"b0","type":"bridge"}');
  });

  it('a broken file never hides the good ones: returns them plus one error per bad file', () => {
    w('10-good.conflist', list('good'));
    w('11-broken.conflist', '{ "name": "broken", ');
    w('12-notype.conflist', list('notype', [{ bridge: 'x' }]));
    w('13-noname.conflist', { cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] });
    w('14-empty.conflist', list('empty', []));
    w('20-good.conf', { name: 'legacy', type: 'bridge' });
    w('21-bad.conf', 'garbage');
    const { lists, errors } = loadConfigs(dir);
    expect(lists.map((l) => l.name)).toEqual(['good', 'legacy']);
    expect(errors.map((e) => path.basename(e.file!))).toEqual(['11-broken.conflist', '12-notype.conflist', '13-noname.conflist', '14-empty.conflist', '21-bad.conf']);
    expect(errors[1].message).toMatch(/missing 'type'/);
    expect(errors[2].message).toMatch(/no name/);
    expect(errors[3].message).toMatch(/no plugins in list/);
    expect(loadConfList(dir, 'good').name).toBe('good');
  });

  it('a missing directory is empty, not an error', () => {
    expect(loadConfigs(path.join(dir, 'nope'))).toEqual({ lists: [], errors: [] });
  });

  it('loadConfList: first conflist with the name wins over a legacy conf; NotFoundError names bad files', () => {
    w('30-n.conflist', list('n', [{ type: 'second' }]));
    w('20-n.conflist', list('n', [{ type: 'first' }]));
    w('10-n.conf', { name: 'n', type: 'legacy' });
    w('40-bad.conflist', '{');
    expect(loadConfList(dir, 'n').plugins[0].network.type).toBe('first');
    expect(() => loadConfList(dir, 'other')).toThrow(NotFoundError);
    expect(() => loadConfList(dir, 'other')).toThrow(/40-bad.conflist/);
  });
});

describe('JSON syntax errors name file, line and column on one line', () => {
  it('a conflist with a trailing comma', () => {
    w('20-broken.conflist', '{\n  "cniVersion": "1.0.0",\n  "name": "b",\n  "plugins": [ { "type": "loopback", } ]\n}\n');
    const [e] = loadConfigs(dir).errors;
    expect(e.message).toMatch(new RegExp(`^${path.join(dir, '20-broken.conflist')}:4:38: error parsing configuration list: [^\\n]*property name$`));
    expect(e.pos).toEqual({ line: 4, column: 38 });
  });
  it('truncated input points past the last character; without a file the position is in words', () => {
    w('10-cut.conflist', '{"name":"x",\n"plugins":[');
    expect(loadConfigs(dir).errors[0].message).toMatch(/10-cut\.conflist:2:12: error parsing configuration list: /);
    expect(() => confListFromBytes(Buffer.from('{\n nope'))).toThrow(/error parsing configuration list: .* \(line 2, column 2\)$/);
  });
  it('reads both node message styles', () => {
    expect(jsonSyntaxError('{\n x', new Error('Expected property name or \'}\' in JSON at position 3'))).toEqual({ message: 'Expected property name or \'}\'', pos: { line: 2, column: 2 } });
    expect(jsonSyntaxError('', new Error('Expected property name or \'}\' in JSON at position 3 (line 2 column 2)'))).toEqual({ message: 'Expected property name or \'}\'', pos: { line: 2, column: 2 } });
    expect(jsonSyntaxError('', new Error('something else'))).toEqual({ message: 'something else' });
  });
});

describe('confListFromBytes', () => {
  it('cniVersions: picks the highest version we implement, counting cniVersion', () => {
    expect(confListFromBytes(JSON.stringify(list('n', undefined, { cniVersion: '0.4.0', cniVersions: ['1.0.0', '0.3.1', '9.0.0'] }))).cniVersion).toBe('1.0.0');
    expect(confListFromBytes(JSON.stringify(list('n', undefined, { cniVersion: '1.1.0', cniVersions: ['1.0.0'] }))).cniVersion).toBe('1.1.0');
    expect(() => confListFromBytes(JSON.stringify(list('n', undefined, { cniVersions: ['x'] })))).toThrow(/invalid cniVersions entry/);
    expect(() => confListFromBytes(JSON.stringify(list('n', undefined, { cniVersions: '1.0.0' })))).toThrow(/cniVersions/);
  });

  it('disableCheck / disableGC accept booleans and "true"/"false" strings, reject others', () => {
    const l = confListFromBytes(JSON.stringify(list('n', undefined, { disableCheck: 'TRUE', disableGC: true })));
    expect([l.disableCheck, l.disableGC, l.loadOnlyInlinedPlugins]).toEqual([true, true, false]);
    expect(() => confListFromBytes(JSON.stringify(list('n', undefined, { disableCheck: 'yes' })))).toThrow(/invalid value "yes" for disableCheck/);
    expect(() => confListFromBytes(JSON.stringify(list('n', undefined, { disableGC: 1 })))).toThrow(/disableGC/);
  });

  it('reads capabilities of each plugin', () => {
    const l = confListFromBytes(JSON.stringify(list('n', [{ type: 'portmap', capabilities: { portMappings: true, bandwidth: false } }])));
    expect(l.plugins[0].network.capabilities).toEqual({ portMappings: true, bandwidth: false });
  });
});

describe('plugin configs from <dir>/<net>/*.conf', () => {
  it('are appended unless loadOnlyInlinedPlugins; a list may then omit plugins', () => {
    mkdirSync(path.join(dir, 'n'));
    writeFileSync(path.join(dir, 'n', '20-b.conf'), JSON.stringify({ type: 'tuning' }));
    writeFileSync(path.join(dir, 'n', '10-a.conf'), JSON.stringify({ type: 'portmap' }));
    w('10.conflist', { cniVersion: '1.1.0', name: 'n' });
    w('20.conflist', list('m', [{ type: 'bridge' }], { loadOnlyInlinedPlugins: true }));
    w('30.conflist', { cniVersion: '1.1.0', name: 'k', loadOnlyInlinedPlugins: true });
    const { lists, errors } = loadConfigs(dir);
    expect(lists.find((l) => l.name === 'n')!.plugins.map((p) => p.network.type)).toEqual(['portmap', 'tuning']);
    expect(lists.find((l) => l.name === 'm')!.plugins.map((p) => p.network.type)).toEqual(['bridge']);
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toMatch(/loadOnlyInlinedPlugins/);
  });
});
