/**
 * flaxd's etcd store over TLS with client certificates and a prefix of its
 * own: etcd (Debian's) serves https only on the underlay and demands client
 * certificates; two namespace nodes run flaxd with --etcd-cafile/-certfile/
 * -keyfile and --etcd-prefix /flax/tls-net/ (trailing slash: joined as
 * flanneld's path.Join). Their leases land under that prefix, pods ping
 * across; an agent without a client certificate is refused (exit 1, no
 * subnet.env). Renewal on etcd: an agent renewing 1439 min before expiry
 * (so after a minute) moves its key to a fresh 24 h etcd lease, revokes the
 * old one, and its peers see no change.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_IP, EtcdServer, setUpEtcdCluster, tearDownEtcdCluster } from './etcd-helpers';
import { Cluster, type Node, peerState, pingFrom, waitFor } from './flaxd-helpers';

const PREFIX = '/flax/tls-net';
const cl = new Cluster();
const etcd = new EtcdServer(ETCD_IP, { tls: true });
const URL = `https://${ETCD_IP}:2379`;

const tlsArgs = (n: Node, withClientCert = true) => ['--etcd-endpoints', URL, '--etcd-prefix', `${PREFIX}/`,
  '--etcd-cafile', etcd.certs!.ca, ...(withClientCert ? ['--etcd-certfile', etcd.certs!.clientCert, '--etcd-keyfile', etcd.certs!.clientKey] : []),
  '--net-config-path', path.join(n.dir, 'absent-net-conf.json')];
const prefixOf = (n: Node): string => {
  for (const [key, v] of etcd.getPrefix(`${PREFIX}/subnets/`)) {
    if (JSON.parse(v.value).PublicIP === n.ip) return key.replace(/^.*\/subnets\/(\d+\.\d+\.\d+)\.0-24$/, '$1');
  }
  throw new Error(`no lease for node ${n.i}`);
};

beforeAll(() => setUpEtcdCluster(cl, etcd, { nodes: 4, agents: 2, prefix: PREFIX, args: (n) => tlsArgs(n) }), 90_000);
afterAll(() => tearDownEtcdCluster(cl, etcd), 60_000);

describe('flaxd: the etcd store over TLS, with its own prefix', () => {
  it('leases under the given prefix, nothing under the default one', () => {
    const keys = [...etcd.getPrefix('/').keys()].sort();
    expect(keys).toHaveLength(3);
    expect(keys[0]).toBe(`${PREFIX}/config`);
    for (const k of keys.slice(1)) expect(k).toMatch(/^\/flax\/tls-net\/subnets\/10\.244\.\d+\.0-24$/);
    expect(new Set(cl.nodes.slice(0, 2).map(prefixOf)).size).toBe(2);
  });

  it('pods ping across the two nodes', async () => {
    const [a, b] = cl.nodes;
    await cl.addPod(a, prefixOf(a));
    await cl.addPod(b, prefixOf(b));
    await waitFor('pods to ping each other', () => pingFrom(a.pod!, `${prefixOf(b)}.2`) && pingFrom(b.pod!, `${prefixOf(a)}.2`), 15_000, 500);
  });

  it('an agent without a client certificate is refused: exit 1, no subnet.env', async () => {
    const n = cl.nodes[2];
    const ag = cl.startAgent(n, tlsArgs(n, false));
    const code = await Promise.race([ag.exited, new Promise((r) => setTimeout(() => r('still running'), 45_000))]);
    expect(code, ag.log()).toBe(1);
    expect(ag.log()).toMatch(new RegExp(`^E\\d{4} [^\\]]*\\] config: etcd unreachable at ${URL.replace(/\./g, '\\.')} after 5 attempts`, 'm'));
    expect(existsSync(n.subnetFile)).toBe(false);
  }, 60_000);

  it('renewal: the key moves to a fresh 24 h etcd lease, the old one is revoked, peers see no change', async () => {
    const n = cl.nodes[3];
    cl.startAgent(n, [...tlsArgs(n), '--subnet-lease-renew-margin', '1439']);
    await cl.waitReady(n);
    const key = `${PREFIX}/subnets/${prefixOf(n)}.0-24`;
    const first = etcd.getPrefix(key).get(key)!;
    await waitFor('the first peer to program node 4', () => peerState(cl.nodes[0].ns).routes.some((r) => r.startsWith(`${prefixOf(n)}.0/24`)), 15_000);
    const peerBefore = peerState(cl.nodes[0].ns);
    await waitFor('the renewal', () => /lease 10\.244\.\d+\.0\/24 renewed, expires /.test(n.agent!.log()), 90_000, 1000);
    const now = etcd.getPrefix(key).get(key)!;
    expect(now.value).toBe(first.value);
    expect(now.lease).not.toBe(first.lease);
    expect(etcd.ttl(now.lease)).toBeGreaterThan(24 * 3600 - 120);
    expect(etcd.ttl(first.lease)).toBe(-1);
    expect(peerState(cl.nodes[0].ns)).toEqual(peerBefore);
    expect(cl.nodes[0].agent!.log()).not.toContain(`peer removed: ${prefixOf(n)}.0/24`);
  }, 120_000);
});
