/**
 * A real runtime joins a flax sandbox (issue 14): `podman run --network
 * ns:/run/flax/sandboxes/NAME/net` (podman 4.3, runc, busybox rootfs
 * imported from a scratch tarball, no registry) reaches a server started
 * with `flax sandbox exec NAME -d` on 127.0.0.1 — the container shares the
 * sandbox's network namespace as a pod's containers share the pause's.
 *
 * The sandbox uses the default root /run/flax/sandboxes (the path runtimes
 * are told about). Nothing else global changes: podman's storage and config
 * are scratch dirs, the sandbox has no CNI network (podman calls no plugin
 * with ns:), and afterAll removes the sandbox, and the root's directories
 * and shared bind mount if this test created them; then checks that the
 * root netns links and firewall are what they were.
 */
import { chmodSync, copyFileSync, existsSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DIST_BIN, acquireE2eLock, copyFlaxCli, importBusyboxImage, missingPrereq, podmanStorageArgs, removeScratch, run, scratchDir, waitFor,
  writePodmanConf,
} from '../lib/e2e';
import { firewallText, linkNames } from '../lib/host-state';

const NAME = `flaxe2e-sb-${process.pid}`;
const SB_ROOT = '/run/flax/sandboxes';
const PORT = 18977;
const IMAGE = 'localhost/flaxe2e-sb-busybox:latest';

const skipReason = missingPrereq(['podman', 'runc', 'conmon', 'flock', 'busybox']);
if (skipReason) console.warn(`sandbox podman e2e skipped: ${skipReason}`);

describe.skipIf(!!skipReason)('podman joins a flax sandbox with --network ns:', () => {
  let lock: { release: () => void } | undefined;
  let base = '';
  let conf = '';
  let flax = '';
  let storageArgs: string[] = [];
  // what existed before: the root dirs we may create, and the root netns' links and firewall
  const existed = { run: existsSync('/run/flax'), root: existsSync(SB_ROOT), rootMounted: false };
  let linksBefore: string[] = [];
  let fwBefore = '';

  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: conf };
    delete e.FLAX_SANDBOX_DIR;
    return e;
  };
  const podman = (args: string[], allowFail = false) => run('podman', [...storageArgs, ...args], { env: env(), allowFail, timeoutMs: 120_000 });
  const sb = (args: string[], allowFail = false) => run(flax, ['sandbox', ...args], { env: env(), allowFail });
  const mounted = (p: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);

  beforeAll(async () => {
    lock = await acquireE2eLock();
    existed.rootMounted = mounted(SB_ROOT);
    linksBefore = linkNames().sort();
    fwBefore = firewallText();
    base = scratchDir('sandbox');
    storageArgs = podmanStorageArgs(base);
    conf = writePodmanConf(base, path.join(base, 'plugins-none'), path.join(base, 'net.d'));
    importBusyboxImage(podman, base, IMAGE);
    // the CLI with its helpers beside it, copied so a rebuild of dist/bin cannot change it mid-run
    flax = copyFlaxCli(base);
    for (const h of ['nsexec', 'pause']) {
      copyFileSync(path.join(process.env.FLAX_E2E_BIN || DIST_BIN, h), path.join(path.dirname(flax), h));
      chmodSync(path.join(path.dirname(flax), h), 0o755);
    }
  }, 180_000);

  afterAll(async () => {
    const problems: string[] = [];
    try {
      if (conf) {
        podman(['rm', '-af', '-t', '0'], true);
        podman(['rmi', '-af'], true);
      }
      if (flax) {
        const r = sb(['rm', NAME, '--force'], true);
        if (r.code !== 0) problems.push(`flax sandbox rm: ${r.stderr.trim()}`);
      }
      if (existsSync(path.join(SB_ROOT, NAME))) problems.push(`${SB_ROOT}/${NAME} left`);
      // put the root back as it was: the shared bind mount (when no other sandbox lives there), the dirs we made
      const others = existsSync(SB_ROOT) ? readdirSync(SB_ROOT).filter((n) => n !== '.locks') : [];
      if (!existed.rootMounted && !others.length) {
        while (mounted(SB_ROOT)) if (run('umount', [SB_ROOT], { allowFail: true }).code !== 0) break;
      }
      if (!existed.root) {
        rmDirIfEmpty(path.join(SB_ROOT, '.locks'), ['.root']);
        rmDirIfEmpty(SB_ROOT, []);
        if (!existed.run) rmDirIfEmpty('/run/flax', []);
      }
      if (!existed.rootMounted && mounted(SB_ROOT)) problems.push(`${SB_ROOT} is still a mount point`);
      const links = linkNames().sort();
      if (JSON.stringify(links) !== JSON.stringify(linksBefore)) problems.push(`root netns links changed: ${JSON.stringify(linksBefore)} → ${JSON.stringify(links)}`);
      if (firewallText() !== fwBefore) problems.push('the firewall changed during the run');
      if (base) removeScratch(base);
    } finally {
      lock?.release();
    }
    if (problems.length) throw new Error(`sandbox podman e2e cleanup: ${problems.join('; ')}`);
  }, 180_000);

  it('podman run --network ns:<sandbox net pin> shares the sandbox\'s network: 127.0.0.1 reaches a server started with flax sandbox exec -d', async () => {
    const r = sb(['run', NAME]);
    expect(r.stdout).toContain(`sandbox ${NAME}: pause pid`);
    const pin = path.join(SB_ROOT, NAME, 'net');
    expect(statSync(pin).ino).toBeGreaterThan(0);
    const www = path.join(base, 'rootfs/www');
    const pid = Number(sb(['exec', NAME, '-d', '--', path.join(base, 'rootfs/bin/busybox'), 'httpd', '-f', '-p', `127.0.0.1:${PORT}`, '-h', www]).stdout.trim());
    expect(pid).toBeGreaterThan(0);
    // the server is reachable inside the sandbox, and not from the root netns
    await waitFor('httpd in the sandbox', () => sb(['exec', NAME, '--', 'busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${PORT}/`], true).stdout === 'flax-e2e-ok\n', 10_000, 200);
    expect(run('busybox', ['wget', '-q', '-T', '2', '-O', '-', `http://127.0.0.1:${PORT}/`], { allowFail: true }).code).not.toBe(0);

    const c = podman(['run', '--rm', '--network', `ns:${pin}`, IMAGE, 'sh', '-c', `readlink /proc/self/ns/net; wget -q -O - http://127.0.0.1:${PORT}/`], true);
    expect(c.code, c.stderr).toBe(0);
    const [nsLink, body] = c.stdout.split('\n');
    expect(nsLink).toBe(`net:[${statSync(pin).ino}]`);
    expect(body).toBe('flax-e2e-ok');

    // rm stops the server (it runs in the sandbox's netns) and removes everything
    expect(sb(['rm', NAME]).stdout).toBe(`${NAME}\n`);
    expect(existsSync(`/proc/${pid}`) && !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))).toBe(false);
    expect(existsSync(path.join(SB_ROOT, NAME))).toBe(false);
  });
});

/** Removes dir if it holds nothing but `allowed` files (which are removed with it). */
function rmDirIfEmpty(dir: string, allowed: string[]): void {
  if (!existsSync(dir)) return;
  for (const f of allowed) run('rm', ['-f', path.join(dir, f)], { allowFail: true });
  try { rmdirSync(dir); } catch { /* not empty: not ours alone */ }
}
