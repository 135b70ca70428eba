/**
 * flaxd's host-gw backend and vxlan DirectRouting on the real kernel, three
 * namespace nodes on one underlay bridge (so every node is on-link):
 *  - host-gw: each node holds `<peer subnet> via <peer public IP> dev eth0`
 *    and no vxlan device; pods ping across nodes; a host-gw lease whose
 *    public IP is not on-link is refused with one clear log line and no
 *    route; a lease removed → its route goes.
 *  - vxlan + DirectRouting: on-link peers get the direct route instead of
 *    neighbour/FDB/route on flannel.1; an off-link peer (a lease written by
 *    hand) gets the vxlan entries; pods ping across nodes.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn, ipJson } from '../lib/netns';
import { requireBuilt } from '../lib/cni';
import { Cluster, moreLogLines, NETWORK, type Node, pingFrom, vxlanView, waitFor } from './flaxd-helpers';

const extRoutes = (n: Node) => ipJson<any[]>(n.ns, ['route', 'show', 'dev', 'eth0'])
  .filter((r) => r.dst.startsWith('10.244.')).map((r) => `${r.dst} via ${r.gateway}`).sort();
const expectedDirect = (cl: Cluster, n: Node, others: Node[]) => others.map((o) => `${cl.leaseOf(o).prefix}.0/24 via ${o.ip}`).sort();
const EXP = new Date(Date.now() + 3600_000).toISOString();
const handLease = (cl: Cluster, sn: string, value: object) =>
  writeFileSync(path.join(cl.leaseDir, 'subnets', `${sn}-24.json`), `${JSON.stringify({ Value: value, Expiration: EXP })}\n`);

async function start(cl: Cluster, backend: object): Promise<void> {
  requireBuilt('flaxd');
  await cl.create(3, { Network: NETWORK, Backend: backend });
  for (const n of cl.nodes) cl.startAgent(n);
  for (const n of cl.nodes) await cl.waitReady(n);
  for (const n of cl.nodes) await cl.addPod(n, cl.leaseOf(n).prefix);
}
const pingsAll = (cl: Cluster) => {
  for (const a of cl.nodes) for (const b of cl.nodes) if (a !== b) expect(pingFrom(a.pod!, `${cl.leaseOf(b).prefix}.2`), `pod ${a.i} -> pod ${b.i}`).toBe(true);
};

describe('flaxd host-gw', () => {
  const cl = new Cluster();
  beforeAll(() => start(cl, { Type: 'host-gw' }), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it('leases say host-gw (no BackendData); subnet.env has the underlay MTU; no vxlan device', () => {
    for (const n of cl.nodes) {
      const { file, prefix } = cl.leaseOf(n);
      expect(readFileSync(path.join(cl.leaseDir, 'subnets', file), 'utf8')).toMatch(new RegExp(`^\\{"Value":\\{"PublicIP":"${n.ip}","PublicIPv6":null,"BackendType":"host-gw"\\},"Expiration":`));
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${prefix}.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n`);
      expect(execIn(n.ns, 'ip', ['link', 'show', 'flannel.1'], { allowFail: true })).toBe('');
    }
  });

  it('routes each peer subnet via its public IP on eth0, and pods ping across nodes', async () => {
    for (const n of cl.nodes) await waitFor(`node ${n.i} routes`, () => JSON.stringify(extRoutes(n)) === JSON.stringify(expectedDirect(cl, n, cl.nodes.filter((o) => o !== n))));
    pingsAll(cl);
  });

  it('refuses a peer that is not on-link, with one clear log line and no route', async () => {
    handLease(cl, '10.244.250.0', { PublicIP: '10.99.0.5', PublicIPv6: null, BackendType: 'host-gw' });
    const n1 = cl.nodes[0];
    await waitFor('refusal logged', () => /ignoring lease 10\.244\.250\.0\/24 of 10\.99\.0\.5: public IP 10\.99\.0\.5 is not on-link on eth0/.test(n1.agent!.log()), 10_000);
    await moreLogLines(n1.agent!, /reconcile \(interval\)/, 2); // two more reconciles: still one line
    expect(n1.agent!.log().match(/not on-link/g)).toHaveLength(1);
    expect(extRoutes(n1).some((r) => r.startsWith('10.244.250.'))).toBe(false);
    rmSync(path.join(cl.leaseDir, 'subnets', '10.244.250.0-24.json'));
  });

  it("a removed lease's route goes; a deleted route comes back", async () => {
    const [n1, n2, n3] = cl.nodes;
    execIn(n1.ns, 'ip', ['route', 'del', `${cl.leaseOf(n2).prefix}.0/24`]);
    await waitFor('route restored', () => extRoutes(n1).includes(`${cl.leaseOf(n2).prefix}.0/24 via ${n2.ip}`), 10_000);
    const gone = cl.leaseOf(n3);
    expect(await cl.stopAgent(n3)).toBe(0);
    rmSync(path.join(cl.leaseDir, 'subnets', gone.file));
    for (const n of [n1, n2]) await waitFor(`node ${n.i} without node 3`, () => JSON.stringify(extRoutes(n)) === JSON.stringify(expectedDirect(cl, n, [n1, n2].filter((o) => o !== n))), 10_000);
  });
});

describe('flaxd vxlan DirectRouting', () => {
  const cl = new Cluster();
  beforeAll(() => start(cl, { Type: 'vxlan', DirectRouting: true }), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it('on-link peers get direct routes on eth0 and nothing on flannel.1; pods ping across nodes', async () => {
    for (const n of cl.nodes) await waitFor(`node ${n.i} direct routes`, () => JSON.stringify(extRoutes(n)) === JSON.stringify(expectedDirect(cl, n, cl.nodes.filter((o) => o !== n))));
    for (const n of cl.nodes) {
      const v = vxlanView(n.ns);
      expect({ neighs: v.neighs, fdb: v.fdb, routes: v.routes }).toEqual({ neighs: [], fdb: [], routes: [] });
    }
    pingsAll(cl);
  });

  it('an off-link peer is reached over vxlan: neighbour, FDB and onlink route on flannel.1', async () => {
    handLease(cl, '10.244.251.0', { PublicIP: '10.99.0.6', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '02:aa:bb:cc:dd:01' } });
    const n1 = cl.nodes[0];
    await waitFor('vxlan entries for the off-link peer', () => {
      const v = vxlanView(n1.ns);
      return JSON.stringify({ neighs: v.neighs, fdb: v.fdb, routes: v.routes }) === JSON.stringify({
        neighs: ['10.244.251.0 02:aa:bb:cc:dd:01 PERMANENT'], fdb: ['02:aa:bb:cc:dd:01 10.99.0.6 self permanent'], routes: ['10.244.251.0/24 via 10.244.251.0 onlink'] });
    }, 10_000);
    expect(extRoutes(n1)).toEqual(expectedDirect(cl, n1, cl.nodes.slice(1)));
  });
});
