/**
 * An unreadable lease is no removal, kube store (issue 21 item 3): two
 * flaxd nodes against the fake API server (test/lib/agent/kube-fake-api.ts,
 * in the underlay netns, as flaxd-kube.test.ts); node 2's backend-data
 * annotation replaced by `{{{` → node 2 keeps running and writes its
 * annotations again; node 1 keeps node 2's route, neighbour and FDB entry,
 * warning naming the Node. Deleting the Node still removes the peer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHandleAt } from '../../plugins/pkg/netlink';
import { withNetns } from '../../plugins/pkg/ns';
import { FakeKubeApi } from '../lib/agent/kube-fake-api';
import { ANN } from '../../plugins/agent/store/kube';
import { requireBuilt } from '../lib/cni';
import { Cluster, type Node, peerEntries, peerState, vxlanView, waitFor } from './flaxd-helpers';

const API_IP = '192.168.77.5';
const cl = new Cluster();
const api = new FakeKubeApi();
const nodeName = (n: Node) => `node-${n.i}`;
const expected = (p: Node) => peerEntries([{ prefix: `10.244.${p.i}`, mac: vxlanView(p.ns).link.address, ip: p.ip }]);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
let n1: Node;
let n2: Node;

beforeAll(async () => {
  requireBuilt('flaxd');
  await cl.create(2);
  [n1, n2] = cl.nodes;
  const h = openHandleAt(cl.underlay);
  try {
    await h.addrAdd((await h.linkByName('ul0')).index, `${API_IP}/24`);
  } finally {
    h.close();
  }
  withNetns(cl.underlay, () => api.listenAll(6443, API_IP));
  const kubeconfig = api.kubeconfig();
  for (const n of cl.nodes) api.addNode({ metadata: { name: nodeName(n) }, spec: { podCIDR: `10.244.${n.i}.0/24`, podCIDRs: [`10.244.${n.i}.0/24`] } });
  for (const n of cl.nodes) cl.startAgent(n, ['--kube-subnet-mgr', '--kubeconfig-file', kubeconfig, '--node-name', nodeName(n)]);
  for (const n of cl.nodes) await cl.waitReady(n);
  await waitFor('node 1 programmed for node 2', () => same(peerState(n1.ns), expected(n2)));
}, 60_000);
afterAll(async () => {
  await cl.destroy();
  await api.stop();
}, 60_000);

describe('flaxd (kube): an unparseable lease annotation is no removal', () => {
  it("node 2's backend-data set to `{{{`: node 2 writes its annotations again and keeps running; node 1 keeps node 2's entries", async () => {
    const good = api.nodes.get(nodeName(n2))!.metadata.annotations![ANN.backendData];
    api.updateNode(nodeName(n2), (n) => { n.metadata.annotations![ANN.backendData] = '{{{'; });
    await waitFor('node 2 writes its annotations again', () => {
      if (n2.agent!.proc.exitCode !== null) throw new Error(`node 2's flaxd exited ${n2.agent!.proc.exitCode}:\n${n2.agent!.log()}`);
      return api.nodes.get(nodeName(n2))!.metadata.annotations![ANN.backendData] === good;
    });
    const why = `cannot be parsed: ${ANN.backendData} is not JSON: "{{{"`;
    await waitFor('node 1 warns', () => n1.agent!.log().includes(`lease node ${nodeName(n2)} (10.244.2.0/24) ${why}; keeping the last good lease of ${n2.ip}`));
    expect(n2.agent!.log()).toContain(`lease node ${nodeName(n2)} (10.244.2.0/24) ${why}; this is our lease: writing it again`);
    expect(n1.agent!.log()).not.toContain('peer removed: 10.244.2.0/24');
    expect(n2.agent!.log()).not.toContain('was removed from the store');
    expect(peerState(n1.ns)).toEqual(expected(n2));
    expect(n2.agent!.proc.exitCode).toBeNull();
  });

  it("deleting node 2's Node still removes the peer on node 1", async () => {
    api.deleteNode(nodeName(n2));
    await waitFor('node 1 withdraws node 2', () => same(peerState(n1.ns), peerEntries([])));
    expect(n1.agent!.log()).toContain('peer removed: 10.244.2.0/24');
  });
});
