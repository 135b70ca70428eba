/**
 * Fixtures for the portmap tests: a "host" netns holding the bridge (our
 * bridge + host-local chained before portmap), a pod netns, and a "client"
 * netns wired to the host by a veth (192.168.77.1/24 + fd77::1/64 on the
 * host side). Servers and clients are small node programs run with
 * nsenter; every process and namespace is removed even when a test fails.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createTestNetns, destroyTestNetns, netnsTest } from './netns';
import { cni, ours, sh, type CniCall, type CniOut } from './cni';
import { nftRuleset } from './state';

export const HOST_V4 = '192.168.77.1';
export const HOST_V6 = 'fd77::1';

export interface PmFx {
  host: string;
  pod: string;
  client: string;
  /** starts a server in a netns; stopped after the test */
  serve: (ns: string, proto: 'tcp' | 'udp' | 'sctp', port: number, tag: string) => Promise<void>;
}

const SERVER = `
const [proto, port, tag] = process.argv.slice(1);
const ready = () => process.stdout.write('ready\\n');
if (proto === 'udp') {
  const s = require('dgram').createSocket({ type: 'udp6', ipv6Only: false });
  s.on('message', (m, r) => s.send(tag + ' ' + m, r.port, r.address));
  s.bind(+port, '::', ready);
} else {
  const s = require('net').createServer((c) => c.end(tag + ' from ' + c.remoteAddress.replace('::ffff:', '') + '\\n'));
  s.listen({ port: +port, host: '::', ipv6Only: false }, ready);
}`;

const CLIENT = `
const [proto, host, port, src] = process.argv.slice(1);
const done = (s) => { process.stdout.write(s); process.exit(0); };
setTimeout(() => done('TIMEOUT'), 1500);
if (proto === 'udp') {
  const s = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => done(String(m)));
  s.bind(src ? +src : 0, () => s.send('ping', +port, host));
} else {
  let out = '';
  const c = require('net').connect({ port: +port, host }, () => {});
  c.on('data', (d) => { out += d; });
  c.on('end', () => done(out.trim()));
  c.on('error', (e) => done('ERR ' + e.code));
}`;

/** Connects from `ns` to host:port; returns the server's reply, 'TIMEOUT' or 'ERR <code>'. */
export function probe(ns: string, proto: 'tcp' | 'udp', host: string, port: number, srcPort?: number): string {
  const r = spawnSync('nsenter', [`--net=${ns}`, '--', process.execPath, '-e', CLIENT, proto, host, String(port), String(srcPort ?? '')], { encoding: 'utf8', timeout: 5000 });
  return r.stdout.trim();
}

function wire(host: string, client: string): void {
  const tag = `pmc${process.pid % 100000}${Math.floor(Math.random() * 1000)}`;
  sh(host, 'ip', ['link', 'add', `${tag}h`, 'type', 'veth', 'peer', 'name', `${tag}c`]);
  sh(host, 'ip', ['link', 'set', `${tag}c`, 'netns', client]);
  sh(host, 'ip', ['addr', 'add', `${HOST_V4}/24`, 'dev', `${tag}h`]);
  sh(host, 'ip', ['addr', 'add', `${HOST_V6}/64`, 'dev', `${tag}h`, 'nodad']);
  sh(host, 'ip', ['link', 'set', `${tag}h`, 'up']);
  sh(client, 'ip', ['addr', 'add', '192.168.77.2/24', 'dev', `${tag}c`]);
  sh(client, 'ip', ['addr', 'add', 'fd77::2/64', 'dev', `${tag}c`, 'nodad']);
  sh(client, 'ip', ['link', 'set', `${tag}c`, 'up']);
  for (const ns of [host, client]) sh(ns, 'ip', ['link', 'set', 'lo', 'up']);
}

