/**
 * The control plane, in its own netns on the underlay (CP_IP): etcd
 * (127.0.0.1, plain), kube-apiserver (TLS on CP_IP:443, RBAC + Node
 * authorization, NodeRestriction, a ServiceAccount signing key),
 * kube-controller-manager (--allocate-node-cidrs over 10.244.0.0/16, the
 * DaemonSet and ServiceAccount-token controllers with per-controller
 * credentials) and kube-scheduler. kubectl runs with the admin kubeconfig.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { run, sleep, type RunOut } from '../../lib/e2e';
import { CP_IP, nsPath } from './net';
import { peerBin } from './peers';
import { issue, kubeconfig, makeCa, type Pki } from './pki';
import { alive, type Daemon, logTail, startDaemon, stopDaemon } from './proc';

export const CLUSTER_CIDR = '10.244.0.0/16';
export const SERVICE_CIDR = '10.96.0.0/12';
export const KUBERNETES_SVC = '10.96.0.1';
export const API = `https://${CP_IP}:443`;

export interface ControlPlane {
  dir: string; pki: Pki; ns: string; admin: string; daemons: Daemon[];
  kubectl: (args: string[], o?: { allowFail?: boolean; input?: string; timeoutMs?: number }) => RunOut;
  /** a kubeconfig for a node's client cert (kubelet: system:node:<name>) */
  nodeKubeconfig: (name: string) => string;
}

