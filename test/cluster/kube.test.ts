/**
 * A real cluster (issue 22, items 1-2): etcd + kube-apiserver (TLS, RBAC and
 * Node authorization) + kube-controller-manager (podCIDRs from 10.244.0.0/16,
 * the DaemonSet controller, ServiceAccount tokens) + kube-scheduler, and one
 * real worker: kubelet with containerd 1.6's CRI, its sandbox image built here
 * from native/pause. flax is installed by applying conf/flax.yml UNCHANGED
 * (the image from scripts/build-image.sh imported into containerd's k8s.io
 * namespace): its init container puts the plugins and the conflist on the
 * node, its flaxd --kube-subnet-mgr runs with the flax ServiceAccount's token
 * (RBAC exactly as flax.yml grants). Test pods (busybox, built here) get
 * addresses from the worker's podCIDR through kubelet → CRI → flax's CNI.
 *
 * Layout: every node is a netns on an underlay bridge (its own netns). The
 * worker's containerd and kubelet also run in a private mount namespace where
 * scratch dirs stand for the node's host paths (worker.ts), so the machine's
 * /opt/cni/bin, /etc/cni/net.d, /var/lib/cni, /run/... never change. What
 * kubelet changes outside (cgroups, a few kernel sysctls) is recorded before
 * and restored after. There is no kube-proxy: the worker's netns gets one nft
 * DNAT rule for the `kubernetes` Service (10.96.0.1:443 → the apiserver),
 * which is what in-cluster clients (flaxd) dial.
 *
 * Peers come from $FLAX_PEERS (scripts/peers-kube.sh); etcd is Debian's 3.4
 * unless $FLAX_PEERS/bin/etcd exists.
 */
import { existsSync, mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireE2eLock, missingPrereq, removeScratch, run, scratchDir, sleep } from '../lib/e2e';
import { ensurePackage, ROOT } from '../lib/pkg';
import pkg from '../../package.json';
import { type ControlPlane, CLUSTER_CIDR, KUBERNETES_SVC, startControlPlane, stopControlPlane } from './lib/controlplane';
import { BUSYBOX_IMAGE, buildBusyboxImage, buildFlaxImage, buildPauseImage, imageBuilder } from './lib/images';
import { addNode, CP_IP, destroyNet, inNs, makeUnderlay, type Net } from './lib/net';
import { missingPeers, peerBin } from './lib/peers';
import { logTail, stopDaemon } from './lib/proc';
import { addPod, bindNodeGroup, destroyPods, type FlaxNode, flaxNode, registerNode, startFlaxd } from './lib/flaxnode';
import { parseAllDocuments } from 'yaml';
import { createWorker, destroyWorker, HostRecord, type Worker } from './lib/worker';

