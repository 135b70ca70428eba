/**
 * flaxd's start-up and run loop (flanneld main.go; backends in backend/setup.ts):
 *   lock `<subnet-file>.lock` → network config → external interface →
 *   device (MAC of our existing lease, if any) → lease → address → first
 *   reconcile → subnet.env → run: re-list + reconcile on store changes and
 *   every --reconcile-interval, renew the lease before expiry.
 * SIGTERM/SIGINT stop the loop and leave the data plane as it is. Our own
 * lease disappearing from the store is fatal (exit 1), as in flanneld.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { type FileLock, LockPathError, lockFile } from '../pkg/lock';
import { isErrno } from '../pkg/native';
import { AF_INET, AF_INET6, openHandle, type NetlinkHandle, RTMGRP } from '../pkg/netlink';
import { kernelChangeReason, OurDevices } from './backend/kernel-events';
import { type Prefix, formatPrefix } from '../pkg/ip';
import { ConfigError, describeNetworks, type NetConfig, parseNetConfig, parseVxlanConfig } from './config';
import { FileLeaseStore } from './store/file';
import { openEtcdLeaseStore } from './store/etcd';
import { openKubeLeaseStore } from './store/kube';
import { type AgentOptions } from './flags';
import { describeExt, lookupExtIface } from './backend/iface';
import { type Clock, type LeaseStore, leaseSubnets, systemClock } from './store/lease';
import { type Logger } from './log';
import { readSubnetFileCidr, renderSubnetEnv, writeFileAtomic } from './subnet-env';
import { AgentLoop, type LoopParts } from './loop';
import { BACKENDS, setupBackend } from './backend/setup';
import { AgentMetrics } from './metrics';
import { startHealthServer } from './health';
import { NodeSweeper, sweeperOptions } from './sweeper';
import { FlannelFirewall } from './firewall/firewall';
import { familyRules } from './firewall/rules';

/**
 * Takes the one-agent-per-node lock beside the subnet file and records our
 * pid in it. A held lock is a ConfigError naming the holder; nothing is
 * written in that case. A symbolic link there is refused, never followed.
 */
export function lockSubnetFile(subnetFile: string): FileLock {
  const p = `${subnetFile}.lock`;
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
  let lock: FileLock;
  try {
    lock = lockFile(p, { nonBlocking: true, noFollow: true });
  } catch (e) {
    if (e instanceof LockPathError) throw new ConfigError(e.message);
    if (isErrno(e, 'EWOULDBLOCK') || isErrno(e, 'EAGAIN')) {
      let holder = 'unknown process';
      try {
        const pid = fs.readFileSync(p, 'utf8').trim();
        if (/^\d+$/.test(pid)) {
          let cmd = '';
          try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch { /* gone or hidden */ }
          holder = `pid ${pid}${cmd ? ` (${cmd.slice(0, 120)})` : ''}`;
        }
      } catch { /* unreadable: keep "unknown" */ }
      throw new ConfigError(`another agent holds ${p}: ${holder}; one agent per subnet file`);
    }
    throw e;
  }
  fs.ftruncateSync(lock.fd);
  fs.writeSync(lock.fd, `${process.pid}\n`, 0);
  return lock;
}

