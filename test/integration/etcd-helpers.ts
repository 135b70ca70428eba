/**
 * A real etcd (Debian's etcd-server 3.4) for flaxd's integration tests: it
 * runs in a throwaway netns plugged into a Cluster's underlay bridge at
 * 192.168.77.5, data dir in a temp dir, and can be stopped and restarted on
 * the same data. destroy() kills it and removes its netns and files, also
 * after a failure. etcdctl (etcd-client) runs in the same netns. With
 * `tls`, it serves https only and wants client certificates (a CA, server and
 * client certificates made by openssl in its temp dir).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openHandleAt } from '../../plugins/pkg/netlink';
import { openNetns } from '../../plugins/pkg/ns';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { requireBuilt } from '../lib/cni';
import { type Cluster, type Node, waitFor } from './flaxd-helpers';

export const ETCD_IP = '192.168.77.5';
export const ETCD_URL = `http://${ETCD_IP}:2379`;

export function requireEtcd(): void {
  for (const b of ['/usr/bin/etcd', '/usr/bin/etcdctl']) {
    if (!existsSync(b)) throw new Error(`${b} missing: install Debian's etcd-server and etcd-client (scripts/setup.sh)`);
  }
}

/** A CA and, signed by it, a server certificate for `ip` and a client certificate, as PEM files in `dir`. */
export function makeCerts(dir: string, ip: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=flax-test-ca',
    '-keyout', f('ca.key'), '-out', f('ca.crt'));
  for (const [name, ext] of [['server', `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth`], ['client', 'extendedKeyUsage=clientAuth']]) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=flax-test-${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
  }
  return { ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}

export class EtcdServer {
  /** temp dir (data, certificates), made by start() so that a test file that is only collected leaves nothing */
  dir = '';
  certs?: ReturnType<typeof makeCerts>;
  readonly url: string;
  ns = '';
  #proc: ChildProcess | null = null;
  #exited: Promise<unknown> = Promise.resolve();
  #log = '';

  constructor(readonly ip = ETCD_IP, readonly opts: { tls?: boolean } = {}) {
    this.url = `${opts.tls ? 'https' : 'http'}://${ip}:2379`;
  }

  /** Plugs a netns into the underlay's bridge `ul0` at its address and starts etcd in it. */
  async start(underlay: string): Promise<void> {
    this.dir = mkdtempSync(path.join(tmpdir(), 'flax-etcd-'));
    if (this.opts.tls) this.certs = makeCerts(this.dir, this.ip);
    [this.ns] = createTestNetns(1);
    const hu = openHandleAt(underlay);
    const nsf = openNetns(this.ns);
    try {
      const port = await hu.linkAdd({ kind: 'veth', name: 'uletcd', peerName: 'eth0', peerNetns: nsf });
      await hu.linkSetMaster(port.index, (await hu.linkByName('ul0')).index);
      await hu.linkSetUp(port.index);
    } finally {
      nsf.close();
      hu.close();
    }
    const h = openHandleAt(this.ns);
    try {
      await h.linkSetUp((await h.linkByName('lo')).index);
      const eth0 = await h.linkByName('eth0');
      await h.addrAdd(eth0.index, `${this.ip}/24`);
      await h.linkSetUp(eth0.index);
    } finally {
      h.close();
    }
    await this.resume();
  }

