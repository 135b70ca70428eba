/**
 * The image (scripts/build-image.sh) run as conf/flax.yml's DaemonSet pod
 * would run on two "nodes": each node is a throwaway network namespace with
 * its own scratch dirs standing for the hostPaths; podman (scratch storage,
 * `--network ns:<node netns>`, the manifest's capabilities) runs the init
 * container's exact command from conf/flax.yml with the hostPaths and the
 * ConfigMap bind-mounted where the manifest mounts them. Then, on each node,
 * the binaries the init step installed (symlinks into the node's
 * /opt/cni/bin) run a bridge ADD for a pod and the pod reaches its gateway;
 * the image's nft/iptables run against the node netns.
 *
 * The main container's flaxd is run (--version), then as the DaemonSet's
 * main container on both nodes (its mounts and capabilities; the file lease
 * store shared between them instead of the Kubernetes API, which cannot run
 * here) joined by an underlay, and a pod on each node reaches the other over
 * the VXLAN overlay. Nothing global changes: podman storage is a scratch
 * dir, `--network ns:` makes podman create no network, and the nodes are
 * throwaway netns.
 */
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireE2eLock, missingPrereq, podmanStorageArgs, removeScratch, run, scratchDir, writePodmanConf } from '../lib/e2e';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';
import { ensurePackage, PKG, ROOT } from '../lib/pkg';
import pkg from '../../package.json';

const skipReason = missingPrereq(['podman', 'runc', 'conmon', 'flock', 'buildah']);
if (skipReason) console.warn(`image e2e skipped: ${skipReason}`);
const IMAGE = `localhost/flax:${pkg.version}`;
const ARCHIVE = path.join(ROOT, 'dist/image/flax.oci.tar');

/** The DaemonSet of conf/flax.yml and its ConfigMap. */
function manifest() {
  const objs = parseAllDocuments(readFileSync(path.join(ROOT, 'conf/flax.yml'), 'utf8')).map((d) => d.toJS()).filter(Boolean);
  const ds = objs.find((o: any) => o.kind === 'DaemonSet');
  const cm = objs.find((o: any) => o.kind === 'ConfigMap');
  return { spec: ds.spec.template.spec, cm };
}

