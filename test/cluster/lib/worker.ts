/**
 * The real worker: containerd 1.6 (Debian) with its CRI plugin and kubelet,
 * both inside the worker's netns AND a private mount namespace, held open by
 * a `sleep` holder process. In that mount namespace a scratch dir is
 * bind-mounted over every host path the node's pods and runtime use
 * (/opt/cni/bin, /etc/cni/net.d, /var/lib/cni, /run/flannel, /run/flax,
 * /run/netns, /run/containerd, /var/log/pods, /var/log/containers,
 * /run/xtables.lock): conf/flax.yml's hostPaths are used unchanged, yet
 * nothing on the machine's filesystem changes. A mount point that does not
 * exist on the host is created first and removed after.
 *
 * What cannot be private: kubelet's cgroups (kubepods under each v1
 * hierarchy) and the kernel sysctls kubelet tunes (vm.overcommit_memory,
 * kernel.panic, kernel.panic_on_oops, kernel.keys.*). Both are recorded
 * before and put back after.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readSysctl, writeSysctl } from '../../lib/host-state';
import { run, scratchContainerdToml, sleep, type RunOut } from '../../lib/e2e';
import { nsPath } from './net';
import { peerBin } from './peers';
import { alive, type Daemon, logTail, startDaemon, stopDaemon } from './proc';
import { PAUSE_IMAGE } from './images';

export const HOST_DIRS = ['/opt/cni/bin', '/etc/cni/net.d', '/var/lib/cni', '/run/flannel', '/run/flax', '/run/netns', '/run/containerd', '/var/log/pods', '/var/log/containers'];
export const HOST_FILES = ['/run/xtables.lock'];
const KUBELET_SYSCTLS = ['vm.overcommit_memory', 'vm.panic_on_oom', 'kernel.panic', 'kernel.panic_on_oops', 'kernel.keys.root_maxkeys', 'kernel.keys.root_maxbytes'];

export interface Worker {
  name: string; ns: string; ip: string; dir: string; holder: Daemon; sock: string;
  containerd?: Daemon; kubelet?: Daemon;
  /** the scratch dir standing for a host path on this node */
  host: (p: string) => string;
  ctr: (args: string[], allowFail?: boolean) => RunOut;
  /** runs a command in the worker's netns + mount ns */
  exec: (cmd: string, args: string[], allowFail?: boolean) => RunOut;
  startContainerd: () => Promise<void>;
  startKubelet: () => Promise<void>;
}

/** What the worker changes outside its namespaces, recorded before it starts. */
export class HostRecord {
  created: string[] = [];
  sysctls = new Map<string, string | null>();
  cgroups = new Map<string, Set<string>>();
  static take(): HostRecord {
    const r = new HostRecord();
    for (const k of KUBELET_SYSCTLS) r.sysctls.set(k, readSysctl(k));
    for (const h of readdirSync('/sys/fs/cgroup')) {
      const d = path.join('/sys/fs/cgroup', h);
      try { r.cgroups.set(d, new Set(readdirSync(d).filter((e) => statSync(path.join(d, e)).isDirectory()))); } catch { /* not a hierarchy */ }
    }
    return r;
  }
  /** mkdir -p p (or touch a file), remembering the topmost created path */
  ensure(p: string, file = false): void {
    if (existsSync(p)) return;
    let top = p;
    while (!existsSync(path.dirname(top))) top = path.dirname(top);
    mkdirSync(file ? path.dirname(p) : p, { recursive: true });
    if (file) writeFileSync(p, '');
    this.created.push(top);
  }
  /** puts back sysctls, removes new cgroups (deepest first; their processes must be gone), removes created paths (empty only) */
  restore(): string[] {
    const problems: string[] = [];
    for (const [k, v] of this.sysctls) if (v !== null && readSysctl(k) !== v) writeSysctl(k, v);
    for (const [k, v] of this.sysctls) if (v !== null && readSysctl(k) !== v) problems.push(`sysctl ${k} is ${readSysctl(k)}, was ${v}`);
    for (const [d, before] of this.cgroups) {
      let now: string[] = [];
      try { now = readdirSync(d).filter((e) => statSync(path.join(d, e)).isDirectory()); } catch { continue; }
      for (const e of now) if (!before.has(e)) { const left = rmCgroupTree(path.join(d, e)); if (left) problems.push(left); }
    }
    for (const p of [...this.created].reverse()) {
      try { rmEmptyTree(p); } catch (e) { problems.push(`could not remove ${p}: ${(e as Error).message}`); }
    }
    return problems;
  }
}

