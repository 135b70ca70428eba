/**
 * `flax install` / `--uninstall`: puts the multi-call package (dist/pkg,
 * scripts/package.mjs) into a CNI bin dir and a conflist into a conf dir.
 *
 * Layout in the bin dir:
 *   .flax/<id>/   flax flax.node netlink.node pause nsexec — one version,
 *                 <id> a hash of its files; written under a temporary name
 *                 and renamed, so it is complete or absent
 *   flax [flaxd]  symlinks to .flax/<id>/flax, each swapped by rename: a
 *                 call sees the old version or the new one, and the binary
 *                 finds the addons of its own version beside its real path
 *   bridge host-local loopback flannel portmap
 *                 symlinks to .flax/<id>/cniclient (the package's `clients`):
 *                 the static client of flaxd's CNI server, which runs
 *                 .flax/<id>/flax as the plugin when no server answers — a
 *                 node without flaxd still works
 *   .flax/install.json  the manifest: what this tool wrote, so it never
 *                 overwrites a file it did not write (without --force, which
 *                 keeps the foreign file beside it as .<name>.flax-replaced
 *                 for --uninstall to restore), and --uninstall removes
 *                 exactly that
 * The previous version's directory is kept (a call that started before
 * the switch may still load its addons); older ones are removed.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { native } from '../../pkg/native';
import { copyDirAtomic, symlinkAtomic, writeFileAtomic } from '../../pkg/atomic';
import { applyServer, defaultServerPaths, type ServerMode, type ServerPaths, type ServerRecord } from './server';

export interface PackageInfo {
  /** executable names the binary answers to (flax among them) */
  executables: string[];
  /** the files of one version: the binary `flax` first, then addons and helpers */
  files: string[];
  /** executables that are links to `cniclient` (one of files), not to `flax` */
  clients?: string[];
  snapshot?: boolean;
  node?: string;
}

export interface Manifest {
  format: 1;
  /** the version the links point at */
  current?: string;
  /** version dirs this tool created that still exist (oldest first) */
  versions: string[];
  /** absolute symlink path -> target as written */
  links: Record<string, string>;
  /** absolute file path (conflists) -> sha256 as written */
  files: Record<string, string>;
  /** absolute path -> where the foreign file it replaced (--force) is kept */
  replaced: Record<string, string>;
  /** --server systemd|auto: the mode and the files it wrote (server.ts) */
  server?: ServerRecord;
}

export interface InstallOptions {
  /** the package dir: PACKAGE.json + files */
  from: string;
  binDir: string;
  confDir: string;
  /** conflist to install: file name in confDir and content */
  conflist?: { name: string; content: string };
  force?: boolean;
  /** how the resident CNI server runs on this host (server.ts; default off) */
  server?: ServerMode;
  /** where --server writes (tests); default defaultServerPaths() */
  serverPaths?: ServerPaths;
}

/** One line of what was done (or, on refusal, what is in the way). */
export type Report = (line: string) => void;

export class InstallRefused extends Error {
  constructor(readonly paths: string[]) {
    super(`refusing to overwrite ${paths.length === 1 ? 'a file' : 'files'} flax did not install: ${paths.join(', ')} (--force replaces ${paths.length === 1 ? 'it' : 'them'}, kept for --uninstall to restore)`);
    this.name = 'InstallRefused';
  }
}

const STATE = '.flax';
const MANIFEST = 'install.json';
const emptyManifest = (): Manifest => ({ format: 1, versions: [], links: {}, files: {}, replaced: {} });

export function readPackage(dir: string): PackageInfo {
  const p = JSON.parse(fs.readFileSync(path.join(dir, 'PACKAGE.json'), 'utf8')) as PackageInfo;
  if (!Array.isArray(p.executables) || !Array.isArray(p.files) || p.files[0] !== 'flax') throw new Error(`${dir}/PACKAGE.json: not a flax package`);
  if (p.clients !== undefined && (!Array.isArray(p.clients) || !p.files.includes('cniclient') || p.clients.some((c) => !p.executables.includes(c)))) {
    throw new Error(`${dir}/PACKAGE.json: clients must be executables, with cniclient among the files`);
  }
  return p;
}

