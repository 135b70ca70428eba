import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rewriteFile } from './fsutil';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('rewriteFile (in place, no O_TRUNC)', () => {
  it('creates with the mode, then replaces longer and shorter content in the same inode', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'flax-rewrite-'));
    const f = path.join(dir, 'last_reserved_ip.0');
    rewriteFile(f, '10.1.0.200', 0o600);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    const ino = statSync(f).ino;
    rewriteFile(f, '10.1.0.9', 0o600);
    expect(readFileSync(f, 'utf8')).toBe('10.1.0.9');
    rewriteFile(f, 'fd00::1:2:3:4', 0o600);
    expect(readFileSync(f, 'utf8')).toBe('fd00::1:2:3:4');
    expect(statSync(f).ino).toBe(ino);
    writeFileSync(f, 'x'.repeat(100_000));
    rewriteFile(f, '10.1.0.3', 0o600);
    expect(readFileSync(f, 'utf8')).toBe('10.1.0.3');
  });
});
