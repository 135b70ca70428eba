/**
 * What the podman e2e files share (podman.test.ts, podman-libcni.test.ts,
 * bridge-podman.test.ts): podman 4.3 with its CNI backend on scratch
 * storage and config, one busybox image, under the machine-wide e2e lock,
 * with the root netns state it touches (firewall, CNI state dirs,
 * ip_forward, the suite's bridge) snapshotted before and put back after.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import {
  type PluginDir, type PluginSet, type RunOut, type TraceEntry, acquireE2eLock, formatTrace, importBusyboxImage, makePluginDir, podmanStorageArgs,
  readTrace, removeScratch, run, scratchDir, writePodmanConf,
} from './e2e';
import { CniStateSnapshot, FirewallSnapshot, deleteLink, readSysctl, restoreRunState } from './host-state';

export interface PodmanSuiteOptions {
  /** scratch dir tag and the label of cleanup messages */
  tag: string;
  /** the suite's network and bridge (removed before and after) */
  net: string;
  bridge: string;
  image: string;
}

/** One scenario's network: plugins behind trace wrappers, podman's conflist for it (bridge name pinned). */
export interface PodmanNetwork {
  plugins: PluginDir;
  netDir: string;
  conflistPath: string;
  trace: () => TraceEntry[];
  /** `what` followed by every plugin call so far */
  explain: (what: string) => string;
}

export class PodmanSuite {
  base = '';
  conf = '';
  storageArgs: string[] = [];
  /** what the suite's containers were (for the firewall / CNI state restore) */
  readonly cids: string[] = [];
  readonly ips: string[] = [];
  readonly hostVeths: string[] = [];
  private lock: { release: () => void } | undefined;
  private fw: FirewallSnapshot | undefined;
  private cniState: CniStateSnapshot | undefined;
  private ipForward: string | null = null;

  constructor(readonly o: PodmanSuiteOptions) {}

  env = (): NodeJS.ProcessEnv => ({ ...process.env, CONTAINERS_CONF: this.conf });
  podman = (args: string[], allowFail = false): RunOut =>
    run('podman', [...this.storageArgs, ...args], { env: this.env(), allowFail, timeoutMs: 120_000 });

  /** Points podman at a plugin dir and a network config dir (both created). */
  writeConf(pluginDir: string, netDir: string): void {
    this.conf = writePodmanConf(this.base, pluginDir, netDir);
  }

  /** beforeAll: lock, scratch dir, snapshots, podman on the CNI backend, the image imported. */
  async setUp(): Promise<void> {
    this.lock = await acquireE2eLock();
    this.base = scratchDir(this.o.tag);
    this.fw = FirewallSnapshot.take();
    this.cniState = CniStateSnapshot.take();
    this.ipForward = readSysctl('net.ipv4.ip_forward');
    this.storageArgs = podmanStorageArgs(this.base);
    deleteLink(this.o.bridge); // leftover of an earlier run that died hard
    this.writeConf(path.join(this.base, 'plugins-none'), path.join(this.base, 'net.d'));
    const backend = this.podman(['info', '--format', '{{.Host.NetworkBackend}}']).stdout.trim();
    if (backend !== 'cni') throw new Error(`podman reports network backend ${JSON.stringify(backend)} with network_backend="cni" in CONTAINERS_CONF`);
    importBusyboxImage((a) => this.podman(a), this.base, this.o.image);
  }

  /** No container, network or bridge of an earlier scenario. */
  clear(): void {
    this.podman(['rm', '-af', '-t', '0'], true);
    this.podman(['network', 'rm', '-f', this.o.net], true);
    deleteLink(this.o.bridge);
  }

  /** Between scenarios: clear(), and the firewall and CNI state of the earlier ones put back. */
  reset(): void {
    this.clear();
    this.restoreFor(this.cids, this.ips);
  }

  /**
   * The suite's network for one scenario under <base>/<tag>: `set`'s
   * plugins (podman's chain: bridge, portmap, then the reference firewall
   * and tuning) behind trace wrappers, podman pointed at them, the network
   * created with `subnet`/`gateway` and its bridge name pinned in the
   * conflist podman wrote (4.3 has no --interface-name); fails when podman
   * does not load it (it drops a network whose plugin fails VERSION).
   */
  createNetwork(tag: string, set: PluginSet, subnet: string, gateway: string): PodmanNetwork {
    const dir = path.join(this.base, tag);
    const plugins = makePluginDir(dir, set, ['bridge', 'host-local', 'loopback', 'portmap'], ['firewall', 'tuning']);
    const netDir = path.join(dir, 'net.d');
    // always <base>/containers.conf: podman's DB pins tmp_dir, it must not move between scenarios
    this.writeConf(plugins.dir, netDir);
    const trace = () => readTrace(plugins.traceDir);
    const explain = (what: string) => `${what}\n\nplugin calls so far:\n${formatTrace(trace())}`;
    this.podman(['network', 'create', '--subnet', subnet, '--gateway', gateway, this.o.net]);
    const conflistPath = path.join(netDir, `${this.o.net}.conflist`);
    const conflist = JSON.parse(readFileSync(conflistPath, 'utf8'));
    conflist.plugins[0].bridge = this.o.bridge;
    writeFileSync(conflistPath, JSON.stringify(conflist, null, 3));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    const insp = JSON.parse(this.podman(['network', 'inspect', this.o.net]).stdout);
    expect(insp[0]?.network_interface ?? insp[0]?.NetworkInterface, explain('podman does not load the network')).toBe(this.o.bridge);
    return { plugins, netDir, conflistPath, trace, explain };
  }

  /** Firewall lines naming these containers / addresses, and their CNI state (the network's dataDir, their cache files), as before setUp. */
  restoreFor(cids: string[], ips: string[]): void {
    this.fw?.restore([...cids, ...ips]);
    this.cniState?.restore([this.o.net], cids);
  }

  /**
   * afterAll: `before` (the suite's own cleanup) runs first, then podman's
   * containers, network and image go, the bridge, the firewall and CNI
   * state are put back, `verify` adds what it still finds of the suite, the
   * scratch dir goes and the lock is released. Throws naming what was left.
   */
  tearDown(before: () => void = () => undefined, verify: (problems: string[]) => void = () => undefined): void {
    const problems: string[] = [];
    try {
      before();
      if (this.conf) {
        this.podman(['rm', '-af', '-t', '0'], true);
        this.podman(['network', 'rm', '-f', this.o.net], true);
        this.podman(['rmi', '-af'], true);
      }
      deleteLink(this.o.bridge);
      restoreRunState({ label: this.o.tag, fw: this.fw, cniState: this.cniState, net: this.o.net, cids: this.cids, ips: this.ips, ipForward: this.ipForward });
      verify(problems);
      if (this.base) removeScratch(this.base);
      if (this.base && existsSync(this.base)) problems.push(`scratch dir ${this.base} left`);
    } finally {
      this.lock?.release();
    }
    if (problems.length) throw new Error(`${this.o.tag} e2e cleanup: ${problems.join('; ')}`);
  }
}