/** The sha256 of a file's content, read in 1 MiB pieces. */
function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** lstat, or undefined when nothing is there. */
function lstatOrNone(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The symlink's target, or undefined when p is not a symlink (or absent). */
function readlinkOrNone(p: string): string | undefined {
  return lstatOrNone(p)?.isSymbolicLink() ? fs.readlinkSync(p) : undefined;
}

/** The version id: a hash of the version's file names and contents. */
export function versionId(dir: string, pkg: PackageInfo): string {
  const h = createHash('sha256');
  for (const f of pkg.files) h.update(`${f}\0${sha256File(path.join(dir, f))}\0`);
  return h.digest('hex').slice(0, 16);
}

export function readManifest(binDir: string): Manifest {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(binDir, STATE, MANIFEST), 'utf8')) as Manifest;
    return { ...emptyManifest(), ...m };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyManifest();
    throw e;
  }
}

/** Writes the manifest when it changed (a re-run that does nothing writes nothing). */
function writeManifest(binDir: string, m: Manifest): void {
  const file = path.join(binDir, STATE, MANIFEST);
  const text = JSON.stringify(m, null, 2) + '\n';
  let cur: string | undefined;
  try { cur = fs.readFileSync(file, 'utf8'); } catch { /* first install */ }
  if (cur !== text) writeFileAtomic(file, text);
}

/** Runs fn holding an exclusive flock on <binDir>/.flax/lock (one install at a time). */
function locked<T>(binDir: string, fn: () => T): T {
  const dir = path.join(binDir, STATE);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const fd = fs.openSync(path.join(dir, 'lock'), 'a');
  try {
    const n = native();
    n.flock(fd, n.constants.LOCK_EX);
    return fn();
  } finally {
    fs.closeSync(fd);
  }
}

const fileSha = (p: string) => (lstatOrNone(p)?.isFile() ? sha256File(p) : undefined);

/**
 * Keeps the foreign file at p as .<name>.flax-replaced beside it (a hard
 * link, so p never disappears; same directory, so same filesystem; libcni
 * loads no such name) for --uninstall to restore.
 */
function keepForeign(m: Manifest, p: string): string {
  const keep = path.join(path.dirname(p), `.${path.basename(p)}.flax-replaced`);
  fs.rmSync(keep, { force: true });
  fs.linkSync(p, keep);
  m.replaced[p] = keep;
  return keep;
}

export function install(o: InstallOptions, report: Report): void {
  const pkg = readPackage(o.from);
  const id = versionId(o.from, pkg);
  const binDir = path.resolve(o.binDir);
  fs.mkdirSync(binDir, { recursive: true, mode: 0o755 });
  locked(binDir, () => {
    const m = readManifest(binDir);
    const targetOf = (l: string) => `${STATE}/${id}/${pkg.clients?.includes(path.basename(l)) ? 'cniclient' : 'flax'}`;
    const links = pkg.executables.map((n) => path.join(binDir, n));
    const conf = o.conflist && { path: path.join(path.resolve(o.confDir), o.conflist.name), content: o.conflist.content };
    const confSha = conf && createHash('sha256').update(conf.content).digest('hex');

    // Everything in the way is found before anything is written.
    const foreign: string[] = [];
    for (const l of links) {
      const st = lstatOrNone(l);
      if (!st) continue;
      const cur = readlinkOrNone(l);
      if (cur === targetOf(l) || (cur !== undefined && m.links[l] === cur)) continue;
      foreign.push(l);
    }
    if (conf) {
      const cur = fileSha(conf.path);
      if (lstatOrNone(conf.path) && cur !== confSha && (cur === undefined || m.files[conf.path] !== cur)) foreign.push(conf.path);
    }
    if (foreign.length && !o.force) throw new InstallRefused(foreign);

    const vdir = path.join(binDir, STATE, id);
    if (fs.existsSync(path.join(vdir, 'flax'))) report(`unchanged ${vdir}/`);
    else {
      copyDirAtomic(o.from, pkg.files, vdir);
      report(`installed ${vdir}/ (${pkg.files.join(' ')})`);
    }
    if (!m.versions.includes(id)) m.versions.push(id);
    const previous = m.current && m.current !== id ? m.current : undefined;
    m.current = id;
    writeManifest(binDir, m);

    for (const l of links) {
      const cur = readlinkOrNone(l);
      const target = targetOf(l);
      if (cur === target) {
        if (m.links[l] !== target) { m.links[l] = target; report(`adopted ${l} -> ${target}`); }
        else report(`unchanged ${l}`);
        continue;
      }
      const kept = foreign.includes(l) ? keepForeign(m, l) : undefined;
      symlinkAtomic(target, l);
      m.links[l] = target;
      report(`${kept ? 'replaced' : cur ? 'upgraded' : 'linked'} ${l} -> ${target}${kept ? ` (the file there is kept as ${kept})` : ''}`);
    }
    // links of executables this version no longer has
    for (const l of Object.keys(m.links)) {
      if (links.includes(l)) continue;
      if (readlinkOrNone(l) === m.links[l]) removeOrRestore(m, l, report);
      delete m.links[l];
    }

    if (conf) {
      if (fileSha(conf.path) === confSha) {
        if (m.files[conf.path] !== confSha) { m.files[conf.path] = confSha!; report(`adopted ${conf.path}`); }
        else report(`unchanged ${conf.path}`);
      } else {
        fs.mkdirSync(path.dirname(conf.path), { recursive: true, mode: 0o755 });
        const kept = foreign.includes(conf.path) ? keepForeign(m, conf.path) : undefined;
        const existed = !!lstatOrNone(conf.path);
        writeFileAtomic(conf.path, conf.content);
        m.files[conf.path] = confSha!;
        report(`${kept ? 'replaced' : existed ? 'updated' : 'wrote'} ${conf.path}${kept ? ` (the file there is kept as ${kept})` : ''}`);
      }
      // A conflist installed earlier under another name would be a second network.
      for (const [p, sha] of Object.entries(m.files)) {
        if (p === conf.path) continue;
        if (fileSha(p) === sha) removeOrRestore(m, p, report, 'superseded');
        delete m.files[p];
      }
    }
    writeManifest(binDir, m);

    // Keep the current and the previous version (a call started before the
    // switch may still load its addons); remove the older ones.
    for (const v of [...m.versions]) {
      if (v === id || v === previous) continue;
      fs.rmSync(path.join(binDir, STATE, v), { recursive: true, force: true });
      m.versions = m.versions.filter((x) => x !== v);
      report(`removed ${path.join(binDir, STATE, v)}/ (an older version)`);
    }
    m.server = applyServer(o.server ?? 'off', binDir, m.server, o.serverPaths ?? defaultServerPaths(), report);
    if (!m.server) delete m.server;
    writeManifest(binDir, m);
  });
}

