/**
 * conf/flax.yml, conf/flax-etcd.yml and conf/flaxd.service: every object
 * validates against the Kubernetes API schemas (kubernetes-models), the
 * fields kubelet and the runtime rely on are there, the ClusterRole grants
 * exactly what the kube store calls, and the ConfigMap's conflist is the
 * one `flax install --network flannel` writes. The unit file passes
 * systemd-analyze verify.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { FLANNEL_CONFLIST } from '../../plugins/cli/install/conflists';
import pkg from '../../package.json';

const ROOT = path.resolve(__dirname, '../..');
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
};
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

function load(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path.join(ROOT, 'conf', file), 'utf8'));
  for (const d of docs) if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
  return docs.map((d) => d.toJS() as Obj).filter(Boolean);
}
const one = (objs: Obj[], kind: string) => {
  const o = objs.filter((x) => x.kind === kind);
  expect(o, kind).toHaveLength(1);
  return o[0];
};
/** A flag's value in a command line (`--name=value`). */
const flag = (cmd: string[], name: string) => cmd.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

const REQUIRED_HOSTPATHS = ['/run/flannel', '/run/flax', '/opt/cni/bin', '/etc/cni/net.d', '/var/lib/cni', '/run/xtables.lock', '/var/run/netns', '/run/netns'];

describe('the validator is live', () => {
  it('rejects a broken DaemonSet and a ClusterRole rule without verbs', () => {
    expect(() => new DaemonSet({ metadata: { name: 'x' }, spec: { template: { spec: { containers: 'x' } } } } as any).validate()).toThrow();
    expect(() => new ClusterRole({ metadata: { name: 'x' }, rules: [{ apiGroups: [''], resources: ['nodes'] }] } as any).validate()).toThrow(/verbs/);
  });
});

