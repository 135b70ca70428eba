/**
 * Harness for the real-runtime end-to-end tests (podman 4.3 with its CNI
 * backend, containerd 1.6's `ctr run --cni`).
 *
 * The runtimes build their bridge, veths and NAT rules in the ROOT network
 * namespace (inherent: that is what they do), so everything here is about
 * touching as little as possible and putting back what was touched:
 * - dedicated names (bridges flaxe2e-pm0/flaxe2e-ct0, subnets 10.231.177.0/24
 *   and 10.231.178.0/24, networks flaxe2e-pm/flaxe2e-ctr; not flaxe2e0/1 and
 *   10.231.77-78: ad-hoc runs by others on this machine use those),
 *   `flaxe2e*`), a machine-wide lock so two suites never share them;
 * - scratch dirs for every runtime state/config dir that can be redirected;
 * - snapshots of the firewall, links and sysctls taken before, compared and
 *   restored after (only state that did not exist before and is ours or
 *   CNI's shared scaffolding is removed): host-state.ts.
 *
 * Plugins are called through trace wrappers (test-only shell scripts) that
 * record, per call, the CNI_* env, stdin, stdout, stderr, exit code and
 * duration, so a failure names exactly what the runtime sent and what the
 * plugin answered.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { REF_BIN, ROOT } from './cni';

export { REF_BIN, ROOT };
/** dist/bin itself (the runtimes get trace wrappers around it; FLAX_TEST_BIN is for the integration tests) */
export const DIST_BIN = path.join(ROOT, 'dist/bin');
export const CNI_STATE = '/var/lib/cni';

// ---- processes ---------------------------------------------------------------

export interface RunOut { code: number; stdout: string; stderr: string; ms: number }
export interface RunOpts { env?: NodeJS.ProcessEnv; input?: string; allowFail?: boolean; timeoutMs?: number; cwd?: string }

/** Runs a command synchronously; throws with its output unless allowFail. */
export function run(cmd: string, args: string[], o: RunOpts = {}): RunOut {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, {
    env: o.env ?? process.env, input: o.input, encoding: 'utf8', timeout: o.timeoutMs ?? 120_000, cwd: o.cwd, maxBuffer: 64 << 20,
  });
  const out: RunOut = { code: r.status ?? 255, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), ms: performance.now() - t0 };
  if (out.code !== 0 && !o.allowFail) {
    throw new Error(`\`${cmd} ${args.join(' ')}\` exited ${out.code}${r.signal ? ` (${r.signal})` : ''}:\n${out.stderr.trim()}\n${out.stdout.trim()}`.trim());
  }
  return out;
}

export function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 20_000, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/**
 * Why the e2e cannot run on this machine at all (not root, a runtime not
 * installed), or null. The tests skip with this exact reason.
 */
export function missingPrereq(tools: string[]): string | null {
  if (process.getuid?.() !== 0) return 'e2e needs root (runtimes create links and NAT rules in the root netns)';
  const missing = tools.filter((t) => !which(t));
  if (missing.length) return `not installed: ${missing.join(', ')} (run scripts/setup.sh)`;
  return null;
}

// ---- machine-wide lock ---------------------------------------------------------

/**
 * Holds /run/lock/flax-e2e.lock (flock) for the lifetime of the returned
 * handle: two e2e runs on one machine would fight over the same bridge names
 * and subnets. The holder is a child `flock … cat`: if this process dies its
 * stdin closes and the lock goes with it.
 */
export async function acquireE2eLock(timeoutMs = 200_000): Promise<{ release: () => void }> {
  mkdirSync('/run/lock', { recursive: true });
  const child: ChildProcess = spawn('flock', ['-x', '-w', String(Math.floor(timeoutMs / 1000)), '/run/lock/flax-e2e.lock', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d) => { out += d; if (out.includes('locked')) resolve(); });
    child.on('exit', (c) => reject(new Error(`could not take /run/lock/flax-e2e.lock (flock exited ${c}): another e2e run holds it`)));
    child.on('error', reject);
  });
  child.removeAllListeners('exit');
  return { release: () => { child.stdin!.end(); } };
}

