/**
 * A netns node running flaxd --kube-subnet-mgr outside Kubernetes' kubelet
 * (as a bare-metal flanneld would be run): a Node object registered through
 * the API (no kubernetes.io/os label, so flax's DaemonSet does not target
 * it), its podCIDR from the controller-manager, flaxd with a client cert
 * whose group is bound to flax.yml's ClusterRole (no more rights than the
 * DaemonSet's ServiceAccount). Its pods are netns made by the test, attached
 * with dist/bin's flannel plugin (the conflist of flax.yml, with this node's
 * scratch dirs). The sweeper is off and the CNI socket too: nothing of the
 * machine's /var/lib/cni or /run/flax is read or written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DIST_BIN, run } from '../../lib/e2e';
import { type ControlPlane } from './controlplane';
import { nsPath } from './net';
import { issue, kubeconfig } from './pki';
import { API } from './controlplane';
import { type Daemon, startDaemon } from './proc';

export const NODE_GROUP = 'flax-test-nodes';

export interface FlaxNode { name: string; ns: string; ip: string; dir: string; subnetFile: string; kubeconfig: string; agent?: Daemon; pods: string[] }

export function registerNode(cp: ControlPlane, name: string, ip: string): void {
  cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'flax-test-node': 'netns' } },
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  }) });
}

/** the ClusterRoleBinding of flax.yml's ClusterRole to the group of the netns nodes' certs */
export function bindNodeGroup(cp: ControlPlane): void {
  cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'flax-test-nodes' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'flax' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: NODE_GROUP }],
  }) });
}

export function flaxNode(cp: ControlPlane, dir: string, name: string, ns: string, ip: string, netConf: string): FlaxNode {
  mkdirSync(path.join(dir, 'run/flannel'), { recursive: true });
  writeFileSync(path.join(dir, 'net-conf.json'), netConf);
  const kc = kubeconfig(path.join(dir, 'kubeconfig'), API, cp.pki.ca, issue(cp.pki, `agent-${name}`, `/CN=flax-agent-${name}/O=${NODE_GROUP}`, 'client'), `flax-agent-${name}`);
  return { name, ns, ip, dir, subnetFile: path.join(dir, 'run/flannel/subnet.env'), kubeconfig: kc, pods: [] };
}

export function startFlaxd(n: FlaxNode, logs: string, extra: string[] = []): Daemon {
  n.agent = startDaemon(`flaxd-${n.name}`, ['nsenter', `--net=${nsPath(n.ns)}`, '--', path.join(DIST_BIN, 'flaxd'),
    '--kube-subnet-mgr', '--kubeconfig-file', n.kubeconfig, '--node-name', n.name, '--iface', 'eth0', '--ip-masq',
    '--subnet-file', n.subnetFile, '--net-config-path', path.join(n.dir, 'net-conf.json'),
    '--cni-socket', '', '--gc-interval', '0', '--healthz-port', '0', ...extra], logs);
  return n.agent;
}

/** A pod netns on the node, attached by dist/bin/flannel (CNI ADD) with flax.yml's conflist entry; returns its IPv4. */
export function addPod(n: FlaxNode, conflist: any, pod: string, plugin = path.join(DIST_BIN, 'flannel'), cniPath = DIST_BIN, extraConf: Record<string, unknown> = {}): string {
  run('ip', ['netns', 'add', pod]);
  n.pods.push(pod);
  run('ip', ['-n', pod, 'link', 'set', 'lo', 'up']);
  const conf = {
    ...conflist.plugins[0], cniVersion: conflist.cniVersion, name: conflist.name,
    subnetFile: n.subnetFile, dataDir: path.join(n.dir, 'var/lib/cni/flannel'), ipam: { dataDir: path.join(n.dir, 'var/lib/cni/networks') },
    ...extraConf,
  };
  const r = run('nsenter', [`--net=${nsPath(n.ns)}`, '--', plugin], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: pod, CNI_NETNS: nsPath(pod), CNI_IFNAME: 'eth0', CNI_PATH: cniPath, FLAX_CNI_SOCKET: '' },
    input: JSON.stringify(conf), allowFail: true,
  });
  if (r.code !== 0) throw new Error(`flannel ADD on ${n.name}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout).ips[0].address.split('/')[0];
}

export function destroyPods(n: FlaxNode): void {
  for (const p of n.pods) run('ip', ['netns', 'del', p], { allowFail: true });
  n.pods = [];
}

/** real flanneld --kube-subnet-mgr on the node (NODE_NAME env, as outside a pod), same flags as startFlaxd's */
export function startFlanneld(n: FlaxNode, logs: string, bin: string): Daemon {
  n.agent = startDaemon(`flanneld-${n.name}`, ['nsenter', `--net=${nsPath(n.ns)}`, '--', bin,
    '--kube-subnet-mgr', '--kubeconfig-file', n.kubeconfig, '--iface', 'eth0', '--ip-masq',
    '--subnet-file', n.subnetFile, '--net-config-path', path.join(n.dir, 'net-conf.json')], logs, { ...process.env, NODE_NAME: n.name });
  return n.agent;
}
