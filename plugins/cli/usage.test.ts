import { describe, expect, it } from 'vitest';
import { UsageError, cniPathOf, confDirOf, outputFormat, parseCount, parseDuration, rawValue, usageLine } from './usage';

describe('parseDuration (--timeout of every command)', () => {
  it.each([['30s', 30_000], ['500ms', 500], ['2m', 120_000], ['1h', 3_600_000], ['5', 5000], ['1.5', 1500], [' 10s ', 10_000]])('%s → %d ms', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });
  it.each(['', 'abc', '3x', '-1', '10 s', 's'])('%j is a usage error naming the flag and the units', (s) => {
    expect(() => parseDuration(s)).toThrow(UsageError);
    expect(() => parseDuration(s)).toThrow(/--timeout wants a duration such as 30s, 500ms or 2m \(a bare number is seconds\)/);
  });
});

describe('parseCount', () => {
  it('accepts whole numbers in range, refuses the rest', () => {
    expect(parseCount('3', '--pods', 1, 50)).toBe(3);
    expect(parseCount(7, '--pods', 1, 50)).toBe(7);
    for (const bad of ['0', '51', '2.5', 'x', '']) expect(() => parseCount(bad, '--pods', 1, 50)).toThrow(/--pods wants a whole number from 1 to 50/);
  });
});

describe('usageLine: yargs messages as one line', () => {
  it('unknown options keep their dashes; no camel-case twin', () => {
    expect(usageLine('Unknown argument: dry-run', ['cni', 'del', 'n', 'p', '--dry-run'])).toBe('unknown option --dry-run');
    expect(usageLine('Unknown arguments: x, bogus', ['status', '-x', '--bogus=1'])).toBe('unknown option -x; unknown option --bogus');
    expect(usageLine('Unknown argument: such-flag', ['status', '--no-such-flag'])).toBe('unknown option --no-such-flag');
  });
  it('a stray word is an unknown command first, an unexpected argument after', () => {
    expect(usageLine('Unknown argument: frob', ['frob'])).toBe('unknown command "frob"');
    expect(usageLine('Unknown argument: y', ['cni', 'add', 'n', 'x', 'y'])).toBe('unexpected argument "y"');
  });
  it('invalid choices name the positional or the flag and the choices, on one line', () => {
    const msg = 'Invalid values:\n  Argument: verb, Given: "ad", Choices: "add", "del"\n  Argument: output, Given: "yaml", Choices: "json", "table"';
    const line = usageLine(msg, ['cni', 'ad'], ['verb']);
    expect(line).toBe('invalid <verb> "ad": choose one of add, del; invalid --output "yaml": choose one of json, table');
    expect(line).not.toContain('\n');
  });
  it('a flag without its value', () => {
    expect(usageLine('Not enough arguments following: cache-dir', [])).toBe('--cache-dir needs a value');
  });
  it('anything else is folded onto one line', () => {
    expect(usageLine('a\n  b', [])).toBe('a b');
  });
});

describe('outputFormat: -o json|table on every report, --json an alias of -o json', () => {
  it('the default unless told; --json is -o json', () => {
    expect(outputFormat({})).toBe('table');
    expect(outputFormat({}, 'json')).toBe('json');
    expect(outputFormat({ output: 'json' })).toBe('json');
    expect(outputFormat({ output: 'table' }, 'json')).toBe('table');
    expect(outputFormat({ json: true })).toBe('json');
    expect(outputFormat({ json: true, output: 'json' })).toBe('json');
  });
  it('--json -o table contradict; an unknown format names the choices', () => {
    expect(() => outputFormat({ json: true, output: 'table' })).toThrow(UsageError);
    expect(() => outputFormat({ output: 'yaml' })).toThrow('invalid --output "yaml": choose one of table, json');
  });
});

describe('conf dir and plugin dirs: flag over environment over default (as flax cni / cnitool)', () => {
  it('confDirOf', () => {
    expect(confDirOf('/x', { NETCONFPATH: '/env' })).toBe('/x');
    expect(confDirOf(undefined, { NETCONFPATH: '/env' })).toBe('/env');
    expect(confDirOf(undefined, { NETCONFPATH: '' })).toBe('/etc/cni/net.d');
    expect(confDirOf(undefined, {})).toBe('/etc/cni/net.d');
  });
  it('cniPathOf', () => {
    expect(cniPathOf('/a:/b', { CNI_PATH: '/env' })).toEqual(['/a', '/b']);
    expect(cniPathOf(undefined, { CNI_PATH: '/e1::/e2' })).toEqual(['/e1', '/e2']);
    expect(cniPathOf(undefined, {})).toEqual(['/opt/cni/bin']);
  });
});

describe('rawValue: a flag\'s value as typed', () => {
  it('--flag v and --flag=v, the last wins, nothing after --', () => {
    expect(rawValue(['gc', '--min-age', 'abc'], '--min-age')).toBe('abc');
    expect(rawValue(['gc', '--min-age=1x', '--min-age', 'y'], '--min-age')).toBe('y');
    expect(rawValue(['gc', '--', '--min-age', 'z'], '--min-age')).toBeUndefined();
    expect(rawValue(['gc'], '--min-age')).toBeUndefined();
  });
});
