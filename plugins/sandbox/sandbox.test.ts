import { describe, expect, it } from 'vitest';
import { afterDashes, checkSandbox } from '../cli/commands/sandbox';
import { UsageError } from '../cli/usage';
import { sandboxNameProblem } from './name';
import { resultAddresses, sandboxRoot } from './state';

describe('sandbox names', () => {
  it('accept CNI container-id characters, one path component, ≤ 63', () => {
    for (const ok of ['web', 'a', 'pod-1.x_y', 'A'.repeat(63)]) expect(sandboxNameProblem(ok), ok).toBeNull();
    for (const bad of ['', '.', '..', '../x', 'a/b', '.hidden', '-x', 'a b', 'a\0b', 'A'.repeat(64), 'é']) {
      expect(sandboxNameProblem(bad), bad).toMatch(/^invalid sandbox name/);
    }
  });
});

describe('checkSandbox (usage errors before anything runs)', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /missing <verb> \(run, exec, ls, inspect, rm\)/],
    [{ verb: 'run' }, /run needs <name>/],
    [{ verb: 'run', name: '../etc' }, /invalid sandbox name/],
    [{ verb: 'ls', name: 'x' }, /ls takes no name/],
    [{ verb: 'exec', name: 'x', cmd: [] }, /exec needs a command/],
    [{ verb: 'rm', name: 'x', cmd: ['y'] }, /unexpected argument "y"/],
    [{ verb: 'rm', name: 'x', net: ['n'] }, /--net does not apply to rm/],
    [{ verb: 'ls', sharePid: true }, /--share-pid does not apply to ls/],
    [{ verb: 'run', name: 'x', detach: true }, /--detach does not apply to run/],
    [{ verb: 'run', name: 'x', capArgs: '[1]' }, /--cap-args must be a JSON object/],
    [{ verb: 'run', name: 'x', capArgs: '{' }, /--cap-args is not valid JSON/],
    [{ verb: 'run', name: 'x', args: 'K' }, /invalid CNI_ARGS pair "K"/],
    [{ verb: 'rm', name: 'x', timeout: 'soon' }, /--timeout wants a duration/],
  ];
  it.each(bad)('%j', (a, re) => {
    expect(() => checkSandbox(a)).toThrow(UsageError);
    expect(() => checkSandbox(a)).toThrow(re);
  });
  it('accepts each verb with its own options', () => {
    for (const a of [
      { verb: 'run', name: 'x', net: ['a', 'b'], sharePid: true, hostname: 'h', capArgs: '{}', args: 'A=1;B=2', cniPath: '/x:/y' },
      { verb: 'exec', name: 'x', cmd: ['ls', '-l'], detach: true },
      { verb: 'ls', json: true }, { verb: 'inspect', name: 'x' }, { verb: 'rm', name: 'x', force: true, timeout: '2s' },
      { verb: 'ls', sharePid: false },
    ]) expect(() => checkSandbox(a), JSON.stringify(a)).not.toThrow();
  });
});

describe('afterDashes', () => {
  it('is what follows the first --', () => {
    expect(afterDashes(['node', 'flax', 'sandbox', 'exec', 'x', '--', 'sh', '-c', 'a -- b'])).toEqual(['sh', '-c', 'a -- b']);
    expect(afterDashes(['sandbox', 'exec', 'x', 'ls'])).toEqual([]);
  });
});

describe('resultAddresses / sandboxRoot', () => {
  it('reads ips of 0.3.0+ results and ip4/ip6 of 0.1/0.2 ones', () => {
    expect(resultAddresses({ ips: [{ address: '10.0.0.2/24' }, { address: 'fd00::2/64' }] })).toEqual(['10.0.0.2/24', 'fd00::2/64']);
    expect(resultAddresses({ ip4: { ip: '10.0.0.2/24' } })).toEqual(['10.0.0.2/24']);
    expect(resultAddresses(undefined)).toEqual([]);
  });
  it('flag, then FLAX_SANDBOX_DIR, then /run/flax/sandboxes', () => {
    expect(sandboxRoot('/x', { FLAX_SANDBOX_DIR: '/y' })).toBe('/x');
    expect(sandboxRoot(undefined, { FLAX_SANDBOX_DIR: '/y' })).toBe('/y');
    expect(sandboxRoot(undefined, {})).toBe('/run/flax/sandboxes');
  });
});
