/**
 * `flax demo`: a whole CNI node in throwaway namespaces, without touching
 * the machine's root netns or /etc/cni, /var/lib/cni.
 *
 *   <prefix>-node        a netns playing the node: the plugins run inside it
 *                        (via `nsenter --net=`), so the bridge, the host
 *                        veth ends and ip_forward live there
 *   <prefix>-pod1..N     one netns per pod, attached through the library
 *   <scratch>/net.d      the conflist (loopback + bridge + host-local)
 *   <scratch>/cache      the libcni cache, <scratch>/ipam host-local's dataDir
 *
 * The plugins never call a CNI server (demoPluginEnv).
 *
 * Then: a table of pods, pod→pod, pod→node and node→pod pings, CHECK, and
 * DEL + removal of everything (unless --keep). A re-run or --cleanup first
 * removes what a previous run left. Any failed ping or step → exit 1.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseResult } from '../../pkg/cni/convert';
import { compareVersions } from '../../pkg/cni/version';
import { confListFromFile, type NetworkConfigList } from '../../pkg/invoke/conf';
import { listAttachments } from '../../pkg/invoke/cache';
import { RawExec } from '../../pkg/invoke/plugin-exec';
import { CniConfig } from '../../pkg/invoke/api';
import type { RawResult } from '../../pkg/invoke/result';
import { addNetns, delNetns, listNetns } from '../netns-util';
import { table } from '../table';
import { parseCount, parseDuration } from '../usage';
import type { CliIo } from '../command';

declare const __flaxDir: string | undefined;

export interface DemoOptions {
  keep?: boolean;
  cleanup?: boolean;
  cniPath?: string;
  cniVersion?: string;
  /** 1-50 (a string as given on the command line) */
  pods?: number | string;
  scratch?: string;
  prefix?: string;
  subnet?: string;
  /** per-plugin timeout, a duration (see parseDuration; default 30s) */
  timeout?: string;
}

/** Where our own plugins are: beside the flax executable (bundle) or dist/bin (source). */
export function defaultPluginDir(): string {
  if (typeof __flaxDir === 'string') return __flaxDir;
  return path.resolve(process.cwd(), 'dist/bin');
}

/**
 * The demo's plugins' environment: ours with FLAX_CNI_SOCKET empty, so that
 * dist/bin's plugin clients (native/cniclient) never hand a call to a CNI
 * server — whatever flaxd owns /run/flax/cni.sock (or $FLAX_CNI_SOCKET) on
 * this machine is outside the demo — and run the standalone plugins.
 */
export function demoPluginEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, FLAX_CNI_SOCKET: '' };
}

/**
 * How the --keep hints name flax: the absolute path of this executable
 * (beside its plugins), since `flax` is seldom on PATH where the demo runs
 * from a checkout (dist/bin) or an unpacked package.
 */
export function flaxCommand(): string {
  const self = path.join(defaultPluginDir(), 'flax');
  return existsSync(self) ? self : 'flax';
}

/** Runs a command (no shell) with a timeout; never rejects. */
export function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

interface Pod {
  name: string;
  netns: string;
  containerId: string;
  ifname: string;
  result?: RawResult;
  address?: string;
  gateway?: string;
  mac?: string;
  addMs?: number;
}

/** The demo network list. */
export function demoConflist(o: { name: string; cniVersion?: string; subnet: string; dataDir: string; bridge: string }): Record<string, unknown> {
  return {
    // without an explicit version: offer several, negotiated with the plugins' VERSION
    ...(o.cniVersion ? { cniVersion: o.cniVersion } : { cniVersion: '1.0.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0'] }),
    name: o.name,
    plugins: [
      { type: 'loopback' },
      {
        type: 'bridge',
        bridge: o.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: o.subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: o.dataDir },
      },
    ],
  };
}