function rmEmptyTree(p: string): void {
  if (!existsSync(p)) return;
  const st = statSync(p);
  if (st.isDirectory()) {
    for (const e of readdirSync(p)) rmEmptyTree(path.join(p, e));
    rmdirSync(p);
  } else if (st.size === 0) {
    run('rm', ['-f', p]);
  } else throw new Error(`${p} is not empty`);
}

function rmCgroupTree(d: string): string | null {
  let kids: string[] = [];
  try { kids = readdirSync(d).filter((e) => statSync(path.join(d, e)).isDirectory()); } catch { return null; }
  for (const k of kids) rmCgroupTree(path.join(d, k));
  for (let i = 0; i < 50; i++) {
    try { rmdirSync(d); return null; } catch { /* busy: processes still exiting */ }
    const procs = (() => { try { return readFileSync(path.join(d, 'cgroup.procs'), 'utf8').trim(); } catch { return ''; } })();
    for (const pid of procs.split('\n').filter(Boolean)) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } }
    run('sleep', ['0.1']);
  }
  return `cgroup ${d} could not be removed`;
}

/** pids whose mount namespace is that of pid (the holder's): containerd, kubelet, the shims */
export function pidsInMountNs(pid: number): number[] {
  let mine: string;
  try { mine = readlinkSync(`/proc/${pid}/ns/mnt`); } catch { return []; }
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === pid) continue;
    try { if (readlinkSync(`/proc/${e}/ns/mnt`) === mine) out.push(Number(e)); } catch { /* gone */ }
  }
  return out;
}

/** pids in a kubepods cgroup (the pods' processes) */
export function podPids(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try { if (/:\/kubepods/.test(readFileSync(`/proc/${e}/cgroup`, 'utf8'))) out.push(Number(e)); } catch { /* gone */ }
  }
  return out;
}