// ---- scratch dirs, rootfs ----------------------------------------------------------

export function scratchDir(tag: string): string {
  return mkdtempSync(path.join('/tmp', `flax-e2e-${tag}-`));
}

/** Unmounts anything still mounted under dir (deepest first), then removes it. */
export function removeScratch(dir: string): void {
  if (!dir || !dir.startsWith('/tmp/flax-e2e-')) return;
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/'))).sort((a, b) => b.length - a.length);
  for (const m of mounts) run('umount', ['-l', m], { allowFail: true });
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A minimal root filesystem: busybox-static with one symlink per applet, a
 * web root for `httpd`, and the files runtimes bind over. Built at test time
 * (no image registry, nothing committed).
 */
export function buildBusyboxRootfs(dir: string): void {
  const bb = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!bb) throw new Error('busybox not found (apt-get install busybox-static)');
  const file = run('file', ['-L', bb], { allowFail: true }).stdout;
  if (file && /dynamically linked/.test(file)) throw new Error(`${bb} is dynamically linked: install busybox-static`);
  for (const d of ['bin', 'www', 'etc', 'tmp', 'proc', 'sys', 'dev', 'run', 'root']) mkdirSync(path.join(dir, d), { recursive: true });
  copyFileSync(bb, path.join(dir, 'bin/busybox'));
  chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const applet of run(bb, ['--list']).stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    if (applet !== 'busybox' && !existsSync(path.join(dir, 'bin', applet))) symlinkSync('busybox', path.join(dir, 'bin', applet));
  }
  writeFileSync(path.join(dir, 'www/index.html'), 'flax-e2e-ok\n');
  writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\n');
  for (const f of ['etc/hosts', 'etc/resolv.conf', 'etc/hostname']) writeFileSync(path.join(dir, f), '');
}

// ---- plugin dirs with trace wrappers ------------------------------------------------

export type PluginSet = 'ours' | 'reference';

export interface PluginDir {
  /** the dir to hand the runtime (CNI_PATH / cni_plugin_dirs) */
  dir: string;
  /** where each call leaves a record (see readTrace) */
  traceDir: string;
  /** which binary each plugin name really runs */
  real: Record<string, string>;
}

/**
 * Builds a plugin dir for a runtime: for every name a wrapper script that
 * records the call and runs the real plugin. `ours` names come from
 * dist/bin (copied with the .node addons into <base>/real, so a rebuild of
 * dist/bin during the run cannot pull the floor away), the others copied
 * from the reference plugins in /usr/lib/cni.
 */
/**
 * An executable of dist/bin with what it runs from: the Node launcher the
 * static CNI client falls back to (<name>.standalone), the launcher's bundle
 * and blob, when present.
 */
export function executableFiles(from: string, name: string): string[] {
  return [name, `${name}.standalone`, `${name}.js`, `${name}.blob`].filter((n, i) => i === 0 || existsSync(path.join(from, n)));
}

export function makePluginDir(base: string, set: PluginSet, oursNames: string[], refNames: string[]): PluginDir {
  const dir = path.join(base, 'plugins');
  const realDir = path.join(base, 'real');
  const traceDir = path.join(base, 'trace');
  for (const d of [dir, realDir, traceDir]) mkdirSync(d, { recursive: true });
  const real: Record<string, string> = {};
  if (set === 'ours') {
    // FLAX_E2E_BIN: another build of ours (a candidate, or a broken one to check the failure path)
    const from = process.env.FLAX_E2E_BIN || DIST_BIN;
    const need = [...oursNames.flatMap((n) => executableFiles(from, n)), 'flax.node', 'netlink.node'];
    const missing = need.filter((n) => !existsSync(path.join(from, n)));
    if (missing.length) throw new Error(`${from} lacks ${missing.join(', ')}: run \`node scripts/build.mjs\` (and the native build) first`);
    for (const n of need) {
      copyFileSync(path.join(from, n), path.join(realDir, n));
      chmodSync(path.join(realDir, n), 0o755);
    }
    for (const n of oursNames) real[n] = path.join(realDir, n);
  } else {
    refNames = [...oursNames, ...refNames];
  }
  // copies, never /usr/lib/cni paths: the containerd test bind-mounts the
  // wrapper dir over /usr/lib/cni, where a wrapper would find only itself
  for (const n of refNames) {
    copyFileSync(path.join(REF_BIN, n), path.join(realDir, n));
    chmodSync(path.join(realDir, n), 0o755);
    real[n] = path.join(realDir, n);
  }
  for (const [n, bin] of Object.entries(real)) {
    const w = path.join(dir, n);
    writeFileSync(w, traceWrapper(n, bin, traceDir), { mode: 0o755 });
  }
  return { dir, traceDir, real };
}