describe.skipIf(!!skipReason)('the image as conf/flax.yml\'s DaemonSet pod', () => {
  let lock: { release: () => void } | undefined;
  let base = '';
  let conf = '';
  let storage: string[] = [];
  let nodes: string[] = [];
  const podman = (args: string[], allowFail = false) => run('podman', [...storage, ...args], { env: { ...process.env, CONTAINERS_CONF: conf }, allowFail, timeoutMs: 120_000 });
  const hostDir = (node: number, hostPath: string) => path.join(base, `node${node}`, hostPath);
  const hasFlaxd = () => (JSON.parse(readFileSync(path.join(PKG, 'PACKAGE.json'), 'utf8')) as { executables: string[] }).executables.includes('flaxd');

  /** podman run args for a container of the pod: its volumeMounts as binds of the node's dirs, the pod's network and capabilities. */
  function podArgs(node: number, c: any, spec: any, cmDir: string): string[] {
    const args = ['run', '--rm', '--network', `ns:${nodes[node]}`, '--cap-drop', 'all'];
    for (const cap of c.securityContext?.capabilities?.add ?? []) args.push('--cap-add', cap);
    for (const m of c.volumeMounts) {
      const v = spec.volumes.find((x: any) => x.name === m.name);
      let src: string;
      if (v.hostPath) {
        src = hostDir(node, v.hostPath.path);
        if (v.hostPath.type === 'FileOrCreate') { mkdirSync(path.dirname(src), { recursive: true }); if (!existsSync(src)) writeFileSync(src, ''); }
        else mkdirSync(src, { recursive: true });
      } else src = cmDir;
      args.push('-v', `${src}:${m.mountPath.replace(/\/$/, '')}${v.configMap || m.readOnly ? ':ro' : ''}`);
    }
    return [...args, c.image];
  }

  beforeAll(async () => {
    lock = await acquireE2eLock();
    base = scratchDir('image');
    await ensurePackage();
    // the image: rebuilt only when its inputs changed (build-image.sh keeps a hash beside the archive)
    const b = run('bash', [path.join(ROOT, 'scripts/build-image.sh'), '--oci-archive', ARCHIVE], {
      env: { ...process.env, BUILDAH_ARGS: podmanStorageArgs(path.join(base, 'buildah')).join(' ') }, timeoutMs: 300_000,
    });
    expect(b.code, b.stderr).toBe(0);
    storage = podmanStorageArgs(base);
    conf = writePodmanConf(base, path.join(base, 'plugins-none'), path.join(base, 'net.d'));
    podman(['load', '-q', '-i', ARCHIVE]);
    nodes = createTestNetns(2);
    for (const n of nodes) execIn(n, 'ip', ['link', 'set', 'lo', 'up']);
  }, 300_000);

  afterAll(() => {
    try {
      if (conf) { podman(['rm', '-af', '-t', '0'], true); podman(['rmi', '-af'], true); }
      destroyTestNetns(nodes);
      removeScratch(base);
    } finally {
      lock?.release();
    }
  }, 120_000);

  it('holds the self-contained binary, its addons and helpers, and working nft/iptables (run against the node netns)', () => {
    const r = podman(['run', '--rm', '--network', `ns:${nodes[0]}`, '--cap-drop', 'all', '--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW', IMAGE, 'sh', '-c',
      'flax --version && ls /opt/flax/bin && nft --version && iptables --version && nft list ruleset && iptables-save >/dev/null && echo OK']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^flax \d+\.\d+\.\d+/);
    for (const f of ['flax', 'flax.node', 'netlink.node', 'pause', 'nsexec', 'bridge', 'host-local', 'loopback', 'flannel', 'portmap']) expect(r.stdout).toContain(f);
    expect(r.stdout).toMatch(/nftables v\d/);
    expect(r.stdout).toMatch(/iptables v[\d.]+ \(nf_tables\)/);
    expect(r.stdout.trim().endsWith('OK')).toBe(true);
  });

  it('the init container (conf/flax.yml\'s command) installs the binaries and the conflist into each node\'s hostPaths; re-running it is idempotent', () => {
    const { spec, cm } = manifest();
    const cmDir = path.join(base, 'configmap');
    mkdirSync(cmDir, { recursive: true });
    for (const [k, v] of Object.entries(cm.data as Record<string, string>)) writeFileSync(path.join(cmDir, k), v);
    const init = spec.initContainers[0];
    expect(init.image).toBe(IMAGE);
    for (let i = 0; i < 2; i++) {
      // a reference plugin already on the node: the manifest's --force replaces it and keeps it
      mkdirSync(hostDir(i, '/opt/cni/bin'), { recursive: true });
      writeFileSync(path.join(hostDir(i, '/opt/cni/bin'), 'portmap'), '#!/bin/sh\necho reference portmap\n', { mode: 0o755 });
      const r = podman([...podArgs(i, init, spec, cmDir), ...init.command]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('replaced /opt/cni/bin/portmap');
      const bin = hostDir(i, '/opt/cni/bin');
      // the plugins are the CNI server's static client (it runs flax as the plugin when no flaxd serves), flax the multi-call binary
      for (const e of ['bridge', 'host-local', 'loopback', 'flannel', 'portmap']) expect(readlinkSync(path.join(bin, e))).toMatch(/^\.flax\/[0-9a-f]{16}\/cniclient$/);
      expect(readlinkSync(path.join(bin, 'flax'))).toMatch(/^\.flax\/[0-9a-f]{16}\/flax$/);
      expect(readFileSync(path.join(bin, '.portmap.flax-replaced'), 'utf8')).toContain('reference portmap');
      expect(JSON.parse(readFileSync(path.join(hostDir(i, '/etc/cni/net.d'), '10-flannel.conflist'), 'utf8'))).toEqual(JSON.parse(cm.data['cni-conf.json']));
      const again = podman([...podArgs(i, init, spec, cmDir), ...init.command]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout.trim().split('\n').every((l) => l.includes(': unchanged '))).toBe(true);
    }
  }, 180_000);

  it('on each node, the installed binaries (out of the image, run on the node) attach a pod with bridge + host-local', () => {
    for (let i = 0; i < 2; i++) {
      const bin = hostDir(i, '/opt/cni/bin');
      expect(existsSync(path.join(bin, 'bridge')), 'the init step ran').toBe(true);
      const [pod] = createTestNetns(1);
      try {
        const netconf = { cniVersion: '1.0.0', name: `node${i}`, type: 'bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'host-local', subnet: `10.244.${i}.0/24`, dataDir: hostDir(i, '/var/lib/cni/networks') } };
        const r = run('nsenter', [`--net=${nodes[i]}`, '--', path.join(bin, 'bridge')], {
          env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: `pod${i}`, CNI_NETNS: pod, CNI_IFNAME: 'eth0', CNI_PATH: bin },
          input: JSON.stringify(netconf), allowFail: true,
        });
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(JSON.parse(r.stdout).ips[0].address).toBe(`10.244.${i}.2/24`);
        execIn(pod, 'ping', ['-c', '1', '-W', '2', `10.244.${i}.1`]);
      } finally {
        destroyTestNetns([pod]);
      }
    }
  });

  it.skipIf(!existsSync(path.join(PKG, 'PACKAGE.json')) || !hasFlaxd())('the main container\'s flaxd starts from the image (--version)', () => {
    const { spec } = manifest();
    const main = spec.containers[0];
    const r = podman(['run', '--rm', '--network', `ns:${nodes[0]}`, IMAGE, main.command[0], '--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^flaxd /);
  });

  it.skipIf(!existsSync(path.join(PKG, 'PACKAGE.json')) || !hasFlaxd())('pods on two nodes reach each other over the overlay of flaxd run from the image', async () => {
    const { spec, cm } = manifest();
    const main = spec.containers[0];
    const cmDir = path.join(base, 'configmap');
    // the underlay: a bridge in its own netns, each node's eth0 on it
    const [ul] = createTestNetns(1);
    const pods: string[] = [];
    const agents: string[] = [];
    try {
      execIn(ul, 'ip', ['link', 'add', 'ul0', 'type', 'bridge']);
      execIn(ul, 'ip', ['link', 'set', 'ul0', 'up']);
      nodes.forEach((n, i) => {
        execIn(n, 'ip', ['link', 'del', 'cni0'], { allowFail: true }); // the bridge-only test's cni0 (10.244.<i>.1)
        execIn(ul, 'ip', ['link', 'add', `n${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n]);
        execIn(ul, 'ip', ['link', 'set', `n${i}`, 'master', 'ul0', 'up']);
        execIn(n, 'ip', ['addr', 'add', `192.168.88.${11 + i}/24`, 'dev', 'eth0']);
        execIn(n, 'ip', ['link', 'set', 'eth0', 'up']);
      });
      // the main container as the DaemonSet runs it (mounts, capabilities), with the file
      // store shared by the two nodes instead of --kube-subnet-mgr (no API server here)
      const leases = path.join(base, 'leases');
      mkdirSync(leases, { recursive: true });
      for (let i = 0; i < 2; i++) {
        const args = podArgs(i, main, spec, cmDir);
        const image = args.pop()!;
        const r = podman([...args.slice(0, 1), '-d', ...args.slice(1), '-v', `${leases}:/var/lib/flax/leases`, image,
          main.command[0], '--iface', 'eth0', '--ip-masq', '--reconcile-interval', '2']);
        expect(r.code, r.stderr).toBe(0);
        agents.push(r.stdout.trim());
      }
      const envFile = (i: number) => path.join(hostDir(i, '/run/flannel'), 'subnet.env');
      for (let t = 0; t < 150 && ![0, 1].every((i) => existsSync(envFile(i))); t++) await new Promise((r) => setTimeout(r, 100));
      for (let i = 0; i < 2; i++) expect(existsSync(envFile(i)), podman(['logs', agents[i]], true).stderr).toBe(true);
      // a pod per node, through the installed binaries and the installed conflist (hostPaths rewritten to the node's scratch dirs)
      const addrs: string[] = [];
      for (let i = 0; i < 2; i++) {
        const list = JSON.parse(readFileSync(path.join(hostDir(i, '/etc/cni/net.d'), '10-flannel.conflist'), 'utf8'));
        Object.assign(list.plugins[0], { subnetFile: envFile(i), dataDir: hostDir(i, '/var/lib/cni/flannel'), ipam: { dataDir: hostDir(i, '/var/lib/cni/networks') } });
        const confDir = path.join(base, `node${i}-net.d`);
        mkdirSync(confDir, { recursive: true });
        writeFileSync(path.join(confDir, '10-flannel.conflist'), JSON.stringify(list));
        const [pod] = createTestNetns(1);
        pods.push(pod);
        const bin = hostDir(i, '/opt/cni/bin');
        const r = run('nsenter', [`--net=${nodes[i]}`, '--', path.join(bin, 'flax'), 'cni', 'add', list.name, pod, '--cache-dir', hostDir(i, '/var/lib/cni')], {
          env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NETCONFPATH: confDir, CNI_PATH: bin }, allowFail: true,
        });
        expect(r.code, r.stdout + r.stderr).toBe(0);
        addrs.push(JSON.parse(r.stdout).ips[0].address.split('/')[0]);
      }
      expect(cm.data['net-conf.json']).toContain('10.244.0.0/16');
      for (let t = 0; t < 100 && execIn(pods[0], 'ping', ['-c', '1', '-W', '1', addrs[1]], { allowFail: true }).includes(' 0 received'); t++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      execIn(pods[0], 'ping', ['-c', '1', '-W', '2', addrs[1]]);
      execIn(pods[1], 'ping', ['-c', '1', '-W', '2', addrs[0]]);
    } finally {
      for (const a of agents) podman(['rm', '-f', '-t', '1', a], true);
      destroyTestNetns([...pods, ul]);
    }
  }, 180_000);
});
