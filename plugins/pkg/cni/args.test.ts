import { describe, expect, it } from 'vitest';
import { parseCniArgs } from './args';
import { validateContainerId, validateIfName, validateNetworkName } from './validate';
import { CniError } from './errors';

const code = (f: () => unknown) => { try { f(); return 0; } catch (e) { return (e as CniError).code; } };

describe('CNI_ARGS', () => {
  it('parses pairs and known keys', () => {
    const a = parseCniArgs('IP=10.0.0.5;MAC=0a:00:00:00:00:01');
    expect(a.get('IP')).toBe('10.0.0.5');
    expect(a.get('MAC')).toBe('0a:00:00:00:00:01');
    expect(parseCniArgs('').pairs).toEqual([]);
  });
  it('values may contain =', () => expect(parseCniArgs('IgnoreUnknown=1;X=a=b').get('X')).toBe('a=b'));
  it('unknown keys are code 4 unless IgnoreUnknown', () => {
    expect(code(() => parseCniArgs('FOO=bar'))).toBe(4);
    expect(code(() => parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=x;FOO=bar'))).toBe(0);
    expect(code(() => parseCniArgs('IgnoreUnknown=true;FOO=bar'))).toBe(0);
    expect(code(() => parseCniArgs('IgnoreUnknown=0;FOO=bar'))).toBe(4);
    expect(code(() => parseCniArgs('IgnoreUnknown=maybe'))).toBe(4);
  });
  it('keys are case-sensitive', () => expect(code(() => parseCniArgs('ip=10.0.0.1'))).toBe(4));
  it('malformed pairs are code 4', () => {
    expect(code(() => parseCniArgs('novalue'))).toBe(4);
    expect(code(() => parseCniArgs('=x'))).toBe(4);
  });
});

describe('validation', () => {
  it('container id', () => {
    expect(code(() => validateContainerId(''))).toBe(3);
    expect(code(() => validateContainerId('abc-1_2.3'))).toBe(0);
    for (const bad of ['../etc', 'a/b', '-x', '.x', 'a b', 'a;b', 'x'.repeat(300)]) expect(code(() => validateContainerId(bad))).toBe(4);
  });
  it('interface name', () => {
    expect(code(() => validateIfName('eth0'))).toBe(0);
    expect(code(() => validateIfName('x'.repeat(15)))).toBe(0);
    for (const bad of ['', '.', '..', 'a/b', '../x', 'a:b', 'a b', 'x'.repeat(16), 'a\tb']) expect(code(() => validateIfName(bad))).toBe(4);
  });
  it('network name', () => {
    expect(validateNetworkName('my-net_1.0')).toBe('my-net_1.0');
    for (const bad of [undefined, '', '../x', 'a/b', 5, 'a b']) expect(code(() => validateNetworkName(bad))).toBe(7);
  });
});