  /** (Re)starts the etcd process on the same data dir and waits until it answers. */
  async resume(): Promise<void> {
    const c = this.certs;
    const args = ['--name', 'flaxt', '--data-dir', path.join(this.dir, 'data'),
      '--listen-client-urls', this.url, '--advertise-client-urls', this.url,
      '--listen-peer-urls', `http://${this.ip}:2380`, '--initial-advertise-peer-urls', `http://${this.ip}:2380`,
      '--initial-cluster', `flaxt=http://${this.ip}:2380`, '--log-level', 'warn',
      ...(c ? ['--cert-file', c.serverCert, '--key-file', c.serverKey, '--trusted-ca-file', c.ca, '--client-cert-auth'] : [])];
    const p = spawn('nsenter', [`--net=${this.ns}`, '--', '/usr/bin/etcd', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (d: Buffer) => { this.#log += d.toString(); });
    this.#proc = p;
    this.#exited = new Promise((r) => p.on('exit', r));
    await waitFor('etcd to answer', () => {
      if (p.exitCode !== null) throw new Error(`etcd exited ${p.exitCode}: ${this.#log.slice(-2000)}`);
      return this.ctl(['endpoint', 'health'], true).ok;
    }, 30_000, 200);
  }

  /** Stops etcd (SIGTERM, SIGKILL after 10 s) and waits for it to exit. */
  async stop(): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    const done = await Promise.race([this.#exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
    if (!done) {
      p.kill('SIGKILL');
      await this.#exited;
    }
    this.#proc = null;
  }

  /** etcdctl (v3 API) against this etcd, run in its netns. */
  ctl(args: string[], allowFail = false): { ok: boolean; out: string; err: string } {
    const c = this.certs;
    const tls = c ? ['--cacert', c.ca, '--cert', c.clientCert, '--key', c.clientKey] : [];
    const r = spawnSync('nsenter', [`--net=${this.ns}`, '--', '/usr/bin/etcdctl', '--endpoints', this.url, '--command-timeout', '3s', ...tls, ...args],
      { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ETCDCTL_API: '3' } });
    const res = { ok: r.status === 0, out: r.stdout ?? '', err: r.stderr ?? '' };
    if (!res.ok && !allowFail) throw new Error(`etcdctl ${args.join(' ')}: ${res.err}`);
    return res;
  }

  /** Every key under `prefix` with its value and lease (hex, as etcdctl lease commands want it; '0' = none). */
  getPrefix(prefix: string): Map<string, { value: string; lease: string; modRev: number }> {
    // lease IDs are int64: quoted before parsing, so that no digit is lost
    const text = this.ctl(['get', '--prefix', prefix, '-w', 'json']).out.replace(/"lease":(\d+)/g, '"lease":"$1"');
    const j = JSON.parse(text) as { kvs?: Array<{ key: string; value: string; lease?: number | string; mod_revision: number }> };
    const m = new Map<string, { value: string; lease: string; modRev: number }>();
    for (const kv of j.kvs ?? []) {
      m.set(Buffer.from(kv.key, 'base64').toString(), {
        value: Buffer.from(kv.value, 'base64').toString(),
        lease: BigInt(kv.lease ?? 0).toString(16),
        modRev: kv.mod_revision,
      });
    }
    return m;
  }

  /** Remaining TTL (s) of a lease given in hex. */
  ttl(leaseHex: string): number {
    const out = this.ctl(['lease', 'timetolive', leaseHex, '-w', 'json']).out;
    return Number((JSON.parse(out) as { ttl: number }).ttl);
  }

  log(): string {
    return this.#log;
  }

  async destroy(): Promise<void> {
    await this.stop();
    if (this.ns) destroyTestNetns([this.ns]);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The etcd tests' beforeAll: the cluster's namespaces, etcd on its underlay
 * holding `<prefix>/config`, flaxd on the first `agents` nodes (args per
 * node), each ready. Returns those nodes.
 */
export async function setUpEtcdCluster(cl: Cluster, etcd: EtcdServer, o: { nodes: number; agents: number; prefix: string; args: (n: Node) => string[] }): Promise<Node[]> {
  requireBuilt('flaxd');
  requireEtcd();
  await cl.create(o.nodes);
  await etcd.start(cl.underlay);
  etcd.ctl(['put', `${o.prefix}/config`, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}']);
  const started = cl.nodes.slice(0, o.agents);
  for (const n of started) cl.startAgent(n, o.args(n));
  for (const n of started) await cl.waitReady(n);
  return started;
}

/** The etcd tests' afterAll: every agent and namespace, then etcd, even when one of them fails. */
export async function tearDownEtcdCluster(cl: Cluster, etcd: EtcdServer): Promise<void> {
  try {
    await cl.destroy();
  } finally {
    await etcd.destroy();
  }
}
