import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs module without types
import { CNI_WORKER_ENTRY, EXECUTABLES } from './entries.mjs';

const root = path.resolve(__dirname, '..');

function mains(dir: string, acc: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) mains(p, acc);
    else if (e === 'main.ts') acc.push(path.relative(root, p));
  }
  return acc;
}

describe('the build entry list', () => {
  it('names every plugins/**/main.ts and plugins/bin/*.ts (but the CNI worker\'s) once, under distinct executable names', () => {
    const list = EXECUTABLES as { name: string; file: string }[];
    const bins = readdirSync(path.join(root, 'plugins/bin')).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => `plugins/bin/${f}`);
    expect(list.map((e) => e.file).sort()).toEqual([...mains(path.join(root, 'plugins')), ...bins.filter((f) => f !== CNI_WORKER_ENTRY)].sort());
    expect(new Set(list.map((e) => e.name)).size).toBe(list.length);
  });
});