function traceWrapper(name: string, bin: string, traceDir: string): string {
  return `#!/bin/sh
# flax e2e trace wrapper (test-only): records the call, runs ${bin}
t0=$(date +%s%N)
d="${traceDir}/$t0-$$-${name}"
mkdir -p "$d"
env | grep '^CNI_' > "$d/env"
cat > "$d/stdin"
"${bin}" < "$d/stdin" > "$d/stdout" 2> "$d/stderr"
rc=$?
t1=$(date +%s%N)
echo "$rc $(( (t1 - t0) / 1000 ))" > "$d/rc"
cat "$d/stdout"
cat "$d/stderr" >&2
exit $rc
`;
}

export interface TraceEntry {
  /** ns since epoch at start */
  t0: bigint;
  plugin: string;
  command: string;
  env: Record<string, string>;
  stdin: string;
  stdout: string;
  stderr: string;
  code: number;
  /** wall time of the plugin alone, ms */
  ms: number;
}

/** All recorded calls, in start order. */
export function readTrace(traceDir: string): TraceEntry[] {
  if (!existsSync(traceDir)) return [];
  const out: TraceEntry[] = [];
  for (const e of readdirSync(traceDir)) {
    const m = /^(\d+)-\d+-(.+)$/.exec(e);
    if (!m) continue;
    const d = path.join(traceDir, e);
    const rd = (f: string) => (existsSync(path.join(d, f)) ? readFileSync(path.join(d, f), 'utf8') : '');
    const env: Record<string, string> = {};
    for (const l of rd('env').split('\n')) { const i = l.indexOf('='); if (i > 0) env[l.slice(0, i)] = l.slice(i + 1); }
    const [rc, us] = rd('rc').trim().split(' ');
    out.push({
      t0: BigInt(m[1]), plugin: m[2], command: env.CNI_COMMAND ?? '', env, stdin: rd('stdin'), stdout: rd('stdout'), stderr: rd('stderr'),
      code: rc === undefined || rc === '' ? -1 : Number(rc), ms: us ? Number(us) / 1000 : NaN,
    });
  }
  return out.sort((a, b) => (a.t0 < b.t0 ? -1 : a.t0 > b.t0 ? 1 : 0));
}

