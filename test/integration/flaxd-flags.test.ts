/**
 * flaxd with flanneld's flags as an existing unit or DaemonSet passes them
 * (issue 21 item 7), on the real kernel in throwaway netns:
 *  - Go's single-dash forms and FLANNELD_* variables for the flags flaxd
 *    refused before: --iface-can-reach picks the interface and source
 *    address of the kernel's route to that IP; --iptables-resync is the
 *    period of the rule check (the reconcile runs once an hour here, so only
 *    the resync can rebuild a deleted chain); --ip-masq-fully-random-disable;
 *    --ip-blackhole-route; klog's --vmodule / --log_backtrace_at accepted
 *    with a warning;
 *  - the log is klog's line format (item 8), /metrics has the process_ /
 *    nodejs_ defaults and flaxd_build_info;
 *  - without br_netfilter (/proc/sys/net/bridge hidden by a tmpfs in a
 *    private mount namespace) flaxd refuses to start, saying
 *    `modprobe br_netfilter`, in klog or --log-format json.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../lib/netns';
import { requireBuilt } from '../lib/cni';
import { Cluster, FLAXD, waitFor } from './flaxd-helpers';

const KLOG = /^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [^:\]]+:\d+\] /;
const PORT = 18471;

interface Run { proc: ChildProcess; log: () => string; exited: Promise<number | null> }
const runs: Run[] = [];

/** flaxd in the netns with exactly these arguments (no --iface: Cluster.startAgent always passes one), optionally through a wrapper run in the netns. */
function flaxd(ns: string, args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []): Run {
  const argv = ['nsenter', `--net=${ns}`, '--', ...wrap, FLAXD, ...args];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const r: Run = { proc, log: () => err, exited: new Promise((resolve) => proc.on('exit', (c) => resolve(c))) };
  runs.push(r);
  return r;
}