/** Removes whatever a previous run with this prefix/scratch left behind. Never throws. */
export async function demoCleanup(o: { prefix: string; scratch: string; cniPath: string[] }, log: (s: string) => void): Promise<number> {
  let removed = 0;
  const nodeNs = `/run/netns/${o.prefix}-node`;
  const confDir = path.join(o.scratch, 'net.d');
  const cacheDir = path.join(o.scratch, 'cache');
  // DEL cached attachments through the chain while the node still exists,
  // so the plugins release what they hold (the same path a runtime takes).
  if (existsSync(nodeNs) && existsSync(confDir)) {
    let list: NetworkConfigList | null = null;
    try {
      const f = readdirSync(confDir).find((n) => n.endsWith('.conflist'));
      if (f) list = confListFromFile(path.join(confDir, f));
    } catch { /* broken leftovers: removed below */ }
    const cni = new CniConfig({ path: o.cniPath, cacheDir, env: demoPluginEnv(), exec: new RawExec({}, ['nsenter', `--net=${nodeNs}`, '--']), stderr: null, timeoutMs: 30_000 });
    if (list) {
      try {
        list = await cni.negotiateVersion(list);
      } catch { /* DEL with the configured version */ }
      for (const a of listAttachments(cacheDir).filter((x) => x.network === list!.name)) {
        try {
          await cni.delNetworkList(list, { containerId: a.containerId, netns: a.netns, ifName: a.ifName, args: a.cniArgs, capabilityArgs: a.capabilityArgs });
          log(`  DEL leftover attachment ${a.containerId}/${a.ifName}`);
          removed++;
        } catch (e) {
          log(`  (DEL ${a.containerId} failed: ${(e as Error).message}; its netns is removed anyway)`);
        }
      }
    }
  }
  for (const n of listNetns()) {
    if (n === `${o.prefix}-node` || n.startsWith(`${o.prefix}-pod`)) {
      try {
        delNetns(n);
        log(`  removed netns ${n}`);
        removed++;
      } catch (e) {
        log(`  could not remove netns ${n}: ${(e as Error).message}`);
      }
    }
  }
  if (existsSync(o.scratch)) {
    rmSync(o.scratch, { recursive: true, force: true });
    log(`  removed ${o.scratch}`);
    removed++;
  }
  return removed;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

export async function runDemo(opt: DemoOptions, io: CliIo): Promise<number> {
  const t0 = process.hrtime.bigint();
  const say = (s: string) => io.stdout(s + '\n');
  const prefix = opt.prefix ?? 'flax-demo';
  const scratch = path.resolve(opt.scratch ?? path.join(os.tmpdir(), prefix));
  const cniPath = (opt.cniPath ?? defaultPluginDir()).split(':').filter(Boolean);
  const nPods = parseCount(opt.pods ?? 3, '--pods', 1, 50);
  const timeoutMs = parseDuration(opt.timeout ?? '30s');
  const subnet = opt.subnet ?? '10.250.0.0/24';
  if (process.getuid && process.getuid() !== 0) throw new Error('the demo creates network namespaces: run it as root');

  say(`flax demo — a CNI node in network namespaces (root netns untouched)`);
  say(`  plugins from ${cniPath.join(':')}, scratch ${scratch}`);
  for (const p of ['loopback', 'bridge', 'host-local']) {
    if (!cniPath.some((d) => existsSync(path.join(d, p)))) throw new Error(`plugin "${p}" not found in ${cniPath.join(':')} (build with \`npm run build\` or pass --cni-path /usr/lib/cni)`);
  }
  const left = await demoCleanup({ prefix, scratch, cniPath }, say);
  if (opt.cleanup) {
    say(left ? `cleanup: done` : `cleanup: nothing to remove`);
    return 0;
  }
  if (left) say(`  (removed leftovers of a previous run)`);

  const confDir = path.join(scratch, 'net.d');
  const cacheDir = path.join(scratch, 'cache');
  const dataDir = path.join(scratch, 'ipam');
  mkdirSync(confDir, { recursive: true });
  const netName = `${prefix}-net`;
  const confFile = path.join(confDir, '10-flax-demo.conflist');
  writeFileSync(confFile, JSON.stringify(demoConflist({ name: netName, cniVersion: opt.cniVersion, subnet, dataDir, bridge: 'flaxbr0' }), null, 2) + '\n');
  let list = confListFromFile(confFile);

  const nodeNs = addNetns(`${prefix}-node`);
  const cni = new CniConfig({
    path: cniPath, cacheDir, stderr: null, timeoutMs, env: demoPluginEnv(),
    exec: new RawExec({}, ['nsenter', `--net=${nodeNs}`, '--']),
  });
  let how = 'as configured';
  if (!opt.cniVersion) {
    try {
      list = await cni.negotiateVersion(list);
    } catch (e) {
      delNetns(nodeNs);
      rmSync(scratch, { recursive: true, force: true });
      throw e;
    }
    how = 'negotiated with the plugins\' VERSION';
  }
  const cniVersion = list.cniVersion;
  say(`\n1. node: netns ${nodeNs}; network "${netName}" = ${list.plugins.map((p) => p.network.type).join(' > ')} (+ host-local IPAM ${subnet}), cniVersion ${cniVersion} (${how})`);

  let failures = 0;
  const pods: Pod[] = [];
  try {
    say(`\n2. pods: ADD through the library`);
    for (let i = 1; i <= nPods; i++) {
      const name = `pod${i}`;
      const pod: Pod = { name, netns: addNetns(`${prefix}-${name}`), containerId: `${prefix}-${name}`, ifname: 'eth0' };
      pods.push(pod);
      const t = process.hrtime.bigint();
      pod.result = await cni.addNetworkList(list, { containerId: pod.containerId, netns: pod.netns, ifName: pod.ifname, args: [['K8S_POD_NAME', name], ['IgnoreUnknown', '1']] });
      pod.addMs = ms(t);
      const r = parseResult(pod.result, String(pod.result.cniVersion ?? cniVersion));
      const ip = r.ips?.find((x) => !x.address.includes(':')) ?? r.ips?.[0];
      pod.address = ip?.address;
      pod.gateway = ip?.gateway;
      pod.mac = r.interfaces?.find((f) => f.name === pod.ifname && f.sandbox)?.mac;
    }
    io.stdout(table(['POD', 'NETNS', 'CONTAINER ID', 'IF', 'ADDRESS', 'GATEWAY', 'MAC', 'ADD ms'],
      pods.map((p) => [p.name, p.netns, p.containerId, p.ifname, p.address, p.gateway, p.mac, p.addMs?.toFixed(1)])));
    const addrs = pods.map((p) => p.address?.split('/')[0]);
    if (addrs.some((a) => !a) || new Set(addrs).size !== addrs.length) throw new Error('pods did not get distinct addresses');

    say(`\n3. connectivity (ping -c1 via nsenter --net=)`);
    const checks: { from: string; to: string; ns: string; ip: string }[] = [];
    for (let i = 0; i < pods.length; i++) {
      const p = pods[i];
      const q = pods[(i + 1) % pods.length];
      if (q !== p) checks.push({ from: p.name, to: q.name, ns: p.netns, ip: addrs[(i + 1) % pods.length]! });
      if (p.gateway) checks.push({ from: p.name, to: `node (${p.gateway})`, ns: p.netns, ip: p.gateway });
    }
    checks.push({ from: 'node', to: pods[0].name, ns: nodeNs, ip: addrs[0]! });
    checks.push({ from: pods[0].name, to: 'its own lo', ns: pods[0].netns, ip: '127.0.0.1' });
    const rows: string[][] = [];
    for (const c of checks) {
      const r = await run('nsenter', [`--net=${c.ns}`, '--', 'ping', '-c', '1', '-W', '2', '-n', c.ip]);
      const rtt = /time=([\d.]+) ms/.exec(r.stdout)?.[1];
      const ok = r.code === 0;
      if (!ok) failures++;
      rows.push([c.from, c.to, c.ip, ok ? 'ok' : 'FAIL', ok && rtt ? `${rtt} ms` : (r.stderr.trim() || r.stdout.trim().split('\n').pop() || '')]);
    }
    io.stdout(table(['FROM', 'TO', 'ADDRESS', 'PING', 'RTT'], rows));

    if (compareVersions(list.cniVersion, '0.4.0') >= 0) {
      say(`\n4. CHECK every attachment`);
      for (const p of pods) {
        try {
          await cni.checkNetworkList(list, { containerId: p.containerId, netns: p.netns, ifName: p.ifname });
          say(`  ${p.name}: ok`);
        } catch (e) {
          failures++;
          say(`  ${p.name}: FAIL ${(e as Error).message}`);
        }
      }
    }
  } catch (e) {
    failures++;
    say(`\nFAILED: ${(e as Error).message}`);
  } finally {
    if (opt.keep) {
      const flax = flaxCommand();
      say(`\n--keep: left up. Try:\n  nsenter --net=${pods[0]?.netns ?? nodeNs} ip addr`
        + (pods[1]?.address ? `\n  nsenter --net=${pods[0].netns} ping -c 3 ${pods[1].address.split('/')[0]}` : '')
        + `\n  ${flax} status --cni-conf-dir ${confDir} --cache-dir ${cacheDir}`
        + `\nRemove with: ${flax} demo --single-node --cleanup${opt.prefix ? ` --prefix ${prefix}` : ''}${opt.scratch ? ` --scratch ${scratch}` : ''}${opt.cniPath ? ` --cni-path ${cniPath.join(':')}` : ''}`);
    } else {
      say(`\n5. teardown: DEL every pod (reverse chain, cached result as prevResult), remove namespaces`);
      for (const p of [...pods].reverse()) {
        try {
          const t = process.hrtime.bigint();
          await cni.delNetworkList(list, { containerId: p.containerId, netns: p.netns, ifName: p.ifname, args: [['K8S_POD_NAME', p.name], ['IgnoreUnknown', '1']] });
          say(`  ${p.name}: DEL ok (${ms(t).toFixed(1)} ms)`);
        } catch (e) {
          failures++;
          say(`  ${p.name}: DEL FAILED ${(e as Error).message}`);
        }
      }
      const leftIps = existsSync(path.join(dataDir, netName)) ? readdirSync(path.join(dataDir, netName)).filter((f) => /^[\d.]+$|:/.test(f)) : [];
      const leftCache = listAttachments(cacheDir).length;
      if (leftIps.length || leftCache) {
        failures++;
        say(`  LEAK: ${leftIps.length} IP(s) still allocated, ${leftCache} cache entr(ies)`);
      } else say(`  host-local released every address; cache empty`);
      for (const p of pods) delNetns(p.netns);
      delNetns(nodeNs);
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  say(`\n${failures ? `demo FAILED (${failures} problem(s))` : 'demo OK'} — wall time ${(ms(t0) / 1000).toFixed(2)} s`);
  return failures ? 1 : 0;
}
