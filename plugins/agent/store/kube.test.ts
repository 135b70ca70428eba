/**
 * The kube store through the real @kubernetes/client-node against a fake API
 * server in this process (127.0.0.1, plain http): our Node's podCIDR is our
 * lease, flannel's annotations are written with a patch, NetworkUnavailable
 * is set False on nodes/status, annotated nodes are leases, others ignored,
 * and watch events (a node joining, a closed watch) reach the agent.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeKubeApi, type FakeNode } from '../../../test/lib/agent/kube-fake-api';
import { ANN, KubeLeaseStore, nodeLease, nodeToLease, openKubeLeaseStore } from './kube';
import { type LeaseAttrs, type LeaseStore, vxlanBackendData } from './lease';
import { type Logger } from '../log';
import { formatPrefix, parseNetwork } from '../../pkg/ip';

const log: Logger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} } as unknown as Logger;
const attrs = (ip: string, mac = 'c6:d2:32:6f:8f:44'): LeaseAttrs => ({ publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: mac }) });
const flannelNode = (name: string, cidr: string, ip: string, mac: string): FakeNode => ({
  metadata: { name, annotations: {
    [ANN.backendData]: JSON.stringify({ VNI: 1, VtepMAC: mac }), [ANN.backendType]: 'vxlan',
    [ANN.subnetManager]: 'true', [ANN.publicIP]: ip,
  } },
  spec: { podCIDR: cidr, podCIDRs: [cidr] },
});

const waitFor = async (f: () => boolean | Promise<boolean>, ms = 5000): Promise<void> => {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('kube store (fake API server)', () => {
  let api: FakeKubeApi;
  let store: KubeLeaseStore | undefined;
  beforeEach(async () => {
    api = new FakeKubeApi();
    await api.start();
  });
  afterEach(async () => {
    store?.close();
    store = undefined;
    await api.stop();
  });
  const open = async (nodeName = 'node-a') => {
    store = await openKubeLeaseStore({ kubeconfigFile: api.kubeconfig(), nodeName, log });
    return store satisfies LeaseStore;
  };

  it('takes our subnet from podCIDRs, writes the annotations with a patch and sets NetworkUnavailable=False', async () => {
    api.addNode({ metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.0/24', 'fd00:7::/64'] },
      status: { conditions: [{ type: 'Ready', status: 'True' }, { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }] } });
    const s = await open();
    const own = await s.acquire(attrs('192.168.64.3'));
    expect(formatPrefix(own.subnet)).toBe('10.244.7.0/24');
    expect(own.expiration).toBeNull();
    const ann = api.nodes.get('node-a')!.metadata.annotations!;
    expect(ann).toEqual({
      'flannel.alpha.coreos.com/backend-data': '{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}',
      'flannel.alpha.coreos.com/backend-type': 'vxlan',
      'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
      'flannel.alpha.coreos.com/public-ip': '192.168.64.3',
    });
    // everything goes to nodes/status (what conf/flax.yml's ClusterRole grants, as flanneld's)
    expect(api.patches.every((p) => p.path === '/api/v1/nodes/node-a/status')).toBe(true);
    const annPatch = api.patches.find((p) => 'metadata' in (p.body as object))!;
    expect(annPatch.contentType).toBe('application/merge-patch+json');
    const statusPatch = api.patches.find((p) => 'status' in (p.body as object))!;
    expect(statusPatch.contentType).toBe('application/strategic-merge-patch+json');
    const conds = api.nodes.get('node-a')!.status!.conditions!;
    expect(conds.find((c) => c.type === 'NetworkUnavailable')).toMatchObject({ status: 'False', reason: 'FlannelIsUp' });
    expect(conds.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
    // our own node is a lease now (the agent's loop requires it)
    expect((await s.list()).map((l) => formatPrefix(l.subnet))).toEqual(['10.244.7.0/24']);
    // a second acquire with the same attrs does not patch the node again
    const n = api.patches.length;
    await s.acquire(attrs('192.168.64.3'));
    expect(api.patches.filter((p) => 'metadata' in (p.body as object)).length).toBe(1);
    expect(api.patches.length).toBe(n + 1);
  });

  it('podCIDR alone is honoured; no pod cidr is an error', async () => {
    api.addNode({ metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.9.0/24' } });
    api.addNode({ metadata: { name: 'node-b' }, spec: {} });
    expect(formatPrefix((await (await open('node-a')).acquire(attrs('192.168.64.3'))).subnet)).toBe('10.244.9.0/24');
    store!.close();
    await expect((await open('node-b')).acquire(attrs('192.168.64.4'))).rejects.toThrow('pod cidr not assigned');
    expect(api.patches.some((p) => p.path.includes('node-b'))).toBe(false);
  });

  it('lists annotated nodes as leases (attrs from annotations, no expiry) and ignores the others', async () => {
    api.addNode({ metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.1.0/24' } });
    api.addNode(flannelNode('node-b', '10.244.2.0/24', '192.168.64.4', 'aa:bb:cc:dd:ee:02'));
    api.addNode({ metadata: { name: 'node-c', annotations: { [ANN.publicIP]: '192.168.64.5' } }, spec: { podCIDR: '10.244.3.0/24' } });
    api.addNode({ ...flannelNode('node-d', '', '192.168.64.6', 'aa:bb:cc:dd:ee:04'), spec: {} });
    const leases = await (await open()).list();
    expect(leases).toEqual([{ subnet: expect.objectContaining({ prefixLen: 24 }), attrs: { publicIP: '192.168.64.4', publicIPv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:02' } }, expiration: null }]);
    expect(formatPrefix(leases[0].subnet)).toBe('10.244.2.0/24');
  });

  it('a watch event adding a node produces a lease; a closed watch is re-established', async () => {
    api.addNode({ metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.1.0/24' } });
    const s = await open();
    await s.acquire(attrs('192.168.64.3'));
    let changes = 0;
    const seen: string[] = [];
    s.watch((evs) => {
      changes++;
      seen.push(evs ? evs.map((e) => (e.type === 'unreadable' ? `unreadable ${e.where}: ${e.why}` : `${e.type} ${formatPrefix(e.lease.subnet)} ${e.lease.attrs.publicIP}`)).join() : 'relist');
    });
    await waitFor(() => api.watchers === 1);
    const before = changes;
    api.addNode(flannelNode('node-b', '10.244.2.0/24', '192.168.64.4', 'aa:bb:cc:dd:ee:02'));
    await waitFor(() => changes > before);
    expect(seen.at(-1)).toBe('added 10.244.2.0/24 192.168.64.4'); // the node's lease as an event: no re-list needed
    expect((await s.list()).map((l) => [formatPrefix(l.subnet), l.attrs.publicIP])).toEqual([['10.244.1.0/24', '192.168.64.3'], ['10.244.2.0/24', '192.168.64.4']]);
    // an annotation that cannot be parsed: unreadable (naming the node), no removal; listed as such; valid again: added
    let c0 = changes;
    api.updateNode('node-b', (n) => { n.metadata.annotations![ANN.backendData] = '{{{'; });
    await waitFor(() => changes > c0);
    expect(seen.at(-1)).toBe(`unreadable node node-b: ${ANN.backendData} is not JSON: "{{{"`);
    c0 = changes;
    api.updateNode('node-b', (n) => { n.metadata.annotations![ANN.publicIP] = ''; });
    await waitFor(() => changes > c0);
    expect(seen.at(-1)).toMatch(/^unreadable node node-b: .*public-ip is not an IPv4 address: "".*backend-data is not JSON/);
    const l = await s.list();
    expect([l.map((x) => formatPrefix(x.subnet)), l.unreadable?.map((u) => [formatPrefix(u.subnet), u.where])]).toEqual([['10.244.1.0/24'], [['10.244.2.0/24', 'node node-b']]]);
    c0 = changes;
    api.updateNode('node-b', (n) => Object.assign(n.metadata.annotations!, flannelNode('node-b', '10.244.2.0/24', '192.168.64.4', 'aa:bb:cc:dd:ee:02').metadata.annotations));
    await waitFor(() => changes > c0);
    expect(seen.at(-1)).toBe('added 10.244.2.0/24 192.168.64.4');
    // a node without our annotations still triggers a re-list but is no lease
    api.addNode({ metadata: { name: 'node-x' }, spec: { podCIDR: '10.244.9.0/24' } });
    // the server ends the watch: the store re-lists and watches again
    api.closeWatches();
    await waitFor(() => api.watchers === 1);
    const c2 = changes;
    api.deleteNode('node-b');
    await waitFor(() => changes > c2);
    expect(seen.at(-1)).toBe('removed 10.244.2.0/24 192.168.64.4');
    // a node deleted while its annotations are unreadable is removed
    api.addNode({ ...flannelNode('node-c', '10.244.3.0/24', 'garbage', 'aa:bb:cc:dd:ee:03') });
    await waitFor(() => seen.at(-1)!.startsWith('unreadable node node-c'));
    const c3 = changes;
    api.deleteNode('node-c');
    await waitFor(() => changes > c3);
    expect(seen.at(-1)).toBe('removed 10.244.3.0/24 0.0.0.0');
    expect((await s.list()).map((l) => formatPrefix(l.subnet))).toEqual(['10.244.1.0/24']);
  });

  it('nodeToLease reads public-ipv6 and skips malformed annotations', () => {
    const n = flannelNode('n', '10.244.4.0/24', '192.168.64.9', 'aa:bb:cc:dd:ee:09');
    n.metadata.annotations![ANN.publicIPv6] = 'fd00::9';
    expect(nodeToLease(n)!.attrs.publicIPv6).toBe('fd00::9');
    n.metadata.annotations![ANN.publicIP] = 'not-an-ip';
    expect(nodeToLease(n)).toBeNull();
    expect(nodeLease(n)).toEqual({ bad: { subnet: expect.objectContaining({ prefixLen: 24 }), where: 'node n', why: `${ANN.publicIP} is not an IPv4 address: "not-an-ip"` } });
    delete n.metadata.annotations![ANN.publicIP];
    expect(nodeLease(n)).toMatchObject({ bad: { why: `${ANN.publicIP} missing` } });
    // not flannel-managed, or no pod CIDR: no lease at all
    expect(nodeLease({ ...n, spec: {} })).toBeNull();
    expect(nodeLease({ ...n, metadata: { name: 'n', annotations: { [ANN.publicIP]: '192.168.64.9' } } })).toBeNull();
  });

  it('update (our lease written again) honours the public-ip-overwrite annotation', async () => {
    api.addNode({ metadata: { name: 'node-a', annotations: { [ANN.publicIPOverwrite]: '203.0.113.7' } }, spec: { podCIDR: '10.244.1.0/24' } });
    const s = await open();
    await s.acquire(attrs('192.168.64.3'));
    api.updateNode('node-a', (n) => { n.metadata.annotations![ANN.publicIP] = '{{{'; });
    await s.update(parseNetwork('10.244.1.0/24'), undefined, attrs('192.168.64.3'));
    expect(api.nodes.get('node-a')!.metadata.annotations![ANN.publicIP]).toBe('203.0.113.7');
  });

  it('--kube-annotation-prefix: our annotations under that prefix, and only nodes annotated under it are leases', async () => {
    api.addNode({ metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.7.0/24' } });
    // a flanneld node under the default prefix: not a lease of this cluster's prefix
    api.addNode(flannelNode('node-b', '10.244.8.0/24', '192.168.64.4', 'c6:d2:32:6f:8f:45'));
    api.addNode({ metadata: { name: 'node-c', annotations: { 'example.com/x-kube-subnet-manager': 'true', 'example.com/x-public-ip': '192.168.64.5',
      'example.com/x-backend-type': 'vxlan', 'example.com/x-backend-data': '{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:46"}' } }, spec: { podCIDR: '10.244.9.0/24' } });
    store = await openKubeLeaseStore({ kubeconfigFile: api.kubeconfig(), nodeName: 'node-a', log, annotationPrefix: 'example.com/x' });
    await store.acquire(attrs('192.168.64.3'));
    expect(Object.keys(api.nodes.get('node-a')!.metadata.annotations!).sort()).toEqual([
      'example.com/x-backend-data', 'example.com/x-backend-type', 'example.com/x-kube-subnet-manager', 'example.com/x-public-ip']);
    expect((await store.list()).map((l) => formatPrefix(l.subnet)).sort()).toEqual(['10.244.7.0/24', '10.244.9.0/24']);
    // without "/": one is appended
    expect(new KubeLeaseStore(api as never, { nodeName: 'n', log, annotationPrefix: 'example.com' }).ann.publicIP).toBe('example.com/public-ip');
  });

  it('--set-node-network-unavailable=false: the NetworkUnavailable condition is left alone', async () => {
    api.addNode({ metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.7.0/24' },
      status: { conditions: [{ type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }] } });
    store = await openKubeLeaseStore({ kubeconfigFile: api.kubeconfig(), nodeName: 'node-a', log, setNodeNetworkUnavailable: false });
    await store.acquire(attrs('192.168.64.3'));
    expect(api.patches.filter((p) => 'status' in (p.body as object))).toEqual([]);
    expect(api.nodes.get('node-a')!.status!.conditions).toEqual([{ type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }]);
    expect(api.nodes.get('node-a')!.metadata.annotations![ANN.publicIP]).toBe('192.168.64.3');
  });
});