describe('flaxd: flanneld flags', () => {
  const cl = new Cluster();
  let a: Run;
  beforeAll(async () => {
    requireBuilt('flaxd');
    await cl.create(1);
    const n = cl.nodes[0];
    // a second interface: the route to 10.99.0.7 leaves through it from 10.99.0.1 (not its first address, 10.98.0.1)
    execIn(n.ns, 'ip', ['link', 'add', 'dum0', 'type', 'veth', 'peer', 'name', 'dum0p']); // (no dummy module on every kernel)
    execIn(n.ns, 'ip', ['link', 'set', 'dum0p', 'up']);
    execIn(n.ns, 'ip', ['addr', 'add', '10.98.0.1/24', 'dev', 'dum0']);
    execIn(n.ns, 'ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'dum0']);
    execIn(n.ns, 'ip', ['link', 'set', 'dum0', 'up']);
    a = flaxd(n.ns, [`-lease-dir=${cl.leaseDir}`, '-subnet-file', n.subnetFile, `-net-config-path=${cl.netConf}`, '-iface-can-reach=10.99.0.7',
      '-iptables-resync=1', '-ip-masq', '-ip-masq-fully-random-disable', '-reconcile-interval=3600', '-vmodule=main=2', '-v=1', '-cni-socket=',
      '-gc-interval=0', '-healthz-ip=127.0.0.1', `-healthz-port=${PORT}`],
    { FLANNELD_LOG_BACKTRACE_AT: 'main.go:1', FLANNELD_IP_BLACKHOLE_ROUTE: 'true' });
    await waitFor('flaxd running', () => {
      if (a.proc.exitCode !== null) throw new Error(`flaxd exited ${a.proc.exitCode}:\n${a.log()}`);
      return /running$/m.test(a.log()) && existsSync(n.subnetFile);
    }, 30_000);
  }, 60_000);
  afterAll(async () => {
    for (const r of runs) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await Promise.all(runs.map((r) => r.exited));
    await cl.destroy();
  }, 60_000);

  it("logs klog's line format, warning about the klog flags that do nothing", () => {
    const lines = a.log().trimEnd().split('\n');
    for (const l of lines) expect(l).toMatch(KLOG);
    expect(a.log()).toMatch(/^W\d{4} [^\]]*\] --vmodule main=2: accepted for flanneld compatibility, does nothing/m);
    expect(a.log()).toMatch(/^W\d{4} [^\]]*\] --log_backtrace_at main\.go:1: accepted for flanneld compatibility, does nothing/m);
  });

  it('-iface-can-reach: the interface and source address of the kernel\'s route to that IP', () => {
    expect(a.log()).toContain('external interface dum0 (10.99.0.1, public 10.99.0.1;');
    const leases = cl.leases();
    expect([...leases.values()].map((l) => l.Value.PublicIP)).toEqual(['10.99.0.1']);
  });

  it('-ip-masq-fully-random-disable: MASQUERADE without --random-fully; FLANNELD_IP_BLACKHOLE_ROUTE: a blackhole route for our subnet', () => {
    const nat = execIn(cl.nodes[0].ns, 'iptables', ['-w', '-t', 'nat', '-S', 'FLANNEL-POSTRTG']);
    expect(nat.match(/-j MASQUERADE/g)).toHaveLength(2);
    expect(nat).not.toContain('random-fully');
    const [leaseFile] = [...cl.leases().keys()];
    const subnet = leaseFile.replace(/-(\d+)\.json$/, '/$1');
    expect(execIn(cl.nodes[0].ns, 'ip', ['route', 'show', 'type', 'blackhole'])).toContain(`blackhole ${subnet}`);
  });

  it('-iptables-resync=1: a deleted chain is rebuilt by the rule check, with the reconcile an hour away', async () => {
    const ns = cl.nodes[0].ns;
    const rebuilt = () => a.log().split('iptables: (re)built nat FLANNEL-POSTRTG').length - 1;
    const before = rebuilt();
    execIn(ns, 'iptables', ['-w', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'FLANNEL-POSTRTG']);
    execIn(ns, 'iptables', ['-w', '-t', 'nat', '-F', 'FLANNEL-POSTRTG']);
    execIn(ns, 'iptables', ['-w', '-t', 'nat', '-X', 'FLANNEL-POSTRTG']);
    await waitFor('FLANNEL-POSTRTG rebuilt', () => rebuilt() > before, 10_000);
    expect(execIn(ns, 'iptables', ['-w', '-t', 'nat', '-S', 'POSTROUTING'])).toContain('-j FLANNEL-POSTRTG');
  });

  it('/metrics: process_ and nodejs_ defaults, flaxd_build_info{version,commit}', () => {
    const body = execIn(cl.nodes[0].ns, 'curl', ['-s', '-m', '2', `http://127.0.0.1:${PORT}/metrics`]);
    expect(body).toMatch(/^process_cpu_seconds_total \d/m);
    expect(body).toMatch(/^process_resident_memory_bytes \d/m);
    expect(body).toMatch(/^nodejs_heap_size_total_bytes \d/m);
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    // built from this checkout: its commit (scripts/build.mjs)
    expect(body).toMatch(new RegExp(`^flaxd_build_info\\{version="${version.replace(/\./g, '\\.')}",commit="[0-9a-f]{12}(-dirty)?"\\} 1$`, 'm'));
  });

  it('refuses to start without br_netfilter (modprobe br_netfilter), in klog and in --log-format json, writing no subnet file', async () => {
    const n = cl.nodes[0];
    // /proc/sys/net/bridge hidden from flaxd alone: a tmpfs over it in a private mount namespace (mounted from inside
    // the node's netns: /proc/sys/net shows the netns of the process looking, a mount over the root netns' view would not)
    const hide = ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs flax-no-br /proc/sys/net/bridge && exec "$@"', 'sh'];
    for (const json of [false, true]) {
      const subnetFile = `${cl.tmp}/nobr-${json}/subnet.env`;
      const r = flaxd(n.ns, ['--iface', 'eth0', '--lease-dir', `${cl.tmp}/nobr-leases`, '--subnet-file', subnetFile, '--net-config-path', cl.netConf,
        '--cni-socket', '', '--gc-interval', '0', ...(json ? ['--log-format', 'json'] : [])], {}, hide);
      const code = await Promise.race([r.exited, new Promise<'running'>((res) => setTimeout(() => res('running'), 15_000))]);
      expect(code, r.log()).toBe(1);
      const last = r.log().trimEnd().split('\n').at(-1)!;
      const msg = '/proc/sys/net/bridge/bridge-nf-call-iptables does not exist: the br_netfilter kernel module is not loaded (run `modprobe br_netfilter`';
      if (json) expect(JSON.parse(last)).toMatchObject({ level: 'error', msg: expect.stringContaining(msg) });
      else expect(last).toMatch(new RegExp(`^E\\d{4} [^\\]]*\\] config: ${msg.replace(/[.()/`]/g, '\\$&')}`));
      expect(existsSync(subnetFile)).toBe(false);
    }
  }, 40_000);
});