export async function createWorker(o: { dir: string; name: string; ns: string; ip: string; kubeconfig: string; ca: string; rec: HostRecord; logs: string; dnsIp?: string }): Promise<Worker> {
  const { dir, name, ns, ip, rec } = o;
  const host = (p: string) => path.join(dir, 'host', p);
  // containerd wants the source of HostToContainer (rslave) volumes on a shared or slave mount, and resolves
  // /var/run/netns to the mount "/" (no symlink resolution): in this private copy everything is made rshared,
  // as systemd does on a real node (it propagates nowhere outside: the copy was made private first)
  const binds: string[] = ['mount --make-rshared /'];
  for (const p of HOST_DIRS) { rec.ensure(p); mkdirSync(host(p), { recursive: true }); binds.push(`mount --bind ${host(p)} ${p}`); }
  for (const p of HOST_FILES) { rec.ensure(p, true); mkdirSync(path.dirname(host(p)), { recursive: true }); writeFileSync(host(p), ''); binds.push(`mount --bind ${host(p)} ${p}`); }
  binds.push('mount --make-shared /run/netns');
  const holder = startDaemon(`${name}-holder`, ['nsenter', `--net=${nsPath(ns)}`, '--', 'unshare', '-m', '--propagation', 'private', '--',
    'sh', '-c', `set -e; ${binds.join('; ')}; echo mounted; exec sleep infinity`], o.logs);
  for (let t = 0; !readFileSync(holder.log, 'utf8').includes('mounted'); t++) {
    if (!alive(holder) || t > 100) throw new Error(`worker mount namespace: ${logTail(holder)}`);
    await sleep(100);
  }
  // the holder's pid is the sh exec'd into sleep, a child of nsenter → unshare (both exec, so it is the spawned pid)
  const hpid = holder.child.pid!;
  const enter = (cmd: string, args: string[]) => ['nsenter', '-t', String(hpid), '-m', '-n', '--', cmd, ...args];
  const sock = path.join(dir, 'containerd', 'containerd.sock');
  const w: Worker = {
    name, ns, ip, dir, holder, sock, host,
    exec: (cmd, args, allowFail = false) => run(enter(cmd, args)[0], enter(cmd, args).slice(1), { allowFail, timeoutMs: 120_000 }),
    ctr: (args, allowFail = false) => run('ctr', ['--address', sock, '-n', 'k8s.io', ...args], { allowFail, timeoutMs: 300_000 }),
    startContainerd: async () => {
      w.containerd = startDaemon(`${name}-containerd`, enter('containerd', ['--config', path.join(dir, 'containerd', 'config.toml')]), o.logs);
      for (let t = 0; ; t++) {
        if (!alive(w.containerd)) throw new Error(`containerd exited:\n${logTail(w.containerd)}`);
        if (existsSync(sock) && w.ctr(['version'], true).code === 0) break;
        if (t > 300) throw new Error(`containerd not serving after 30 s:\n${logTail(w.containerd)}`);
        await sleep(100);
      }
    },
    // as a node's service manager does (Restart=always): kubelet exits at once while containerd's CRI is still
    // initialising ("server is not initialized yet", e.g. while it cleans up after a kill -9), so it is started
    // again until its healthz answers
    startKubelet: async () => {
      const start = () => startDaemon(`${name}-kubelet`, enter(peerBin('kubelet'), [
        '--config', path.join(dir, 'kubelet', 'config.yaml'), '--kubeconfig', o.kubeconfig,
        '--root-dir', path.join(dir, 'kubelet', 'root'), '--hostname-override', name, '--node-ip', ip,
        '--v', '2',
      ]), o.logs);
      w.kubelet = start();
      for (let t = 0; ; t++) {
        const h = run('nsenter', [`--net=${nsPath(ns)}`, '--', 'curl', '-s', '-m', '2', 'http://127.0.0.1:10248/healthz'], { allowFail: true });
        if (h.code === 0 && h.stdout.trim() === 'ok') return;
        if (t > 240) throw new Error(`kubelet not healthy after 120 s:\n${logTail(w.kubelet, 3000)}`);
        if (!alive(w.kubelet)) { await sleep(1000); w.kubelet = start(); }
        await sleep(500);
      }
    },
  };
  const croot = path.join(dir, 'containerd');
  mkdirSync(croot, { recursive: true });
  writeFileSync(path.join(croot, 'config.toml'), [
    ...scratchContainerdToml({ root: path.join(croot, 'root'), state: path.join(croot, 'state'), sock }),
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(path.join(croot, 'opt'))}`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}`,
    '  disable_apparmor = true',
    '  enable_selinux = false',
    '  stream_server_address = "127.0.0.1"',
    // root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below containerd's own (the sandbox's -998
    // would make runc init fail: "can't get final child's PID from pipe: EOF"); CRI clamps it to containerd's instead
    '  restrict_oom_score_adj = true',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '    default_runtime_name = "runc"',
    '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '      runtime_type = "io.containerd.runc.v2"',
    '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    '        SystemdCgroup = false',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    '    bin_dir = "/opt/cni/bin"',
    '    conf_dir = "/etc/cni/net.d"',
    '    max_conf_num = 1',
    '',
  ].join('\n'));
  const kdir = path.join(dir, 'kubelet');
  mkdirSync(path.join(kdir, 'root'), { recursive: true });
  mkdirSync(path.join(kdir, 'plugins'), { recursive: true });
  writeFileSync(path.join(kdir, 'resolv.conf'), `nameserver ${o.dnsIp ?? '127.0.0.1'}\n`);
  writeFileSync(path.join(kdir, 'config.yaml'), [
    'apiVersion: kubelet.config.k8s.io/v1beta1',
    'kind: KubeletConfiguration',
    'authentication:',
    '  anonymous: {enabled: false}',
    '  webhook: {enabled: true}',
    `  x509: {clientCAFile: ${JSON.stringify(o.ca)}}`,
    'authorization: {mode: Webhook}',
    `address: ${JSON.stringify(ip)}`,
    'port: 10250',
    'readOnlyPort: 0',
    'healthzBindAddress: 127.0.0.1',
    'healthzPort: 10248',
    'cgroupDriver: cgroupfs',
    'failSwapOn: false',
    'failCgroupV1: false',
    `containerRuntimeEndpoint: unix://${sock}`,
    `resolvConf: ${JSON.stringify(path.join(kdir, 'resolv.conf'))}`,
    `volumePluginDir: ${JSON.stringify(path.join(kdir, 'plugins'))}`,
    `podLogsDir: /var/log/pods`,
    'evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}',
    'imageGCHighThresholdPercent: 100',
    'imageGCLowThresholdPercent: 99',
    'serializeImagePulls: false',
    'syncFrequency: 5s',
    'fileCheckFrequency: 5s',
    'nodeStatusUpdateFrequency: 5s',
    'clusterDomain: cluster.local',
    'clusterDNS: []',
    '',
  ].join('\n'));
  return w;
}

/** Stops kubelet, containerd and its shims, the pods' processes, then the holder (the mount ns goes with it). */
export async function destroyWorker(w: Worker | undefined): Promise<void> {
  if (!w) return;
  await stopDaemon(w.kubelet, 5000);
  // the pods' processes, then containerd and everything else in the worker's mount ns (the shims)
  for (const pid of podPids()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  await stopDaemon(w.containerd, 5000);
  for (let i = 0; i < 3; i++) {
    for (const pid of [...pidsInMountNs(w.holder.child.pid!), ...podPids()]) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await sleep(300);
  }
  await stopDaemon(w.holder, 2000);
}
