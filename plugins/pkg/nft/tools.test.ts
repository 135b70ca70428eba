import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findTool, runnerFor, toolsFor } from './tools';

const dir = mkdtempSync(path.join(tmpdir(), 'flax-tools-'));
const a = path.join(dir, 'a');
const b = path.join(dir, 'b');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the firewall tools of a caller (a Host\'s tools: its PATH and environment, not this process\'s)', () => {
  it('findTool looks in the PATH it is given: the same name resolves per PATH', () => {
    for (const d of [a, b]) {
      mkdirSync(d);
      const f = path.join(d, 'flax-test-tool');
      writeFileSync(f, '#!/bin/sh\nexit 0\n');
      chmodSync(f, 0o755);
    }
    expect(findTool('flax-test-tool', a)).toBe(path.join(a, 'flax-test-tool'));
    expect(findTool('flax-test-tool', b)).toBe(path.join(b, 'flax-test-tool'));
    expect(findTool('flax-test-tool', '/nonexistent')).toBeNull();
    expect(toolsFor({ PATH: b }).has('flax-test-tool')).toBe(true);
    expect(toolsFor({ PATH: '/nonexistent' }).has('flax-test-tool')).toBe(false);
  });
  it('runs a tool with the caller\'s environment', async () => {
    const r = await runnerFor({ PATH: '/usr/bin:/bin', FLAX_TOOLS_TEST: 'caller' })('env', []);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toContain('FLAX_TOOLS_TEST=caller');
    expect(r.stdout).not.toMatch(/^VITEST=/m);
  });
  it('the caller\'s TMPDIR is its temporary directory', () => {
    expect(toolsFor({ TMPDIR: '/var/tmp/x/' }).tmpDir?.()).toBe('/var/tmp/x');
    expect(toolsFor({}).tmpDir?.()).toBe('/tmp');
  });
});