/** A readable dump of trace entries (for failure messages / the report). */
export function formatTrace(entries: TraceEntry[]): string {
  return entries.map((e) => [
    `--- ${e.plugin} ${e.command} → exit ${e.code} in ${e.ms.toFixed(1)} ms`,
    `env: ${Object.entries(e.env).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `stdin: ${e.stdin.trim()}`,
    `stdout: ${e.stdout.trim()}`,
    e.stderr.trim() ? `stderr: ${e.stderr.trim()}` : '',
  ].filter(Boolean).join('\n')).join('\n');
}

/** Calls that failed (VERSION probes included). */
export const failedCalls = (t: TraceEntry[]) => t.filter((e) => e.code !== 0);

/**
 * Duration of a runtime's chain operation as the plugins saw it: from the
 * start of the first call of `command` for container `cid` to the end of the
 * last one (delegated IPAM calls included, VERSION probes excluded).
 */
export function chainSpan(t: TraceEntry[], command: string, cid: string): { ms: number; calls: string[] } | null {
  const sel = t.filter((e) => e.command === command && e.env.CNI_CONTAINERID === cid);
  if (!sel.length) return null;
  const start = sel[0].t0;
  const end = sel.reduce((m, e) => { const x = e.t0 + BigInt(Math.round(e.ms * 1e6)); return x > m ? x : m; }, 0n);
  return { ms: Number(end - start) / 1e6, calls: sel.map((e) => `${e.plugin} ${e.ms.toFixed(0)}ms`) };
}

// ---- podman 4.3 scaffolding (shared by the podman suites) ----------------------------

/** `--root/--runroot/--storage-driver vfs` in a scratch dir: podman's storage never touches the host's. */
export function podmanStorageArgs(base: string): string[] {
  return ['--root', path.join(base, 'storage'), '--runroot', path.join(base, 'runroot'), '--storage-driver', 'vfs'];
}

/**
 * Writes a scratch containers.conf selecting podman 4.3's CNI backend with
 * the given plugin dir and network config dir (both created), runc and
 * cgroupfs; returns its path (for CONTAINERS_CONF).
 */
export function writePodmanConf(base: string, pluginDir: string, netDir: string): string {
  const conf = path.join(base, 'containers.conf');
  for (const d of [pluginDir, netDir]) mkdirSync(d, { recursive: true });
  writeFileSync(conf, [
    '[containers]',
    // root here lacks CAP_SYS_RESOURCE: podman's default ulimits would fail
    'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
    '[network]',
    'network_backend = "cni"',
    `cni_plugin_dirs = [${JSON.stringify(pluginDir)}]`,
    `network_config_dir = ${JSON.stringify(netDir)}`,
    '[engine]',
    // crun 1.8 does not work on this machine's hybrid cgroup layout
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = ${JSON.stringify(path.join(base, 'events.log'))}`,
    `tmp_dir = ${JSON.stringify(path.join(base, 'libpod-tmp'))}`,
    '',
  ].join('\n'));
  return conf;
}

/** Builds the busybox rootfs under base and `podman import`s it as `image` (CMD sh, PATH=/bin). */
export function importBusyboxImage(podman: (args: string[]) => RunOut, base: string, image: string): void {
  const rootfs = path.join(base, 'rootfs');
  buildBusyboxRootfs(rootfs);
  run('tar', ['-C', rootfs, '-cf', path.join(base, 'rootfs.tar'), '.']);
  podman(['import', '--change', 'CMD ["/bin/sh"]', '--change', 'ENV PATH=/bin', path.join(base, 'rootfs.tar'), image]);
}

/** libcni's cache file of one attachment: <cacheDir>/results/<net>-<cid>-<ifname>. */
export function cacheFileOf(network: string, containerId: string, ifName = 'eth0', cacheDir = CNI_STATE): string {
  return path.join(cacheDir, 'results', `${network}-${containerId}-${ifName}`);
}

/**
 * A private copy of the flax CLI (dist/bin/flax with its addons) under
 * base, so a rebuild of dist/bin during the run cannot change it; returns
 * the executable's path.
 */
export function copyFlaxCli(base: string): string {
  const from = process.env.FLAX_E2E_BIN || DIST_BIN;
  const dir = path.join(base, 'flax-cli');
  mkdirSync(dir, { recursive: true });
  for (const n of [...executableFiles(from, 'flax'), 'flax.node', 'netlink.node']) {
    if (!existsSync(path.join(from, n))) throw new Error(`${from} lacks ${n}: run \`node scripts/build.mjs\` (and the native build) first`);
    copyFileSync(path.join(from, n), path.join(dir, n));
    chmodSync(path.join(dir, n), 0o755);
  }
  return path.join(dir, 'flax');
}

/**
 * The head of a scratch containerd's config.toml: its own root, state and
 * gRPC socket, no ttrpc, debug or metrics listener (nothing of the
 * machine's containerd is shared); `top`: more top-level keys (before the
 * tables). The callers append their plugins' tables.
 */
export function scratchContainerdToml(o: { root: string; state: string; sock: string; top?: string[] }): string[] {
  return [
    'version = 2',
    `root = ${JSON.stringify(o.root)}`,
    `state = ${JSON.stringify(o.state)}`,
    ...(o.top ?? []),
    '[grpc]',
    `  address = ${JSON.stringify(o.sock)}`,
    '[ttrpc]',
    '  address = ""',
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
  ];
}