/** The config file; when it is absent, the one the store holds (etcd's `<prefix>/config`, as flanneld reads etcd's). */
function loadNetConfig(file: string, held?: LeaseStore['netConfig']): NetConfig {
  let text: string;
  if (held && !fs.existsSync(file)) {
    if (held.text === null) throw new ConfigError(`no network config: ${file} does not exist and etcd has no ${held.where}`);
    text = held.text;
  } else try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read network config ${file}: ${(e as Error).message}`);
  }
  const cfg = parseNetConfig(text);
  if (!(BACKENDS as readonly string[]).includes(cfg.backendType)) throw new ConfigError(`Backend.Type: backend ${JSON.stringify(cfg.backendType)} is not supported by flaxd yet (${BACKENDS.join(', ')})`);
  return cfg;
}

/**
 * The lease store the flags choose (flanneld's newSubnetManager): etcd
 * (--etcd-endpoints; reached at once, with a bounded retry, as it may hold
 * the network config), the Kubernetes API (--kube-subnet-mgr), else the
 * lease files in --lease-dir.
 */
export async function openLeaseStore(o: AgentOptions, { clock, log }: { clock: Clock; log: Logger }): Promise<LeaseStore> {
  if (o.etcdEndpoints.length) {
    return openEtcdLeaseStore({ endpoints: o.etcdEndpoints, prefix: o.etcdPrefix,
      cafile: o.etcdCafile, certfile: o.etcdCertfile, keyfile: o.etcdKeyfile, username: o.etcdUsername, password: o.etcdPassword, clock, log });
  }
  if (o.kubeSubnetMgr) {
    return openKubeLeaseStore({ kubeconfigFile: o.kubeconfigFile, kubeApiUrl: o.kubeApiUrl, nodeName: o.nodeName, log,
      annotationPrefix: o.kubeAnnotationPrefix, setNodeNetworkUnavailable: o.setNodeNetworkUnavailable });
  }
  return new FileLeaseStore({ dir: o.leaseDir, clock, relistMs: 0 /* the loop re-lists every interval */, warn: (m) => log.warn(m) });
}

/** Refuses what this build cannot do, before any side effect. */
function refuseUnimplemented(o: AgentOptions, log: Logger): void {
  if (o.kubeSubnetMgr && o.etcdEndpoints.length) throw new ConfigError('--kube-subnet-mgr and --etcd-endpoints: choose one lease store');
  if (o.kubeSubnetMgr && !o.nodeName) throw new ConfigError('--kube-subnet-mgr needs the node name: --node-name or $NODE_NAME');
}

/**
 * flanneld's br_netfilter check (main.go): with iptables rules (not
 * EnableNFTables), /proc/sys/net/bridge/bridge-nf-call-iptables (IPv4) and
 * bridge-nf-call-ip6tables (IPv6) must exist, or bridged pod traffic would
 * bypass the rules (kube-proxy's Services too). ConfigError naming the file
 * and the fix. `exists` is the seam for unit tests.
 */
export function checkBrNetfilter(c: Pick<NetConfig, 'enableIPv4' | 'enableIPv6' | 'enableNFTables'>, exists: (p: string) => boolean = fs.existsSync): void {
  if (c.enableNFTables) return;
  for (const [on, f] of [[c.enableIPv4, 'bridge-nf-call-iptables'], [c.enableIPv6, 'bridge-nf-call-ip6tables']] as const) {
    const p = `/proc/sys/net/bridge/${f}`;
    if (on && !exists(p)) {
      throw new ConfigError(`${p} does not exist: the br_netfilter kernel module is not loaded (run \`modprobe br_netfilter\`, and list it in /etc/modules-load.d/ to load it at boot)`);
    }
  }
}

/**
 * Runs fn now and then `periodS` seconds after each run ends (never two at
 * once), until the returned stop() — flanneld's --iptables-resync loop.
 */
function every(periodS: number, fn: () => Promise<void>): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const tick = () => {
    running = fn().finally(() => {
      if (!stopped) timer = setTimeout(tick, periodS * 1000);
    });
  };
  timer = setTimeout(tick, periodS * 1000);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

export interface AgentDeps {
  log: Logger;
  clock?: Clock;
  /** the store; default: the one the flags choose (openLeaseStore) */
  store?: LeaseStore;
  handle?: NetlinkHandle;
  /** default: a registry of its own (flaxd's CNI server adds its series to it: flaxd.ts) */
  metrics?: AgentMetrics;
  /** once subnet.env is written, before the loop runs (flaxd.ts starts the CNI server) */
  onRunning?: () => Promise<void>;
  /** flaxd's executable: once it runs (overlay or --no-overlay), start-up's memory given back (footprint.ts) */
  afterStart?: () => void;
  /** existence of a /proc/sys file (the br_netfilter check); default fs.existsSync */
  exists?: (path: string) => boolean;
}

