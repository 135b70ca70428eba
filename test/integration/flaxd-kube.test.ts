/**
 * flaxd with the Kubernetes store (--kube-subnet-mgr) on the real kernel,
 * against a fake API server (no kube-apiserver can be installed here): the
 * test's node:http server (test/lib/agent/kube-fake-api.ts) listens inside
 * the underlay netns at 192.168.77.5, with recorded Node objects. Two
 * namespace nodes run dist/bin/flaxd with a kubeconfig pointing at it; each
 * takes its Node's podCIDR, writes flannel's annotations, and programs the
 * other; pods ping across. A Node added through the API (annotated as
 * flanneld annotates) is programmed as a peer, and removed when deleted.
 * The machine's root netns is never touched.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHandleAt } from '../../plugins/pkg/netlink';
import { withNetns } from '../../plugins/pkg/ns';
import { FakeKubeApi } from '../lib/agent/kube-fake-api';
import { ANN } from '../../plugins/agent/store/kube';
import { ours, requireBuilt } from '../lib/cni';
import { Cluster, type Node, peerEntries, peerState, pingFrom, vxlanView, waitFor } from './flaxd-helpers';

const API_IP = '192.168.77.5';
const cl = new Cluster();
const api = new FakeKubeApi();
let kubeconfig = '';
const macOf = (n: Node): string => vxlanView(n.ns).link.address;
const nodeName = (n: Node) => `node-${n.i}`;

beforeAll(async () => {
  requireBuilt('flaxd');
  await cl.create(2);
  const h = openHandleAt(cl.underlay);
  try {
    const br = await h.linkByName('ul0');
    await h.addrAdd(br.index, `${API_IP}/24`);
  } finally {
    h.close();
  }
  withNetns(cl.underlay, () => api.listenAll(6443, API_IP));
  kubeconfig = api.kubeconfig();
  for (const n of cl.nodes) {
    api.addNode({ metadata: { name: nodeName(n) }, spec: { podCIDR: `10.244.${n.i}.0/24`, podCIDRs: [`10.244.${n.i}.0/24`] },
      status: { conditions: [{ type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }] } });
  }
  for (const n of cl.nodes) cl.startAgent(n, ['--kube-subnet-mgr', '--kubeconfig-file', kubeconfig, '--node-name', nodeName(n)]);
  for (const n of cl.nodes) await cl.waitReady(n);
}, 60_000);
afterAll(async () => {
  await cl.destroy();
  await api.stop();
}, 60_000);

describe('flaxd: kube store against a fake API server', () => {
  it("takes the Node's podCIDR and writes flannel's annotations and NetworkUnavailable=False", () => {
    for (const n of cl.nodes) {
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.${n.i}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`);
      const node = api.nodes.get(nodeName(n))!;
      expect(node.metadata.annotations).toEqual({
        [ANN.backendData]: `{"VNI":1,"VtepMAC":"${macOf(n)}"}`,
        [ANN.backendType]: 'vxlan',
        [ANN.subnetManager]: 'true',
        [ANN.publicIP]: n.ip,
      });
      expect(node.status!.conditions!.find((c) => c.type === 'NetworkUnavailable')).toMatchObject({ status: 'False', reason: 'FlannelIsUp' });
      expect(api.patches.some((p) => p.path === `/api/v1/nodes/${nodeName(n)}/status`)).toBe(true);
    }
  });

  it('programs the other node and pods ping across', async () => {
    const [a, b] = cl.nodes;
    for (const [n, o] of [[a, b], [b, a]]) {
      const want = peerEntries([{ prefix: `10.244.${o.i}`, mac: macOf(o), ip: o.ip }]);
      await waitFor(`node ${n.i} programmed`, () => JSON.stringify(peerState(n.ns)) === JSON.stringify(want));
    }
    const pa = await cl.addPod(a, '10.244.1');
    await cl.addPod(b, '10.244.2');
    expect(await waitFor('pod ping', () => pingFrom(pa, '10.244.2.2'), 15_000, 500)).toBe(true);
  });

  it('a Node added through the API becomes a peer; deleted, it is removed; an unannotated Node is ignored', async () => {
    const [a, b] = cl.nodes;
    api.addNode({ metadata: { name: 'node-9' }, spec: { podCIDR: '10.244.8.0/24' } });
    api.addNode({ metadata: { name: 'node-3', annotations: {
      [ANN.backendData]: '{"VNI":1,"VtepMAC":"aa:bb:cc:00:00:03"}', [ANN.backendType]: 'vxlan', [ANN.subnetManager]: 'true', [ANN.publicIP]: '192.168.77.13' } },
    spec: { podCIDR: '10.244.3.0/24', podCIDRs: ['10.244.3.0/24'] } });
    const third = { prefix: '10.244.3', mac: 'aa:bb:cc:00:00:03', ip: '192.168.77.13' };
    for (const [n, o] of [[a, b], [b, a]]) {
      const want = peerEntries([{ prefix: `10.244.${o.i}`, mac: macOf(o), ip: o.ip }, third]);
      await waitFor(`node ${n.i} programmed for node-3`, () => JSON.stringify(peerState(n.ns)) === JSON.stringify(want));
    }
    api.deleteNode('node-3');
    for (const [n, o] of [[a, b], [b, a]]) {
      const want = peerEntries([{ prefix: `10.244.${o.i}`, mac: macOf(o), ip: o.ip }]);
      await waitFor(`node ${n.i} without node-3`, () => JSON.stringify(peerState(n.ns)) === JSON.stringify(want));
    }
    for (const n of cl.nodes) expect(n.agent!.proc.exitCode).toBeNull();
  });

  it('flax doctor --kube-subnet-mgr reads the leases from the Nodes: ours matches subnet.env; an overlapping Node is named (exit 1), deleted: ok', async () => {
    const [a] = cl.nodes;
    // asynchronously: the fake API server runs in this process (a spawnSync would starve it)
    const doctor = async () => {
      const p = spawn('nsenter', [`--net=${a.ns}`, '--', ours('flax'), 'doctor', '-o', 'json', '--no-probe', '--subnet-file', a.subnetFile,
        '--net-config-path', cl.netConf, '--cache-dir', cl.tmp, '--cni-conf-dir', cl.tmp, '--kube-subnet-mgr', '--kubeconfig-file', kubeconfig],
      { env: { PATH: process.env.PATH, NODE_NAME: nodeName(a) } });
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      const code = await new Promise<number | null>((resolve) => p.on('close', resolve));
      const findings = (JSON.parse(out) as { findings: Array<{ status: string; check: string; object: string; problem: string }> }).findings;
      return { code, findings, of: (check: string) => findings.filter((f) => f.check === check) };
    };
    const d = await doctor();
    expect(d.of('subnet.env'), JSON.stringify(d.findings)).toMatchObject([{ status: 'ok', problem: expect.stringContaining(`subnet 10.244.${a.i}.0/24 is our lease`) }]);
    expect(d.of('leases')).toMatchObject([{ status: 'ok', object: expect.stringContaining('kube API'), problem: '2 lease(s), none overlapping' }]);
    api.addNode({ metadata: { name: 'node-7', annotations: {
      [ANN.backendData]: '{"VNI":1,"VtepMAC":"aa:bb:cc:00:00:07"}', [ANN.backendType]: 'vxlan', [ANN.subnetManager]: 'true', [ANN.publicIP]: '192.168.77.17' } },
    spec: { podCIDR: `10.244.${a.i}.128/25`, podCIDRs: [`10.244.${a.i}.128/25`] } });
    try {
      const bad = await doctor();
      expect(bad.code).toBe(1);
      expect(bad.of('leases').filter((f) => f.status === 'fail').map((f) => f.object)).toEqual([expect.stringMatching(new RegExp(`10\\.244\\.${a.i}\\.(0/24|128/25).*10\\.244\\.${a.i}\\.(0/24|128/25)`))]);
    } finally {
      api.deleteNode('node-7');
    }
    expect((await doctor()).of('leases')).toMatchObject([{ status: 'ok' }]);
  });
});