const KUBE = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kubectl'];
const FLAX_IMAGE = `localhost/flax:${pkg.version}`;
const skipReason = missingPrereq(['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'buildah', 'openssl', 'nsenter', 'unshare', 'nft', 'curl', 'busybox'])
  ?? (missingPeers([...KUBE, 'etcd']).length ? `peers not built: ${missingPeers([...KUBE, 'etcd']).join(', ')} (bash scripts/peers-kube.sh)` : null);
if (skipReason) console.warn(`cluster test skipped: ${skipReason}`);

function inCidr(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const n = (a: string) => a.split('.').reduce((x, o) => (x << 8) + Number(o), 0) >>> 0;
  const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  return ((n(ip) & mask) >>> 0) === ((n(net) & mask) >>> 0);
}

describe.skipIf(!!skipReason)('a real cluster: control plane + kubelet/containerd worker with flax from conf/flax.yml', () => {
  let lock: { release: () => void } | undefined;
  let base = '';
  let net: Net | undefined;
  let cp: ControlPlane | undefined;
  let worker: Worker | undefined;
  let rec: HostRecord | undefined;
  const others: FlaxNode[] = [];
  const podIps: Record<string, string> = {};
  const flaxYml = () => parseAllDocuments(readFileSync(path.join(ROOT, 'conf/flax.yml'), 'utf8')).map((d) => d.toJS()).filter(Boolean);
  const cm = () => flaxYml().find((o: any) => o.kind === 'ConfigMap').data as Record<string, string>;
  const prefix = `flaxk${process.pid % 100000}`;
  const kubectl = (args: string[], allowFail = false) => cp!.kubectl(args, { allowFail });
  const json = (args: string[]) => JSON.parse(kubectl([...args, '-o', 'json']).stdout);
  const diag = () => [
    kubectl(['get', 'nodes,pods', '-A', '-o', 'wide'], true).stdout,
    kubectl(['get', 'events', '-A', '--sort-by=.lastTimestamp'], true).stdout.slice(-3000),
    `kubelet:\n${logTail(worker?.kubelet, 3000)}`, `containerd:\n${logTail(worker?.containerd, 2000)}`,
  ].join('\n');

  async function until<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 120_000, stepMs = 1000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${diag()}`);
      await sleep(stepMs);
    }
  }

  beforeAll(async () => {
    lock = await acquireE2eLock(900_000);
    base = scratchDir('cluster');
    const logs = path.join(base, 'logs');
    mkdirSync(logs, { recursive: true });
    await ensurePackage();
    // images: pause (the sandbox), busybox (test pods), flax (scripts/build-image.sh)
    const b = imageBuilder(path.join(base, 'images'));
    const archives = [buildPauseImage(b), buildBusyboxImage(b), buildFlaxImage(b, FLAX_IMAGE)];

    net = makeUnderlay(prefix);
    const cpNs = addNode(net, 'cp', CP_IP);
    const wNs = addNode(net, 'w1', '172.30.99.11');
    cp = await startControlPlane(path.join(base, 'cp'), cpNs);

    rec = HostRecord.take();
    worker = await createWorker({ dir: path.join(base, 'w1'), name: 'w1', ns: wNs, ip: '172.30.99.11', kubeconfig: cp.nodeKubeconfig('w1'), ca: cp.pki.ca, rec, logs });
    await worker.startContainerd();
    for (const a of archives) worker.ctr(['images', 'import', a]);
    // no kube-proxy: the `kubernetes` Service's ClusterIP, as in-cluster clients dial it, DNATed to the apiserver
    run('nsenter', [`--net=/run/netns/${wNs}`, '--', 'nft', '-f', '-'], {
      input: `table ip flaxk-svc {\n chain out {\n  type nat hook output priority -100; policy accept;\n  ip daddr ${KUBERNETES_SVC} tcp dport 443 dnat to ${CP_IP}:443\n }\n}\n`,
    });
    await worker.startKubelet();
    await until('Node w1 registered with a podCIDR', () => {
      const r = kubectl(['get', 'node', 'w1', '-o', 'jsonpath={.spec.podCIDR}'], true);
      return r.code === 0 && r.stdout.trim();
    }, 180_000);
  }, 900_000);

  afterAll(async () => {
    const problems: string[] = [];
    try {
      if (cp && worker) {
        // pods down through the API first: kubelet runs each CNI DEL
        kubectl(['delete', 'pod', '-l', 'flax-test', '--wait=false'], true);
        kubectl(['delete', '-f', path.join(ROOT, 'conf/flax.yml'), '--wait=false'], true);
        for (let t = 0; t < 60 && kubectl(['get', 'pods', '-A', '-o', 'name'], true).stdout.trim(); t++) await sleep(1000);
      }
      for (const n of others) { await stopDaemon(n.agent); destroyPods(n); }
      await destroyWorker(worker);
      await stopControlPlane(cp);
      if (rec) problems.push(...rec.restore());
      destroyNet(net);
      if (base) removeScratch(base);
    } finally {
      lock?.release();
    }
    if (problems.length) throw new Error(`the machine was not left as found:\n${problems.join('\n')}`);
  }, 300_000);

  it('control plane: the API serves over TLS with RBAC; the controller-manager gave the worker a podCIDR from the cluster CIDR', () => {
    const node = json(['get', 'node', 'w1']);
    expect(inCidr(node.spec.podCIDR.split('/')[0], CLUSTER_CIDR)).toBe(true);
    expect(node.spec.podCIDR).toMatch(/\/24$/);
    // RBAC: anonymous is refused, the node's cert can read only what the Node authorizer grants
    const anon = inNs(cp!.ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', cp!.pki.ca, `https://${CP_IP}/api/v1/nodes`], true);
    expect(['401', '403']).toContain(anon.stdout.trim());
  });

  it('conf/flax.yml applied unchanged: the DaemonSet\'s pod on the worker installs the plugins and conflist, flaxd --kube-subnet-mgr runs with the flax ServiceAccount', async () => {
    const r = kubectl(['apply', '-f', path.join(ROOT, 'conf/flax.yml')]);
    expect(r.stdout).toContain('daemonset.apps/kube-flax-ds');
    // RBAC exactly as flax.yml grants, nothing more
    const sa = 'system:serviceaccount:kube-flax:flax';
    const can = (verb: string, res: string) => kubectl(['auth', 'can-i', verb, res, '--as', sa], true).stdout.trim();
    expect(can('watch', 'nodes')).toBe('yes');
    expect(can('patch', 'nodes/status')).toBe('yes');
    expect(can('update', 'nodes')).toBe('no');
    expect(can('list', 'pods')).toBe('no');
    const pod = await until('the flax DaemonSet pod on w1 to be Ready', () => {
      const l = json(['get', 'pods', '-n', 'kube-flax', '-l', 'app=flax']);
      const p = l.items.find((x: any) => x.spec.nodeName === 'w1');
      return p?.status?.conditions?.find((c: any) => c.type === 'Ready' && c.status === 'True') ? p : null;
    }, 240_000);
    expect(pod.spec.serviceAccountName).toBe('flax');
    // what the init container put on the node (the scratch dirs standing for its hostPaths)
    const conflist = JSON.parse(readFileSync(worker!.host('/etc/cni/net.d/10-flannel.conflist'), 'utf8'));
    expect(conflist.plugins.map((p: any) => p.type)).toEqual(['flannel', 'portmap']);
    expect(readlinkSync(worker!.host('/opt/cni/bin/flannel'))).toMatch(/^\.flax\/[0-9a-f]{16}\/cniclient$/);
    // flaxd took the node's lease: subnet.env = the node's podCIDR, annotations, NetworkUnavailable=False
    const node = json(['get', 'node', 'w1']);
    const env = await until('subnet.env', () => existsSync(worker!.host('/run/flannel/subnet.env')) && readFileSync(worker!.host('/run/flannel/subnet.env'), 'utf8'));
    expect(env).toContain('FLANNEL_NETWORK=10.244.0.0/16');
    const sub = /FLANNEL_SUBNET=([\d.]+)\/(\d+)/.exec(env)!;
    expect(inCidr(sub[1], node.spec.podCIDR)).toBe(true);
    expect(node.metadata.annotations['flannel.alpha.coreos.com/public-ip']).toBe('172.30.99.11');
    expect(node.metadata.annotations['flannel.alpha.coreos.com/backend-type']).toBe('vxlan');
    expect(JSON.parse(node.metadata.annotations['flannel.alpha.coreos.com/backend-data']).VtepMAC).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(node.status.conditions.find((c: any) => c.type === 'NetworkUnavailable')?.status).toBe('False');
    await until('Node w1 Ready', () => json(['get', 'node', 'w1']).status.conditions.find((c: any) => c.type === 'Ready')?.status === 'True');
  });

  it('test pods on the worker get addresses from its podCIDR through flax (kubelet → CRI → CNI ADD) and reach each other', async () => {
    const podCIDR = json(['get', 'node', 'w1']).spec.podCIDR;
    const manifest = (n: string) => JSON.stringify({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: n, namespace: 'default', labels: { 'flax-test': 'yes' } },
      spec: { nodeName: 'w1', terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '100000'] }] },
    });
    for (const n of ['bb1', 'bb2']) cp!.kubectl(['apply', '-f', '-'], { input: manifest(n) });
    const ips: string[] = [];
    for (const n of ['bb1', 'bb2']) {
      const p = await until(`${n} Running`, () => { const x = json(['get', 'pod', n]); return x.status.phase === 'Running' && x.status.podIP ? x : null; }, 180_000);
      expect(inCidr(p.status.podIP, podCIDR), `${p.status.podIP} in ${podCIDR}`).toBe(true);
      ips.push(p.status.podIP);
    }
    expect(ips[0]).not.toBe(ips[1]);
    const ping = kubectl(['exec', 'bb1', '--', 'ping', '-c', '2', '-W', '2', ips[1]], true);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    podIps.bb1 = ips[0];
    podIps.bb2 = ips[1];
  });

  it('more nodes: two netns nodes run flaxd --kube-subnet-mgr as registered Nodes with podCIDRs from the controller-manager; worker pods and their pods ping both ways', async () => {
    expect(podIps.bb1, 'the worker pods test ran').toBeTruthy();
    bindNodeGroup(cp!);
    const conflist = JSON.parse(cm()['cni-conf.json']);
    for (const [i, name] of ['f1', 'f2'].entries()) {
      const ip = `172.30.99.${21 + i}`;
      const ns = addNode(net!, name, ip);
      registerNode(cp!, name, ip);
      const cidr = await until(`Node ${name} podCIDR`, () => kubectl(['get', 'node', name, '-o', 'jsonpath={.spec.podCIDR}'], true).stdout.trim(), 60_000);
      const n = flaxNode(cp!, path.join(base, name), name, ns, ip, cm()['net-conf.json']);
      others.push(n);
      const agent = startFlaxd(n, path.join(base, 'logs'));
      const env = await until(`flaxd on ${name} to write its subnet file`, () => {
        if (agent.child.exitCode !== null) throw new Error(`flaxd on ${name} exited:\n${logTail(agent)}`);
        return existsSync(n.subnetFile) && readFileSync(n.subnetFile, 'utf8');
      }, 60_000, 300);
      expect(inCidr(/FLANNEL_SUBNET=([\d.]+)/.exec(env)![1], cidr)).toBe(true);
      podIps[name] = addPod(n, conflist, `${net!.prefix}-${name}-p1`);
      expect(inCidr(podIps[name], cidr)).toBe(true);
    }
    for (const name of ['f1', 'f2']) {
      // worker pod → netns node pod, over the VXLAN overlay both flaxds and the DaemonSet's flaxd programmed
      const out = await until(`bb1 → ${name}'s pod`, () => { const r = kubectl(['exec', 'bb1', '--', 'ping', '-c', '1', '-W', '1', podIps[name]], true); return r.code === 0 && r.stdout; }, 30_000);
      expect(out).toContain('1 packets received');
      const back = run('nsenter', [`--net=/run/netns/${net!.prefix}-${name}-p1`, '--', 'ping', '-c', '1', '-W', '2', podIps.bb2], { allowFail: true });
      expect(back.code, back.stdout + back.stderr).toBe(0);
    }
    const across = run('nsenter', [`--net=/run/netns/${net!.prefix}-f1-p1`, '--', 'ping', '-c', '1', '-W', '2', podIps.f2], { allowFail: true });
    expect(across.code, across.stdout).toBe(0);
  });
});