/** Runs the agent until a signal (resolves 0) or a fatal error (rejects; ConfigError = exit 1). */
export async function runAgent(o: AgentOptions, deps: AgentDeps): Promise<number> {
  const { log } = deps;
  const clock = deps.clock ?? systemClock;
  refuseUnimplemented(o, log);
  const lock = lockSubnetFile(o.subnetFile);
  let h: NetlinkHandle | undefined;
  let store: LeaseStore | undefined;
  const metrics = deps.metrics ?? await AgentMetrics.create();
  let ready = false;
  let started = false;
  let healthz: import('node:http').Server | undefined;
  let resync: { stop(): Promise<void> } | undefined;
  const sweeper = new NodeSweeper(sweeperOptions(o), log, metrics);
  try {
    if (o.healthzPort > 0) healthz = await startHealthServer({ ip: o.healthzIp, port: o.healthzPort, metrics, ready: () => ready });
    // the store first: etcd's may hold the network config (<prefix>/config)
    store = deps.store ?? await openLeaseStore(o, { clock, log });
    const config = loadNetConfig(o.netConfigPath, store.netConfig);
    if (config.backendType === 'vxlan') parseVxlanConfig(config.backend); // a bad field is refused before any side effect
    checkBrNetfilter(config, deps.exists);
    h = deps.handle ?? openHandle();
    store.useConfig?.(config);
    const fam = { v4: config.enableIPv4, v6: config.enableIPv6 };
    // the public IPs the store holds for us (kube: our Node's node-public-ip(v6) annotations) win over the flags, as in flanneld
    const stored = await store.storedPublicIPs?.();
    const ext = await lookupExtIface(h, stored ? { ...o, publicIp: stored.publicIp || o.publicIp, publicIpv6: stored.publicIpv6 || o.publicIpv6 } : o, fam);
    log.info(`${describeNetworks(config)}; external interface ${describeExt(ext)}`);

    const { attrs, mtu, network: backendNetwork } = await setupBackend({ h, config, ext, store, log });
    const prevSubnet = readSubnetFileCidr(o.subnetFile, 'FLANNEL_SUBNET');
    const prevIPv6Subnet = readSubnetFileCidr(o.subnetFile, 'FLANNEL_IPV6_SUBNET');
    const own = await store.acquire(attrs, { config, prevSubnet, prevIPv6Subnet, randInt: (n) => randomInt(n), log: (m) => log.info(m) });
    metrics.leaseExpiration(own.expiration);
    log.info(`lease ${leaseSubnets(own)} ${own.expiration === null ? '(reservation)' : `expires ${new Date(own.expiration).toISOString()}`}`);

    const net = backendNetwork(own);
    const fw = new FlannelFirewall(config.enableNFTables ? 'nftables' : 'iptables',
      familyRules(config, own, { masq: o.ipMasq, forward: o.iptablesForwardRules, randomFully: !o.ipMasqFullyRandomDisable }), log);
    const networks = [config.enableIPv4 && config.network, config.enableIPv6 && config.ipv6Network].filter((n): n is Prefix => !!n);
    const handle = h;
    const devices = new OurDevices();
    const kernelChanges = (onChange: (why: string) => void) => {
      const sub = handle.subscribe(RTMGRP.LINK | RTMGRP.NEIGH | RTMGRP.IPV4_ROUTE | RTMGRP.IPV6_ROUTE, (e) => {
        devices.see(e);
        const why = kernelChangeReason(e, networks, devices.indexes);
        if (why) onChange(why);
      }, onChange);
      handle.linkList().then((ls) => devices.seed(ls), (e: Error) => log.warn(`listing links: ${e.message}`));
      return sub;
    };
    const loop = new AgentLoop({ store, net, own, log, clock, reconcileIntervalMs: o.reconcileInterval * 1000, renewMarginMinutes: o.subnetLeaseRenewMargin, observer: metrics, kernelChanges });
    await loop.sync('start');
    // as flanneld: the rules are in place before subnet.env, or the agent does not start
    await fw.ensure();
    // then re-checked every --iptables-resync seconds (flanneld's default 5), rebuilt when someone removed them;
    // with --ip-blackhole-route, our subnets' blackhole routes are re-checked at the same period (as flanneld)
    const blackholes = o.ipBlackholeRoute ? [config.enableIPv4 && own.subnet, config.enableIPv6 && own.ipv6Subnet].filter((n): n is Prefix => !!n) : [];
    const keepBlackholes = async () => {
      for (const sn of blackholes) {
        const dst = formatPrefix(sn);
        const have = await handle0.routeList({ family: sn.v6 ? AF_INET6 : AF_INET });
        if (have.some((r) => r.type === 'blackhole' && r.dst === dst)) continue;
        try {
          await handle0.routeAdd({ dst, type: 'blackhole' });
          log.info(`--ip-blackhole-route: added blackhole route ${dst}`);
        } catch (e) {
          log.error(`--ip-blackhole-route: ${dst}: ${(e as Error).message}`);
        }
      }
    };
    const handle0 = h;
    await keepBlackholes();
    resync = every(o.iptablesResync, async () => {
      try {
        const n = await fw.ensure();
        if (n) metrics.reconcileRepairs.inc(n);
        log.debug(`firewall rules checked: ${n ? `${n} repaired` : 'in place'}`);
      } catch (e) {
        metrics.reconcileFailures.inc();
        log.error(`firewall rules: ${(e as Error).message}; retrying in ${o.iptablesResync} s`);
      }
      await keepBlackholes().catch((e: Error) => log.error(`--ip-blackhole-route: ${e.message}`));
    });
    const env = renderSubnetEnv(config, o.ipMasq, own.subnet, own.ipv6Subnet, mtu);
    writeFileAtomic(o.subnetFile, env);
    ready = true;
    started = true;
    sweeper.start();
    await deps.onRunning?.();
    log.info(`wrote ${o.subnetFile} (subnet ${leaseSubnets(own)}, MTU ${mtu}); running`);
    const onSignal = (sig: string) => {
      log.info(`${sig}: exiting, leaving the data plane in place`);
      loop.stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      return await loop.run();
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  } finally {
    await resync?.stop();
    await sweeper.stop();
    healthz?.close();
    healthz?.closeAllConnections();
    store?.close();
    if (!deps.handle) h?.close();
    // a start that failed leaves no lock file behind
    if (started) lock.release();
    else lock.remove();
  }
}
