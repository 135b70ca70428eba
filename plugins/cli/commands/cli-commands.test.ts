import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../usage';
import { resolveNetns, type CliIo } from './cni';
import { runNetns } from './netns';
import { attachmentState, jsonWithBigInts } from './status';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-cli-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function io(): CliIo & { out: string; err: string } {
  const o = { out: '', err: '', env: {}, stdout: (s: string) => void (o.out += s), stderr: (s: string) => void (o.err += s) };
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
