/**
 * The self-contained package (dist/pkg, scripts/package.mjs) for tests:
 * built once when missing or older than dist/bin (which `npm run build`
 * makes), under a mkdir lock so that parallel test files build it once.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PKG = path.join(ROOT, 'dist/pkg');

function stale(): boolean {
  const stamp = path.join(PKG, 'PACKAGE.json');
  if (!existsSync(stamp)) return true;
  const built = statSync(stamp).mtimeMs;
  const bin = path.join(ROOT, 'dist/bin');
  return readdirSync(bin).filter((f) => f.endsWith('.js')).some((f) => statSync(path.join(bin, f)).mtimeMs > built);
}

export async function ensurePackage(): Promise<string> {
  const lock = path.join(ROOT, 'dist/pkg.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // a lock older than 2 minutes belongs to a run that died
      try { if (Date.now() - statSync(lock).mtimeMs > 120_000) rmdirSync(lock); } catch { /* gone */ }
      if (Date.now() > deadline) throw new Error('dist/pkg.lock held for 2 minutes');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (stale()) {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/package.mjs')], { encoding: 'utf8', cwd: ROOT });
      if (r.status !== 0) throw new Error(`npm run package failed: ${r.stderr}`);
    }
  } finally {
    rmdirSync(lock);
  }
  return PKG;
}
