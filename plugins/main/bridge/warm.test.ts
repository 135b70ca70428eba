import { describe, expect, it, vi } from 'vitest';
import * as fs from 'node:fs';
import { warmBridge } from './warm';
import { warmHostLocal } from '../../ipam/host-local/warm';
import { readResolvConf } from '../../ipam/host-local/config';
import { warmPortmap } from '../../meta/portmap/warm';
import { warmNetlink } from '../../pkg/netlink/warm';

const WATCHED = vi.hoisted(() => ['openSync', 'readFileSync', 'writeFileSync', 'mkdirSync', 'statSync', 'lstatSync', 'readdirSync', 'accessSync', 'existsSync'] as const);
vi.mock('node:fs', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs')>();
  const wrapped = Object.fromEntries(WATCHED.map((f) => [f, vi.fn(orig[f] as (...a: unknown[]) => unknown)]));
  return { ...orig, ...wrapped, default: { ...orig, ...wrapped } };
});

describe('snapshot warm-ups (run while scripts/build.mjs builds each plugin\'s V8 snapshot)', () => {
  it('run through without throwing and without touching a file', () => {
    const calls = () => WATCHED.reduce((n, f) => n + vi.mocked(fs[f]).mock.calls.length, 0);
    const before = calls();
    for (const w of [warmHostLocal, warmBridge, warmPortmap, warmNetlink]) expect(w).not.toThrow();
    expect(calls()).toBe(before);
    readResolvConf('/etc/hostname'); // the watch does see the plugins' file access
    expect(calls()).toBeGreaterThan(before);
  });
});
