/**
 * Recognising our own executables (so that an Exec may run them
 * in-process): the bundles and launchers scripts/build.mjs writes, the
 * multi-call package, the CNI server's static client.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, realpathSync } from 'node:fs';
import path from 'node:path';

/**
 * True when `file` is one of our executables: scripts/build.mjs marks both
 * the bundle (`// flax-executable`) and its snapshot launcher
 * (`# flax-executable launcher`) in the first lines, the server's static
 * client at its end (see isFlaxClient); older bundles are
 * recognised by their banner (`#!/usr/bin/env node` + `__flaxDir`).
 */
export function isFlaxBundle(file: string): boolean {
  if (isFlaxPackage(file)) return true;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(512);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const head = buf.subarray(0, n).toString('latin1');
    if (head.startsWith('\x7fELF')) return isFlaxClient(fd);
    if (!head.startsWith('#!')) return false;
    return /^(\/\/|#) flax-executable\b/m.test(head) || (head.startsWith('#!/usr/bin/env node') && head.includes('__flaxDir'));
  } finally {
    closeSync(fd);
  }
}

/**
 * True when `file` is a name of our self-contained multi-call binary
 * (`npm run package`, `flax install`): it resolves to a file beside a
 * PACKAGE.json that lists the name among its executables.
 */
function isFlaxPackage(file: string): boolean {
  try {
    const real = realpathSync(file);
    const pkg = JSON.parse(readFileSync(path.join(path.dirname(real), 'PACKAGE.json'), 'utf8')) as { executables?: unknown };
    return Array.isArray(pkg.executables) && pkg.executables.includes(path.basename(file));
  } catch {
    return false;
  }
}

/**
 * The static client of the resident CNI server (native/cniclient) ends with
 * `# flax-executable cniclient`: it runs our plugin, here or standalone.
 */
function isFlaxClient(fd: number): boolean {
  const size = fstatSync(fd).size;
  const tail = Buffer.alloc(64);
  const n = readSync(fd, tail, 0, tail.length, Math.max(0, size - tail.length));
  return tail.subarray(0, n).toString('latin1').endsWith('\n# flax-executable cniclient\n');
}
