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
 * Items 3-4: two netns nodes run flaxd --kube-subnet-mgr, a third real
 * flanneld --kube-subnet-mgr with flannel's CNI plugin (peers.sh cni-flannel)
 * delegating to the reference bridge + host-local v1.10.0, and takes over
 * from flaxd and back; hostPort, DEL, kill -9 recovery, a rolling update.
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
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireE2eLock, missingPrereq, removeScratch, run, scratchDir, sleep } from '../lib/e2e';
import { ensurePackage, ROOT } from '../lib/pkg';
import pkg from '../../package.json';
import { type ControlPlane, CLUSTER_CIDR, KUBERNETES_SVC, startControlPlane, stopControlPlane } from './lib/controlplane';
import { BUSYBOX_IMAGE, buildBusyboxImage, buildFlaxImage, buildPauseImage, imageBuilder } from './lib/images';
import { addNode, CP_IP, destroyNet, inNs, makeUnderlay, type Net } from './lib/net';
import { FLAX_PEERS, missingPeers, peerBin, peerVersions } from './lib/peers';
import { logTail, stopDaemon } from './lib/proc';
import { addPod, startFlanneld, bindNodeGroup, destroyPods, type FlaxNode, flaxNode, registerNode, startFlaxd } from './lib/flaxnode';
import { parseAllDocuments } from 'yaml';
import { createWorker, destroyWorker, HostRecord, type Worker } from './lib/worker';

