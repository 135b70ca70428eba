import { describe, expect, it } from 'vitest';
import { UsageError, parseCount, parseDuration, usageLine } from './usage';

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