export async function startControlPlane(dir: string, ns: string): Promise<ControlPlane> {
  mkdirSync(path.join(dir, 'pki'), { recursive: true });
  const logs = path.join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const pki = makeCa(path.join(dir, 'pki'));
  const apiCert = issue(pki, 'apiserver', '/CN=kube-apiserver', 'server', [
    `IP:${CP_IP}`, `IP:${KUBERNETES_SVC}`, 'IP:127.0.0.1', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local',
  ]);
  const kubeletClient = issue(pki, 'apiserver-kubelet-client', '/CN=kube-apiserver-kubelet-client/O=system:masters', 'client');
  const admin = kubeconfig(path.join(dir, 'admin.kubeconfig'), API, pki.ca, issue(pki, 'admin', '/CN=flax-test-admin/O=system:masters', 'client'), 'admin');
  const cmKc = kubeconfig(path.join(dir, 'cm.kubeconfig'), API, pki.ca, issue(pki, 'cm', '/CN=system:kube-controller-manager', 'client'));
  const schedKc = kubeconfig(path.join(dir, 'sched.kubeconfig'), API, pki.ca, issue(pki, 'sched', '/CN=system:kube-scheduler', 'client'));
  const inCp = (bin: string, args: string[]) => ['nsenter', `--net=${nsPath(ns)}`, '--', bin, ...args];
  const daemons: Daemon[] = [];
  const cp: ControlPlane = {
    dir, pki, ns, admin, daemons,
    kubectl: (args, o = {}) => run('nsenter', [`--net=${nsPath(ns)}`, '--', peerBin('kubectl'), '--kubeconfig', admin, ...args],
      { allowFail: o.allowFail, input: o.input, timeoutMs: o.timeoutMs ?? 60_000 }),
    nodeKubeconfig: (name) => kubeconfig(path.join(dir, `${name}.kubeconfig`), API, pki.ca,
      issue(pki, `node-${name}`, `/CN=system:node:${name}/O=system:nodes`, 'client'), `system:node:${name}`),
  };
  try {
    const etcdData = path.join(dir, 'etcd');
    daemons.push(startDaemon('etcd', inCp(peerBin('etcd'), [
      '--name', 'cp', '--data-dir', etcdData,
      '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379',
      '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
      '--initial-cluster', 'cp=http://127.0.0.1:2380', '--logger', 'zap',
    ]), logs, { ...process.env, ETCD_UNSUPPORTED_ARCH: '' }));
    await waitHttp(ns, 'http://127.0.0.1:2379/health', 'etcd', daemons[0], 30_000);

    daemons.push(startDaemon('kube-apiserver', inCp(peerBin('kube-apiserver'), [
      '--etcd-servers', 'http://127.0.0.1:2379',
      '--bind-address', '0.0.0.0', '--secure-port', '443', '--advertise-address', CP_IP,
      '--tls-cert-file', apiCert.cert, '--tls-private-key-file', apiCert.key,
      '--client-ca-file', pki.ca,
      '--service-account-key-file', pki.saPub, '--service-account-signing-key-file', pki.saKey,
      '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range', SERVICE_CIDR,
      '--authorization-mode', 'Node,RBAC', '--enable-admission-plugins', 'NodeRestriction',
      '--allow-privileged=true',
      '--kubelet-client-certificate', kubeletClient.cert, '--kubelet-client-key', kubeletClient.key,
      '--kubelet-preferred-address-types', 'InternalIP',
      '--endpoint-reconciler-type', 'lease',
      '--v', '1',
    ]), logs));
    const api = daemons[1];
    for (let t = 0; ; t++) {
      if (!alive(api)) throw new Error(`kube-apiserver exited:\n${logTail(api)}`);
      if (cp.kubectl(['get', '--raw', '/readyz'], { allowFail: true, timeoutMs: 10_000 }).stdout.trim() === 'ok') break;
      if (t > 240) throw new Error(`kube-apiserver not ready after 120 s:\n${logTail(api)}`);
      await sleep(500);
    }

    daemons.push(startDaemon('kube-controller-manager', inCp(peerBin('kube-controller-manager'), [
      '--kubeconfig', cmKc, '--authentication-kubeconfig', cmKc, '--authorization-kubeconfig', cmKc,
      '--bind-address', '127.0.0.1', '--secure-port', '10257', '--leader-elect=false',
      '--allocate-node-cidrs', '--cluster-cidr', CLUSTER_CIDR, '--node-cidr-mask-size', '24',
      '--service-cluster-ip-range', SERVICE_CIDR,
      '--service-account-private-key-file', pki.saKey, '--root-ca-file', pki.ca,
      '--use-service-account-credentials=true',
      '--controllers', '*',
      '--v', '1',
    ]), logs));
    daemons.push(startDaemon('kube-scheduler', inCp(peerBin('kube-scheduler'), [
      '--kubeconfig', schedKc, '--authentication-kubeconfig', schedKc, '--authorization-kubeconfig', schedKc,
      '--bind-address', '127.0.0.1', '--secure-port', '10259', '--leader-elect=false', '--v', '1',
    ]), logs));
    // the default ServiceAccount appears once the controller-manager's controllers run
    for (let t = 0; ; t++) {
      for (const d of daemons) if (!alive(d)) throw new Error(`${d.name} exited:\n${logTail(d)}`);
      if (cp.kubectl(['get', 'serviceaccount', 'default', '-o', 'name'], { allowFail: true }).code === 0) break;
      if (t > 120) throw new Error(`no default ServiceAccount after 60 s:\n${logTail(daemons[2])}`);
      await sleep(500);
    }
    return cp;
  } catch (e) {
    await stopControlPlane(cp);
    throw e;
  }
}

export async function stopControlPlane(cp: ControlPlane | undefined): Promise<void> {
  if (!cp) return;
  for (const d of [...cp.daemons].reverse()) await stopDaemon(d);
}

async function waitHttp(ns: string, url: string, what: string, d: Daemon, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(d)) throw new Error(`${what} exited:\n${logTail(d)}`);
    const r = run('nsenter', [`--net=${nsPath(ns)}`, '--', 'curl', '-sf', '-m', '2', url], { allowFail: true, timeoutMs: 5000 });
    if (r.code === 0) return;
    if (Date.now() > end) throw new Error(`${what} not healthy after ${timeoutMs} ms:\n${logTail(d)}`);
    await sleep(300);
  }
}