const KUBE = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kubectl'];
const FLAX_IMAGE = `localhost/flax:${pkg.version}`;
const skipReason = missingPrereq(['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'buildah', 'openssl', 'nsenter', 'unshare', 'nft', 'curl', 'busybox'])
  ?? (missingPeers([...KUBE, 'etcd']).length ? `peers not built: ${missingPeers([...KUBE, 'etcd']).join(', ')} (bash scripts/peers-kube.sh)` : null);
// run by scripts/run-cluster.mjs (npm test, npm run test:cluster): a missing peer or tool is a failure, not a skip
const REQUIRED = process.env.FLAX_PEERS_REQUIRED === '1';
if (skipReason) console.warn(`cluster test ${REQUIRED ? 'cannot run' : 'skipped'}: ${skipReason}`);
if (skipReason && REQUIRED) {
  describe('a real cluster (prerequisites)', () => {
    it('every peer and tool the cluster test needs is there', () => { throw new Error(`missing: ${skipReason}`); });
  });
}

const CNI_FLANNEL = path.join(FLAX_PEERS, 'cni-flannel');
const REF_PLUGINS = path.join(FLAX_PEERS, `plugins-${peerVersions().plugins ?? 'v1.10.0'}`);
const flannelSkip = [peerBin('flanneld'), path.join(CNI_FLANNEL, 'flannel'), path.join(REF_PLUGINS, 'bridge'), path.join(REF_PLUGINS, 'host-local')]
  .filter((f) => !existsSync(f));
if (flannelSkip.length) console.warn(`cluster test: the flanneld node ${REQUIRED ? 'fails' : 'is skipped'}: missing ${flannelSkip.join(', ')} (bash scripts/peers.sh)`);
const flannelSkipped = flannelSkip.length > 0 && !REQUIRED;

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
  let flaxReady = false;
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
    // forwarding off in the worker's netns (a new netns inherits the root's): flax's bridge must turn it on at the
    // first ADD, as the reference bridge does, although its resident CNI server runs in the DaemonSet's
    // unprivileged container where /proc/sys is read-only (it writes through the caller's /proc; checked below)
    inNs(wNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
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
    const can = (verb: string, res: string) => {
      const [r, sub] = res.split('/');
      return kubectl(['auth', 'can-i', verb, r, ...(sub ? ['--subresource', sub] : []), '--as', sa, '-A'], true).stdout.trim();
    };
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
    flaxReady = true;
  });

  it('test pods on the worker get addresses from its podCIDR through flax (kubelet → CRI → CNI ADD) and reach each other', async () => {
    expect(flaxReady, 'flax runs on the worker (the test before)').toBe(true);
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
    expect(inNs(worker!.ns, 'sysctl', ['-n', 'net.ipv4.ip_forward']).stdout.trim(), 'ip_forward turned on by bridge through the CNI server').toBe('1');
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

  const vtepMac = (ns: string) => JSON.parse(run('ip', ['-n', ns, '-j', 'link', 'show', 'flannel.1']).stdout)[0].address as string;
  const nodeLease = (name: string) => {
    const node = json(['get', 'node', name]);
    const a = node.metadata.annotations;
    return { podCIDR: node.spec.podCIDR, publicIp: a['flannel.alpha.coreos.com/public-ip'], backendType: a['flannel.alpha.coreos.com/backend-type'],
      vtepMac: JSON.parse(a['flannel.alpha.coreos.com/backend-data'] ?? '{}').VtepMAC };
  };
  const pingFromNs = (ns: string, ip: string) => run('nsenter', [`--net=/run/netns/${ns}`, '--', 'ping', '-c', '1', '-W', '2', ip], { allowFail: true });
  let g1: FlaxNode | undefined;

  it.skipIf(flannelSkipped)('a real flanneld --kube-subnet-mgr node with flannel\'s own CNI plugin: a mixed cluster, pods ping across', async () => {
    expect(flannelSkip, 'flanneld, flannel\'s CNI plugin and the reference bridge + host-local (bash scripts/peers.sh)').toEqual([]);
    expect(podIps.f1, 'the flaxd nodes test ran').toBeTruthy();
    const ns = addNode(net!, 'g1', '172.30.99.31');
    registerNode(cp!, 'g1', '172.30.99.31');
    const cidr = await until('Node g1 podCIDR', () => kubectl(['get', 'node', 'g1', '-o', 'jsonpath={.spec.podCIDR}'], true).stdout.trim(), 60_000);
    g1 = flaxNode(cp!, path.join(base, 'g1'), 'g1', ns, '172.30.99.31', cm()['net-conf.json']);
    others.push(g1);
    const agent = startFlanneld(g1, path.join(base, 'logs'), peerBin('flanneld'));
    const env = await until('flanneld on g1 to write its subnet file', () => {
      if (agent.child.exitCode !== null) throw new Error(`flanneld exited:\n${logTail(agent)}`);
      return existsSync(g1!.subnetFile) && readFileSync(g1!.subnetFile, 'utf8');
    }, 60_000, 300);
    expect(inCidr(/FLANNEL_SUBNET=([\d.]+)/.exec(env)![1], cidr)).toBe(true);
    const lease = nodeLease('g1');
    expect(lease.publicIp).toBe('172.30.99.31');
    expect(lease.vtepMac).toBe(vtepMac(ns));
    // flannel's CNI plugin (scripts/peers.sh cni-flannel: the reference plugins' v0.9.1 meta/flannel when
    // flannel-io/cni-plugin is not served) delegating to the reference bridge + host-local v1.10.0; v0.9.1
    // speaks CNI up to 0.4.0, so the conflist's entry goes at that version (as a runtime would downgrade it)
    const cniFlannelVersion = peerVersions()['cni-flannel'] ?? '';
    podIps.g1 = addPod(g1, JSON.parse(cm()['cni-conf.json']), `${net!.prefix}-g1-p1`, path.join(CNI_FLANNEL, 'flannel'), `${CNI_FLANNEL}:${REF_PLUGINS}`,
      cniFlannelVersion.includes('@v0.') ? { cniVersion: '0.4.0' } : {});
    expect(inCidr(podIps.g1, cidr)).toBe(true);
    const out = await until('bb1 → g1\'s pod', () => { const r = kubectl(['exec', 'bb1', '--', 'ping', '-c', '1', '-W', '1', podIps.g1], true); return r.code === 0 && r.stdout; }, 30_000);
    expect(out).toContain('1 packets received');
    for (const ip of [podIps.bb2, podIps.f1, podIps.f2]) {
      const r = await until(`g1's pod → ${ip}`, () => pingFromNs(`${net!.prefix}-g1-p1`, ip).code === 0 || null, 20_000).catch((e) => e as Error);
      expect(r, `g1's pod → ${ip}: ${logTail(agent, 1500)}`).toBe(true);
    }
  });

  it.skipIf(flannelSkipped)('takeover on one node both ways, flanneld → flaxd → flanneld: lease, subnet and VTEP MAC kept, the pod reachable after each', async () => {
    expect(g1?.agent, 'the flanneld node test ran').toBeTruthy();
    const n = g1!;
    const before = { lease: nodeLease('g1'), env: readFileSync(n.subnetFile, 'utf8'), mac: vtepMac(n.ns) };
    const swap = async (start: () => ReturnType<typeof startFlaxd>, what: string) => {
      await stopDaemon(n.agent);
      rmSync(n.subnetFile, { force: true });
      const a = start();
      await until(`${what} on g1 to write its subnet file`, () => {
        if (a.child.exitCode !== null) throw new Error(`${what} exited:\n${logTail(a)}`);
        return existsSync(n.subnetFile) && readFileSync(n.subnetFile, 'utf8');
      }, 60_000, 300);
      const env = readFileSync(n.subnetFile, 'utf8');
      const sub = (e: string) => /FLANNEL_SUBNET=(\S+)/.exec(e)?.[1];
      expect(sub(env), `${what}: subnet`).toBe(sub(before.env));
      expect(vtepMac(n.ns), `${what}: VTEP MAC of flannel.1`).toBe(before.mac);
      await until(`${what}: the Node's annotations back`, () => nodeLease('g1').vtepMac === before.mac || null, 30_000, 500);
      expect(nodeLease('g1')).toEqual(before.lease);
      for (const ip of [podIps.bb1, podIps.f1]) {
        const r = await until(`${what}: g1's pod → ${ip}`, () => pingFromNs(`${net!.prefix}-g1-p1`, ip).code === 0 || null, 20_000).catch((e) => e as Error);
        expect(r, `${what}: g1's pod → ${ip}:\n${logTail(a, 2000)}`).toBe(true);
      }
    };
    await swap(() => startFlaxd(n, path.join(base, 'logs')), 'flaxd (taking over from flanneld)');
    await swap(() => startFlanneld(n, path.join(base, 'logs'), peerBin('flanneld')), 'flanneld (taking over from flaxd)');
  });

  // ---- item 4: hostPort, DEL, crash recovery, rolling update --------------------------------------------

  /** the worker's CNI state: reservations (ip -> container id), libcni result cache files, flannel's dataDir files */
  const workerCni = () => {
    const res: Record<string, string> = {};
    const nd = worker!.host('/var/lib/cni/networks/cbr0');
    if (existsSync(nd)) for (const f of readdirSync(nd)) if (/^\d+\.\d+\.\d+\.\d+$/.test(f)) res[f] = readFileSync(path.join(nd, f), 'utf8').split('\n')[0].trim();
    const ls = (d: string) => existsSync(d) ? readdirSync(d) : [];
    // results: libcni's cache of the cbr0 attachments (containerd's go-cni also caches its own loopback ones, cni-loopback-*)
    return { res, results: ls(worker!.host('/var/lib/cni/results')).filter((f) => f.startsWith('cbr0-')), flannel: ls(worker!.host('/var/lib/cni/flannel')) };
  };
  const workerFw = () => worker!.exec('nft', ['list', 'ruleset'], true).stdout;
  // (the worker's mount ns keeps the root netns's /sys: ask netlink in the worker's netns instead)
  const bridgePorts = () => (JSON.parse(inNs(worker!.ns, 'ip', ['-j', 'link', 'show', 'master', 'cni0'], true).stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
  const podManifest = (n: string, extra: Record<string, unknown> = {}, ports?: unknown[]) => JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: n, namespace: 'default', labels: { 'flax-test': 'yes' } },
    spec: { nodeName: 'w1', terminationGracePeriodSeconds: 1, ...extra,
      containers: [{ name: 'c', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', 'httpd -p 8080 -h /www; exec sleep 100000'], ...(ports ? { ports } : {}) }] },
  });
  const runningPod = (n: string, timeoutMs = 180_000) => until(`${n} Running`, () => {
    const x = json(['get', 'pod', n]);
    return x.status.phase === 'Running' && x.status.podIP && x.status.containerStatuses?.[0]?.ready ? x : null;
  }, timeoutMs);

  let workerCniBefore: ReturnType<typeof workerCni> | undefined;
  let bridgePortsBefore = 0;
  it('a hostPort (portmap) on the worker is reached from another node; kubectl delete pod → DEL leaves nothing behind', async () => {
    expect(podIps.f1, 'the flaxd nodes test ran').toBeTruthy();
    workerCniBefore = workerCni();
    bridgePortsBefore = bridgePorts().length;
    cp!.kubectl(['apply', '-f', '-'], { input: podManifest('hp', {}, [{ containerPort: 8080, hostPort: 18080, protocol: 'TCP' }]) });
    const p = await runningPod('hp', 120_000).catch(async (e) => {
      // leave no half-made pod for the tests after this one
      kubectl(['delete', 'pod', 'hp', '--wait=true', '--timeout=60s', '--force', '--grace-period=0'], true);
      throw e;
    });
    try {
      await hostPortChecks(p);
    } finally {
      // leave no pod for the tests after this one, whatever failed
      kubectl(['delete', 'pod', 'hp', '--wait=true', '--timeout=120s'], true);
    }
  });

  async function hostPortChecks(p: any): Promise<void> {
    const cniBefore = workerCniBefore!;
    const portsBefore = bridgePortsBefore;
    const ip = p.status.podIP as string;
    const f1 = others.find((n) => n.name === 'f1')!;
    const got = await until('hostPort 18080 from node f1', () => {
      const r = run('nsenter', [`--net=/run/netns/${f1.ns}`, '--', 'curl', '-s', '-m', '2', 'http://172.30.99.11:18080/'], { allowFail: true });
      return r.code === 0 && r.stdout;
    }, 30_000);
    expect(got).toContain('flax-e2e-ok');
    // from a pod on another node too (through the overlay to the node's IP)
    const fromPod = await until('hostPort 18080 from f1\'s pod', () => {
      // (curl, as from the node: Debian's busybox wget segfaults on this machine)
      const r = run('nsenter', [`--net=/run/netns/${net!.prefix}-f1-p1`, '--', 'curl', '-s', '-m', '3', 'http://172.30.99.11:18080/'], { allowFail: true });
      return r.code === 0 && r.stdout;
    }, 20_000).catch((e) => {
      const d = (ns: string, c: string, a: string[]) => `${ns}$ ${c} ${a.join(' ')}\n${run('nsenter', [`--net=/run/netns/${ns}`, '--', c, ...a], { allowFail: true }).stdout}`;
      throw new Error([(e as Error).message.split('\n')[0], d(`${net!.prefix}-f1-p1`, 'ping', ['-c', '1', '-W', '2', '172.30.99.11']),
        d(f1.ns, 'nft', ['list', 'ruleset']), d(f1.ns, 'sysctl', ['net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.flannel/1.rp_filter']),
        d(worker!.ns, 'sysctl', ['net.ipv4.conf.all.rp_filter']), d(f1.ns, 'ip', ['route']), workerFw()].join('\n'));
    });
    expect(fromPod).toContain('flax-e2e-ok');
    const sandbox = Object.entries(workerCni().res).find(([k]) => k === ip)?.[1];
    expect(sandbox, `reservation of ${ip}`).toBeTruthy();
    expect(workerFw()).toContain('18080');
    kubectl(['delete', 'pod', 'hp', '--wait=true', '--timeout=120s']);
    const after = await until('hp\'s CNI state to be gone', () => {
      const c = workerCni();
      return !c.res[ip] && !c.results.some((f) => f.includes(sandbox!)) && !c.flannel.includes(sandbox!) ? c : null;
    }, 60_000);
    expect(after.res).toEqual(cniBefore.res);
    expect(after.results.sort()).toEqual(cniBefore.results.sort());
    expect(after.flannel.sort()).toEqual(cniBefore.flannel.sort());
    expect(bridgePorts().length).toBe(portsBefore);
    const fw = workerFw();
    expect(fw).not.toContain('18080');
    expect(fw.split('\n').filter((l) => new RegExp(`(^|[^0-9.])${ip.replace(/\./g, '\\.')}([^0-9]|$)`).test(l))).toEqual([]);
  }

  it('kill -9 of kubelet, containerd and every pod process, then restart: the pods come back, nothing stale is left and nothing live was touched', async () => {
    expect(podIps.bb1).toBeTruthy();
    const w = worker!;
    const { crashDaemon } = await import('./lib/proc');
    const { podPids } = await import('./lib/worker');
    const cid = (n: string) => json(['get', 'pod', n]).status.containerStatuses?.[0]?.containerID as string | undefined;
    const before = Object.fromEntries(['bb1', 'bb2'].map((n) => [n, cid(n)]));
    await crashDaemon(w.kubelet!);
    await crashDaemon(w.containerd!);
    for (const pid of podPids()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await sleep(1000);
    await w.startContainerd();
    await w.startKubelet();
    // the pods' API status reads Running and Ready (the old IP) until kubelet has made new sandboxes: wait for new containers
    for (const n of ['bb1', 'bb2']) {
      await until(`${n} running again in a new container`, () => {
        const x = json(['get', 'pod', n]);
        const c = x.status.containerStatuses?.[0];
        return c?.containerID && c.containerID !== before[n] && c.ready && x.status.podIP ? x : null;
      }, 300_000);
    }
    await until('the flax DaemonSet pod Ready again', () => {
      const l = json(['get', 'pods', '-n', 'kube-flax', '-l', 'app=flax']);
      return l.items.some((x: any) => x.spec.nodeName === 'w1' && x.status?.conditions?.find((c: any) => c.type === 'Ready' && c.status === 'True'));
    }, 240_000);
    const live = ['bb1', 'bb2'].map((n) => json(['get', 'pod', n]).status.podIP as string);
    podIps.bb1 = live[0];
    podIps.bb2 = live[1];
    // nothing stale: exactly one reservation, one result cache file and one flannel record per live pod
    const c = await until('the CNI state of the dead sandboxes to be swept', () => {
      const s = workerCni();
      return Object.keys(s.res).length === live.length && s.results.length === live.length && s.flannel.length === live.length ? s : null;
    }, 120_000).catch((e) => { throw new Error(`${(e as Error).message}\n${JSON.stringify(workerCni())}`); });
    expect(Object.keys(c.res).sort()).toEqual([...live].sort());
    expect(bridgePorts().length).toBe(live.length);
    // nothing live touched: the pods reach each other and the other nodes
    for (const ip of [live[1], podIps.f1, podIps.f2]) {
      const r = await until(`bb1 → ${ip}`, () => kubectl(['exec', 'bb1', '--', 'ping', '-c', '1', '-W', '1', ip], true).code === 0 || null, 30_000);
      expect(r).toBe(true);
    }
  });

  it('a DaemonSet rolling update to a new image tag: the pods keep pinging throughout (no gap over a few seconds)', async () => {
    expect(podIps.bb1).toBeTruthy();
    const b = imageBuilder(path.join(base, 'images'));
    const NEW = `localhost/flax:${pkg.version}-rollout`;
    b.buildah(['tag', FLAX_IMAGE, NEW]);
    worker!.ctr(['images', 'import', b.save(NEW, path.join(base, 'images', 'flax-rollout.tar'))]);
    const target = podIps.f1;
    const { spawn } = await import('node:child_process');
    // a probe loop in bb1: one ping per 0.2 s, each outcome echoed (a write each: no stdio buffering) with the
    // pod's /proc/uptime; the gap is measured on the pod's own clock between consecutive replies
    const loop = `while :; do if ping -c 1 -W 1 ${target} >/dev/null 2>&1; then r=ok; else r=fail; fi; echo "$r $(cut -d' ' -f1 /proc/uptime)"; sleep 0.2; done`;
    const pinger = spawn('nsenter', [`--net=/run/netns/${cp!.ns}`, '--', peerBin('kubectl'), '--kubeconfig', cp!.admin, 'exec', 'bb1', '--', 'sh', '-c', loop], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stamps: number[] = [];
    let fails = 0;
    let buf = '';
    let perr = '';
    pinger.stderr!.setEncoding('utf8').on('data', (d: string) => { perr += d; });
    pinger.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) { const m = /^(ok|fail) ([\d.]+)/.exec(l); if (m) { if (m[1] === 'ok') stamps.push(Number(m[2])); else fails++; } }
    });
    try {
      await until('the pinger to start', () => stamps.length > 3 || null, 30_000, 200).catch((e) => { throw new Error(`${(e as Error).message}\nprobe stderr: ${perr}\nprobe exit: ${pinger.exitCode}`); });
      const oldPod = json(['get', 'pods', '-n', 'kube-flax', '-l', 'app=flax']).items.find((x: any) => x.spec.nodeName === 'w1').metadata.name;
      kubectl(['-n', 'kube-flax', 'set', 'image', 'daemonset/kube-flax-ds', `kube-flax=${NEW}`, `install-cni=${NEW}`]);
      kubectl(['-n', 'kube-flax', 'rollout', 'status', 'daemonset/kube-flax-ds', '--timeout=300s'], false);
      const now = json(['get', 'pods', '-n', 'kube-flax', '-l', 'app=flax']).items.find((x: any) => x.spec.nodeName === 'w1');
      expect(now.metadata.name).not.toBe(oldPod);
      expect(now.spec.containers[0].image).toBe(NEW);
      const n0 = stamps.length;
      await until('pings after the rollout', () => stamps.length > n0 + 10 || null, 30_000, 200);
    } finally {
      pinger.kill('SIGINT');
    }
    let gap = 0;
    for (let i = 1; i < stamps.length; i++) gap = Math.max(gap, Math.round((stamps[i] - stamps[i - 1]) * 1000));
    console.log(`rolling update: ${stamps.length} replies, ${fails} failed probes, longest gap between replies ${gap} ms`);
    expect(gap, `longest gap between ping replies during the rollout: ${gap} ms (${stamps.length} replies, ${fails} failed)`).toBeLessThan(5000);
  });
});