export const pmTest = netnsTest.extend<PmFx>({
  host: async ({ ns }, use) => use(ns),
  pod: async ({ ns2 }, use) => use(ns2),
  client: async ({ ns }, use) => {
    const [c] = createTestNetns(1);
    try {
      wire(ns, c);
      await use(c);
    } finally {
      destroyTestNetns([c]);
    }
  },
  // eslint-disable-next-line no-empty-pattern
  serve: async ({}, use) => {
    const procs: ChildProcess[] = [];
    try {
      await use((ns, proto, port, tag) => new Promise((resolve, reject) => {
        const p = spawn('nsenter', [`--net=${ns}`, '--', process.execPath, '-e', SERVER, proto, String(port), tag], { stdio: ['ignore', 'pipe', 'pipe'] });
        procs.push(p);
        let err = '';
        p.stderr!.on('data', (d) => { err += d; });
        p.stdout!.once('data', () => resolve());
        p.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
      }));
    } finally {
      for (const p of procs) if (p.exitCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
    }
  },
});

let nNet = 0;
/** A bridge (+ host-local) config (hairpinMode as podman and flannel set it: with br_netfilter a hairpin DNAT is bridged back out the same port) and the portmap entry of the same network. */
export function pmNetwork(dataRoot: string, portmap: Record<string, unknown> = {}, cniVersion = '1.0.0') {
  const name = `pmnet${process.pid % 10000}x${++nNet}`;
  const bridge = {
    cniVersion, name, type: 'bridge', bridge: 'pmbr0', isDefaultGateway: true, hairpinMode: true,
    ipam: { type: 'host-local', dataDir: `${dataRoot}/${name}`, ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd00:88::/64' }]] },
  };
  return { name, bridge, portmap: { cniVersion, name, type: 'portmap', capabilities: { portMappings: true }, ...portmap } };
}

export type Mapping = { hostPort: number; containerPort: number; protocol?: string; hostIP?: string };
export const withMappings = (conf: object, portMappings: Mapping[], prevResult?: unknown) =>
  ({ ...conf, runtimeConfig: { portMappings }, ...(prevResult ? { prevResult } : {}) });

/** Runs one plugin in the host netns. */
export function run(bin: string, command: string, f: { host: string; pod: string }, stdin: object, over: Partial<CniCall> = {}): CniOut {
  return cni(bin, { command, containerId: 'pmctr1', netns: f.pod, ifname: 'eth0', stdin, hostNs: f.host, ...over });
}

/** bridge ADD then portmap ADD (ours unless `pmBin`); returns both outputs. */
export function chainAdd(f: { host: string; pod: string }, net: ReturnType<typeof pmNetwork>, maps: Mapping[], over: Partial<CniCall> = {}, pmBin = ours('portmap')) {
  const br = run(ours('bridge'), 'ADD', f, net.bridge, over);
  if (br.code !== 0) throw new Error(`bridge ADD failed: ${br.stdout}${br.stderr}`);
  const pm = run(pmBin, 'ADD', f, withMappings(net.portmap, maps, br.json), over);
  waitDad(f.host);
  return { br, pm };
}

/** Waits (≤ 5 s) until no IPv6 address in `ns` is tentative (the bridge's gateway address answers only then). */
export function waitDad(ns: string): void {
  for (let i = 0; i < 50 && sh(ns, 'ip', ['-6', 'addr', 'show', 'tentative']).trim(); i++) spawnSync('sleep', ['0.1']);
}

/** What portmap left in a netns: nft rules in cni_hostport's per-container chains and iptables CNI-DN/CNI-SN state. */
export function portmapState(ns: string): { nft: string[]; ipt: string[] } {
  const nft = nftRuleset(ns)
    .filter((x) => x.rule && x.rule.table === 'cni_hostport' && ['hostports', 'hostip_hostports', 'masquerading'].includes(x.rule.chain))
    .map((x) => `${x.rule.family} ${x.rule.chain} ${x.rule.comment ?? ''} ${JSON.stringify(x.rule.expr)}`);
  const ipt: string[] = [];
  for (const tool of ['iptables', 'ip6tables']) {
    const out = sh(ns, tool, ['-w', '-t', 'nat', '-S'], true);
    ipt.push(...out.split('\n').filter((l) => /CNI-(DN|SN)-/.test(l) || l.startsWith('-A CNI-HOSTPORT-DNAT')).map((l) => `${tool} ${l}`));
  }
  return { nft, ipt };
}
