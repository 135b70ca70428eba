/**
 * Atomic replacement of files, symlinks and directories: everything is
 * written under a temporary name in the target's own directory (same
 * filesystem), fsynced, then renamed over the target. A reader — a runtime
 * exec'ing a plugin, containerd reloading /etc/cni/net.d — sees the old
 * file or the new one, never a half-written one, and a running executable
 * is never written to ("text file busy"). Temporary names start with "."
 * and end in ".tmp-<pid>", so libcni (.conf/.conflist/.json) never loads one.
 */
import fs from 'node:fs';
import path from 'node:path';

export const tmpName = (target: string) => path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}`);

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** Renames tmp over target and makes the rename durable; tmp is removed if it fails. */
function commit(tmp: string, target: string): void {
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fsyncPath(path.dirname(target));
}

/** Writes content to target atomically with `mode` (whatever the umask). */
export function writeFileAtomic(target: string, content: string | Buffer, mode = 0o644): void {
  const tmp = tmpName(target);
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  commit(tmp, target);
}

/** Points `link` at `target` atomically (a new symlink renamed over the old name). */
export function symlinkAtomic(target: string, link: string): void {
  const tmp = tmpName(link);
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  commit(tmp, link);
}

/** Copies the files `names` of srcDir into a new directory `dir`, which appears complete or not at all. */
export function copyDirAtomic(srcDir: string, names: readonly string[], dir: string): void {
  const tmp = tmpName(dir);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { mode: 0o755 });
  try {
    for (const n of names) {
      const dst = path.join(tmp, n);
      fs.copyFileSync(path.join(srcDir, n), dst);
      fs.chmodSync(dst, fs.statSync(path.join(srcDir, n)).mode & 0o7777);
      fsyncPath(dst);
    }
    fsyncPath(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  commit(tmp, dir);
}