for (const file of ['flax.yml', 'flax-etcd.yml']) {
  const kube = file === 'flax.yml';
  describe(`conf/${file}`, () => {
    const objs = load(file);

    it('every object validates against the Kubernetes API schemas', () => {
      expect(objs.length).toBeGreaterThanOrEqual(kube ? 6 : 4);
      for (const o of objs) {
        const Model = MODELS[`${o.apiVersion}/${o.kind}`];
        expect(Model, `${o.apiVersion} ${o.kind}`).toBeDefined();
        expect(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
      }
    });

    it('a privileged namespace holds everything namespaced', () => {
      const ns = one(objs, 'Namespace');
      expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
      for (const o of objs) if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) expect(o.metadata.namespace, o.kind).toBe(ns.metadata.name);
    });

    it('the DaemonSet: hostNetwork, node-critical, tolerates everything, install init container, flaxd, capabilities, probes, requests', () => {
      const ds = one(objs, 'DaemonSet');
      const spec = ds.spec.template.spec;
      for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) expect(ds.spec.template.metadata.labels[k]).toBe(v);
      expect(spec.hostNetwork).toBe(true);
      expect(spec.priorityClassName).toBe('system-node-critical');
      expect(spec.tolerations).toContainEqual({ operator: 'Exists' });
      expect(spec.serviceAccountName).toBe(one(objs, 'ServiceAccount').metadata.name);
      const image = `localhost/flax:${pkg.version}`;

      // hostPaths: each required one, DirectoryOrCreate (a file for the xtables lock)
      const hostPaths = Object.fromEntries(spec.volumes.filter((v: any) => v.hostPath).map((v: any) => [v.hostPath.path, v]));
      for (const p of REQUIRED_HOSTPATHS) {
        expect(hostPaths[p], p).toBeDefined();
        expect(hostPaths[p].hostPath.type).toBe(p === '/run/xtables.lock' ? 'FileOrCreate' : 'DirectoryOrCreate');
      }
      const volumeNames = new Set(spec.volumes.map((v: any) => v.name));
      const mountsOf = (c: any) => Object.fromEntries(c.volumeMounts.map((m: any) => [m.mountPath, m.name]));
      for (const c of [...spec.initContainers, ...spec.containers]) {
        expect(c.image).toBe(image);
        for (const m of c.volumeMounts) expect(volumeNames.has(m.name), `${c.name}: ${m.name}`).toBe(true);
      }

      // init: flax install into the mounted host dirs, the ConfigMap's conflist under kube-flannel's name
      expect(spec.initContainers).toHaveLength(1);
      const init = spec.initContainers[0];
      expect(init.command.slice(0, 2)).toEqual(['/opt/flax/bin/flax', 'install']);
      const initMounts = mountsOf(init);
      const binDir = flag(init.command, 'cni-bin-dir')!;
      const confDir = flag(init.command, 'cni-conf-dir')!;
      expect(hostPaths['/opt/cni/bin'].name).toBe(initMounts[binDir]);
      expect(hostPaths['/etc/cni/net.d'].name).toBe(initMounts[confDir]);
      const conflist = flag(init.command, 'conflist')!;
      const cfgVolume = spec.volumes.find((v: any) => v.configMap);
      expect(initMounts[path.dirname(conflist) + '/']).toBe(cfgVolume.name);
      expect(flag(init.command, 'conf-name')).toBe('10-flannel.conflist');
      const cm = one(objs, 'ConfigMap');
      expect(cfgVolume.configMap.name).toBe(cm.metadata.name);
      expect(JSON.parse(cm.data[path.basename(conflist)])).toEqual(FLANNEL_CONFLIST);

      // main: flaxd, masquerading, with its store
      expect(spec.containers).toHaveLength(1);
      const main = spec.containers[0];
      expect(main.command[0]).toBe('/opt/flax/bin/flaxd');
      expect(main.command).toContain('--ip-masq');
      if (kube) {
        expect(main.command).toContain('--kube-subnet-mgr');
        expect(main.env.find((e: any) => e.name === 'NODE_NAME').valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
        expect(main.env.find((e: any) => e.name === 'POD_NAME').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
        expect(main.env.find((e: any) => e.name === 'POD_NAMESPACE').valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
        // net-conf.json where flaxd (as flanneld) reads it by default
        expect(mountsOf(main)['/etc/kube-flannel/']).toBe(cfgVolume.name);
        const net = JSON.parse(cm.data['net-conf.json']);
        expect(net.Network).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
        expect(net.Backend.Type).toBe('vxlan');
      } else {
        expect(main.command).not.toContain('--kube-subnet-mgr');
        expect(flag(main.command, 'etcd-endpoints')).toBe('$(ETCD_ENDPOINTS)');
        expect(main.env.find((e: any) => e.name === 'ETCD_ENDPOINTS').valueFrom.configMapKeyRef).toEqual({ name: cm.metadata.name, key: 'etcd-endpoints' });
        expect(spec.automountServiceAccountToken).toBe(false);
      }
      // SYS_ADMIN for the CNI server's setns into callers' namespaces
      expect(main.securityContext.capabilities.add.sort()).toEqual(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN']);
      expect(main.securityContext.privileged).toBe(false);
      const mainMounts = mountsOf(main);
      for (const p of ['/run/flannel', '/run/flax', '/var/lib/cni', '/run/xtables.lock', '/opt/cni/bin']) expect(mainMounts[p], p).toBe(hostPaths[p].name);
      // the server sees the plugin directory the clients name (CNI_PATH), read-only
      expect(main.volumeMounts.find((m: any) => m.mountPath === '/opt/cni/bin').readOnly).toBe(true);
      // the sweeper sees the node's networks (read-only) and its netns pins (containerd/CRI-O: /var/run/netns,
      // podman: /run/netns), read-only and with the pins the runtime makes later (HostToContainer)
      const mount = (p: string) => main.volumeMounts.find((m: any) => m.mountPath === p);
      expect(mainMounts['/etc/cni/net.d']).toBe(hostPaths['/etc/cni/net.d'].name);
      expect(mount('/etc/cni/net.d').readOnly).toBe(true);
      for (const p of ['/var/run/netns', '/run/netns']) {
        expect(mainMounts[p], p).toBe(hostPaths[p].name);
        expect(mount(p), p).toMatchObject({ readOnly: true, mountPropagation: 'HostToContainer' });
      }
      // probes on the port flaxd serves healthz on
      const port = Number(flag(main.command, 'healthz-port'));
      expect(port).toBeGreaterThan(0);
      expect(main.livenessProbe.httpGet).toEqual({ host: flag(main.command, 'healthz-ip'), path: '/healthz', port });
      expect(main.readinessProbe.httpGet).toEqual({ host: flag(main.command, 'healthz-ip'), path: '/readyz', port });
      expect(main.resources.requests.cpu).toBeDefined();
      expect(main.resources.requests.memory).toBeDefined();
    });

    if (kube) {
      it('the ClusterRole grants exactly what the kube store calls, bound to the ServiceAccount', () => {
        const role = one(objs, 'ClusterRole');
        const grants = role.rules.flatMap((r: any) => r.apiGroups.flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${g || 'core'}/${res}:${v}`)))).sort();
        expect(grants).toEqual(['core/nodes/status:patch', 'core/nodes:get', 'core/nodes:list', 'core/nodes:watch', 'core/pods:get']);
        expect(role.rules.every((r: any) => !r.resourceNames && !r.nonResourceURLs)).toBe(true);
        const b = one(objs, 'ClusterRoleBinding');
        const sa = one(objs, 'ServiceAccount');
        expect(b.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
        expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
      });
    } else {
      it('no RBAC: the etcd store does not call the Kubernetes API', () => {
        expect(objs.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toBe(false);
      });
    }
  });
}

describe('conf/flaxd.service', () => {
  it('passes systemd-analyze verify (flaxd path pointed at an executable that exists here)', () => {
    const unit = readFileSync(path.join(ROOT, 'conf/flaxd.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/opt\/cni\/bin\/flaxd --ip-masq /m);
    const probe = spawnSync('systemd-analyze', ['--version']);
    if (probe.error) return void console.warn('systemd-analyze not installed: unit syntax not verified');
    const d = mkdtempSync(path.join(tmpdir(), 'flax-unit-'));
    try {
      writeFileSync(path.join(d, 'flaxd.service'), unit.replace('/opt/cni/bin/flaxd', '/bin/true'));
      const r = spawnSync('systemd-analyze', ['verify', path.join(d, 'flaxd.service')], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.trim()).toBe('');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