/** Removes p (ours, unchanged), or puts back the foreign file it replaced. */
function removeOrRestore(m: Manifest, p: string, report: Report, why = ''): void {
  const kept = m.replaced[p];
  if (kept && fs.existsSync(kept)) {
    fs.renameSync(kept, p);
    report(`restored ${p} (the file flax replaced)`);
  } else {
    fs.rmSync(p, { force: true });
    report(`removed ${p}${why ? ` (${why})` : ''}`);
  }
  delete m.replaced[p];
}

/** True when <binDir> holds a manifest: there is something for --uninstall to remove. */
export const installed = (binDir: string): boolean => fs.existsSync(path.join(path.resolve(binDir), STATE, MANIFEST));

/** Removes exactly what install wrote; a file changed since is kept (reported) unless force. */
export function uninstall(binDirIn: string, force: boolean, report: Report, serverPaths: ServerPaths = defaultServerPaths()): void {
  const binDir = path.resolve(binDirIn);
  const state = path.join(binDir, STATE);
  if (!installed(binDir)) {
    report(`nothing to uninstall: no ${path.join(state, MANIFEST)}`);
    return;
  }
  locked(binDir, () => {
    const m = readManifest(binDir);
    // the server first (systemd's units stopped while their flaxd still exists)
    if (m.server) applyServer('off', binDir, m.server, serverPaths, report);
    for (const [l, t] of Object.entries(m.links)) {
      const cur = readlinkOrNone(l);
      if (cur === undefined && !lstatOrNone(l)) report(`absent ${l}`);
      else if (cur === t || force) removeOrRestore(m, l, report);
      else report(`kept ${l} (changed since flax installed it)`);
    }
    for (const [p, sha] of Object.entries(m.files)) {
      const cur = fileSha(p);
      if (!lstatOrNone(p)) report(`absent ${p}`);
      else if (cur === sha || force) removeOrRestore(m, p, report);
      else report(`kept ${p} (changed since flax installed it)`);
    }
    for (const v of m.versions) {
      fs.rmSync(path.join(state, v), { recursive: true, force: true });
      report(`removed ${path.join(state, v)}/`);
    }
    // Foreign files kept for links that were changed since are left where they are.
    const left = Object.values(m.replaced).filter((p) => fs.existsSync(p));
    for (const p of left) report(`kept ${p} (a replaced file whose place was changed since)`);
    fs.rmSync(path.join(state, MANIFEST), { force: true });
  });
  // the lock file goes last, once it is released
  fs.rmSync(path.join(state, 'lock'), { force: true });
  try { fs.rmdirSync(state); } catch { /* something else is there: leave it */ }
}
