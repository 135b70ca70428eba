/**
 * The snapshot launchers of dist/bin (scripts/build.mjs). A V8 startup blob
 * only loads in the node binary that built it; any other node exits 14
 * before any JS runs, with nothing on stdout — every CNI call would fail
 * until a rebuild (e.g. after `apt upgrade nodejs`). The launcher must then
 * run the plain bundle instead. No namespace is touched (VERSION only).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST_BIN, requireBuilt } from '../lib/cni';

let dir: string;
beforeAll(() => {
  requireBuilt('loopback');
  dir = mkdtempSync(path.join(tmpdir(), 'flax-launch-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('snapshot launcher', () => {
  it('with another node binary first in PATH (an upgrade), the executable still answers from the plain bundle', (ctx) => {
    if (!existsSync(path.join(DIST_BIN, 'loopback.blob'))) ctx.skip();
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    // loopback is the server's static client when loopback.standalone (the launcher) exists
    for (const f of ['loopback', 'loopback.standalone', 'loopback.js', 'loopback.blob', 'netlink.node', 'flax.node']) {
      if (existsSync(path.join(DIST_BIN, f))) copyFileSync(path.join(DIST_BIN, f), path.join(bin, f));
    }
    chmodSync(path.join(bin, 'loopback'), 0o755);
    // the blob as the previous node release built it
    const blob = readFileSync(path.join(bin, 'loopback.blob'));
    const v = Buffer.from(process.versions.node);
    const at = blob.indexOf(v);
    expect(at).toBeGreaterThanOrEqual(0);
    const old = Buffer.from(process.versions.node.replace(/\d$/, (d) => String((Number(d) + 1) % 10)));
    old.copy(blob, at);
    writeFileSync(path.join(bin, 'loopback.blob'), blob);
    // the upgraded node: another binary (a copy), first in PATH
    const nodeDir = path.join(dir, 'node');
    mkdirSync(nodeDir);
    copyFileSync(process.execPath, path.join(nodeDir, 'node'));
    chmodSync(path.join(nodeDir, 'node'), 0o755);

    const r = spawnSync(path.join(bin, 'loopback'), [], {
      // FLAX_CNI_SOCKET='': the client always runs the launcher, even if a CNI server runs here
      env: { PATH: `${nodeDir}:/usr/local/bin:/usr/bin:/bin`, CNI_COMMAND: 'VERSION', FLAX_CNI_SOCKET: '' },
      input: '{"cniVersion":"1.0.0"}',
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).supportedVersions).toContain('1.0.0');
    expect(r.stderr).toBe('');
  });
});
