/**
 * Images for the worker's containerd, all built here with buildah (scratch
 * storage, vfs) and moved in as docker archives (`ctr -n k8s.io images
 * import`): no registry anywhere.
 * - the sandbox (pause) image: native/pause's static binary as /pause;
 * - a busybox image: Debian's busybox-static with an applet symlink each;
 * - flax's image: scripts/build-image.sh, as conf/flax.yml references it.
 */
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { buildBusyboxRootfs, podmanStorageArgs, run } from '../../lib/e2e';
import { ROOT } from '../../lib/pkg';

export const PAUSE_IMAGE = 'localhost/flax-test-pause:3.10';
export const BUSYBOX_IMAGE = 'localhost/flax-test-busybox:1';

export interface ImageBuilder { dir: string; args: string[]; buildah: (a: string[]) => string; save: (image: string, file: string) => string }

export function imageBuilder(dir: string): ImageBuilder {
  mkdirSync(dir, { recursive: true });
  const args = podmanStorageArgs(dir);
  const buildah = (a: string[]) => run('buildah', [...args, ...a], { timeoutMs: 300_000 }).stdout.trim();
  return {
    dir, args, buildah,
    save: (image, file) => { buildah(['push', '--quiet', image, `docker-archive:${file}:${image}`]); return file; },
  };
}

function fromRootfs(b: ImageBuilder, rootfs: string, image: string, config: string[]): void {
  const c = b.buildah(['from', 'scratch']);
  try {
    b.buildah(['add', c, `${rootfs}/`, '/']);
    b.buildah(['config', ...config, c]);
    b.buildah(['commit', '--quiet', c, image]);
  } finally {
    run('buildah', [...b.args, 'rm', c], { allowFail: true });
  }
}

export function buildPauseImage(b: ImageBuilder): string {
  const rootfs = path.join(b.dir, 'pause-rootfs');
  mkdirSync(rootfs, { recursive: true });
  copyFileSync(path.join(ROOT, 'dist/bin/pause'), path.join(rootfs, 'pause'));
  chmodSync(path.join(rootfs, 'pause'), 0o755);
  fromRootfs(b, rootfs, PAUSE_IMAGE, ['--entrypoint', '["/pause"]', '--cmd', '[]']);
  return b.save(PAUSE_IMAGE, path.join(b.dir, 'pause.tar'));
}

export function buildBusyboxImage(b: ImageBuilder): string {
  const rootfs = path.join(b.dir, 'busybox-rootfs');
  buildBusyboxRootfs(rootfs);
  fromRootfs(b, rootfs, BUSYBOX_IMAGE, ['--env', 'PATH=/bin', '--cmd', '["/bin/sh"]', '--entrypoint', '[]']);
  return b.save(BUSYBOX_IMAGE, path.join(b.dir, 'busybox.tar'));
}

/** scripts/build-image.sh into this builder's storage, tagged `tag` (default: its own localhost/flax:<version>). */
export function buildFlaxImage(b: ImageBuilder, tag: string): string {
  const r = run('bash', [path.join(ROOT, 'scripts/build-image.sh'), '--tag', tag], {
    env: { ...process.env, BUILDAH_ARGS: b.args.join(' ') }, timeoutMs: 600_000,
  });
  if (r.code !== 0) throw new Error(r.stderr);
  return b.save(tag, path.join(b.dir, `flax-${tag.replace(/[^a-z0-9.]/gi, '_')}.tar`));
}
