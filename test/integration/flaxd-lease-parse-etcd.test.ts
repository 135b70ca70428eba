/**
 * An unreadable lease is no removal, etcd store (issue 21 item 3): two
 * flaxd nodes on a real etcd (Debian's, in its own netns); a garbage value
 * put under node 2's subnet key (on the key's own etcd lease) → node 2 keeps
 * running and puts its value back; node 1 keeps node 2's route, neighbour
 * and FDB entry, and warns naming the key. Deleting the key still removes
 * the lease (node 2 stops, node 1 withdraws its entries).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_URL, EtcdServer, setUpEtcdCluster, tearDownEtcdCluster } from './etcd-helpers';
import { Cluster, type Node, peerEntries, peerState, vxlanView, waitFor } from './flaxd-helpers';

const PREFIX = '/flax-lease-parse';
const cl = new Cluster();
const etcd = new EtcdServer();
const keyOf = (n: Node): { key: string; value: string; prefix: string } => {
  for (const [key, v] of etcd.getPrefix(`${PREFIX}/subnets/`)) {
    if (JSON.parse(v.value).PublicIP === n.ip) return { key, value: v.value, prefix: key.replace(/^.*\/subnets\/(\d+\.\d+\.\d+)\.0-24$/, '$1') };
  }
  throw new Error(`no lease in etcd for node ${n.i}`);
};
const expected = (p: Node, prefix: string) => peerEntries([{ prefix, mac: vxlanView(p.ns).link.address, ip: p.ip }]);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

let n1: Node;
let n2: Node;
let k2: ReturnType<typeof keyOf>;

beforeAll(async () => {
  [n1, n2] = await setUpEtcdCluster(cl, etcd, { nodes: 2, agents: 2, prefix: PREFIX,
    args: (n) => ['--etcd-endpoints', ETCD_URL, '--etcd-prefix', PREFIX, '--net-config-path', path.join(n.dir, 'absent-net-conf.json')] });
  k2 = keyOf(n2);
  await waitFor('node 1 programmed for node 2', () => same(peerState(n1.ns), expected(n2, k2.prefix)));
}, 90_000);
afterAll(() => tearDownEtcdCluster(cl, etcd), 60_000);

describe('flaxd (etcd): a garbage lease value is no removal', () => {
  it("garbage under node 2's key: node 2 puts its value back and keeps running; node 1 keeps node 2's entries", async () => {
    etcd.ctl(['put', '--ignore-lease', k2.key, '{{{']);
    await waitFor('node 2 puts its value back', () => {
      if (n2.agent!.proc.exitCode !== null) throw new Error(`node 2's flaxd exited ${n2.agent!.proc.exitCode}:\n${n2.agent!.log()}`);
      return etcd.getPrefix(k2.key).get(k2.key)?.value === k2.value;
    });
    const v = etcd.getPrefix(k2.key).get(k2.key)!;
    expect(v.lease).not.toBe('0'); // on an etcd lease again, with its 24 h TTL
    expect(etcd.ttl(v.lease)).toBeGreaterThan(23 * 3600);
    await waitFor('node 1 warns', () => n1.agent!.log().includes(`lease etcd key ${k2.key} (${k2.prefix}.0/24) cannot be parsed: `));
    expect(n1.agent!.log()).toContain(`; keeping the last good lease of ${n2.ip}`);
    expect(n2.agent!.log()).toContain(`lease etcd key ${k2.key} (${k2.prefix}.0/24) cannot be parsed: `);
    expect(n1.agent!.log()).not.toContain(`peer removed: ${k2.prefix}.0/24`);
    expect(n2.agent!.log()).not.toContain('was removed from the store');
    expect(peerState(n1.ns)).toEqual(expected(n2, k2.prefix));
    expect(n2.agent!.proc.exitCode).toBeNull();
  });

  it("deleting node 2's key still removes it: node 2 stops, node 1 withdraws its entries", async () => {
    etcd.ctl(['del', k2.key]);
    expect(await n2.agent!.exited).not.toBe(0);
    expect(n2.agent!.log()).toContain('was removed from the store');
    await waitFor('node 1 withdraws node 2', () => same(peerState(n1.ns), peerEntries([])));
  });
});
