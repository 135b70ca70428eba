/**
 * `flax doctor`: what breaks this node's pod networking, named. Gathers the
 * node's facts (doctor/facts.ts) and runs the pure checks (doctor/checks.ts);
 * prints a table (STATUS, OBJECT, PROBLEM, FIX) or `-o json`. Exit 0 when
 * nothing fails (warnings allowed), 1 when something does.
 */
import { hostname } from 'node:os';
import type { Options } from 'yargs';
import type { CliIo, CommandDef } from '../command';
import { table } from '../table';
import { OUTPUT_OPTIONS, UsageError, confDirOf, confDirOption, outputFormat } from '../usage';

export const DOCTOR_OPTIONS = {
  ...OUTPUT_OPTIONS,
  'subnet-file': { type: 'string', describe: 'the agent\'s subnet file (default /run/flannel/subnet.env)' },
  'cni-conf-dir': confDirOption('CNI config dir: the flannel conflist names the bridge (default: $NETCONFPATH or /etc/cni/net.d)'),
  'cache-dir': { type: 'string', describe: 'libcni cache root: the pods whose MTU is checked (default /var/lib/cni)' },
  'net-config-path': { type: 'string', describe: 'flaxd\'s network config, for the VXLAN port (default /etc/kube-flannel/net-conf.json)' },
  'lease-dir': { type: 'string', describe: 'flaxd\'s file lease store (default /var/lib/flax/leases, unless --etcd-endpoints)' },
  'etcd-endpoints': { type: 'string', describe: 'flaxd\'s etcd store: comma-separated endpoints' },
  'etcd-prefix': { type: 'string', describe: 'etcd prefix (default /coreos.com/network)' },
  'etcd-cafile': { type: 'string', describe: 'etcd CA certificate file' },
  'etcd-certfile': { type: 'string', describe: 'etcd client certificate file' },
  'etcd-keyfile': { type: 'string', describe: 'etcd client key file' },
  'etcd-username': { type: 'string', describe: 'etcd user' },
  'etcd-password': { type: 'string', describe: 'etcd password' },
  'kube-subnet-mgr': { type: 'boolean', describe: 'flaxd\'s Kubernetes store: the leases are the Nodes\' (podCIDR + flannel annotations)' },
  'kubeconfig-file': { type: 'string', describe: 'with --kube-subnet-mgr: kubeconfig (default: in-cluster, or --kube-api-url)' },
  'kube-api-url': { type: 'string', describe: 'with --kube-subnet-mgr: the API server URL' },
  'kube-annotation-prefix': { type: 'string', describe: 'with --kube-subnet-mgr: the annotations\' prefix (default flannel.alpha.coreos.com)' },
  bridge: { type: 'string', describe: 'the pod bridge (default: the flannel conflist\'s delegate.bridge, else cni0)' },
  probe: { type: 'boolean', default: true, describe: 'probe each peer\'s VTEP over the overlay (ping); --no-probe skips it' },
  'probe-timeout': { type: 'number', default: 1, describe: 'seconds to wait for each probe' },
} as const satisfies Record<string, Options>;

export async function runDoctor(a: Record<string, unknown>, io: CliIo): Promise<number> {
  const json = outputFormat(a) === 'json';
  const [{ gatherFacts }, { runChecks }] = await Promise.all([import('../doctor/facts'), import('../doctor/checks')]);
  const endpoints = typeof a.etcdEndpoints === 'string' ? a.etcdEndpoints.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const facts = await gatherFacts({
    subnetFile: (a.subnetFile as string | undefined) ?? '/run/flannel/subnet.env',
    cniConfDir: confDirOf(a.cniConfDir, io.env),
    cacheDir: (a.cacheDir as string | undefined) ?? '/var/lib/cni',
    netConfigPath: (a.netConfigPath as string | undefined) ?? '/etc/kube-flannel/net-conf.json',
    leaseDir: endpoints.length || a.kubeSubnetMgr ? undefined : (a.leaseDir as string | undefined) ?? '/var/lib/flax/leases',
    etcd: endpoints.length ? {
      endpoints, prefix: (a.etcdPrefix as string | undefined) ?? '/coreos.com/network', cafile: (a.etcdCafile as string) ?? '', certfile: (a.etcdCertfile as string) ?? '',
      keyfile: (a.etcdKeyfile as string) ?? '', username: (a.etcdUsername as string) ?? '', password: (a.etcdPassword as string) ?? '',
    } : undefined,
    kube: a.kubeSubnetMgr ? {
      kubeconfigFile: a.kubeconfigFile as string | undefined, kubeApiUrl: a.kubeApiUrl as string | undefined,
      annotationPrefix: a.kubeAnnotationPrefix as string | undefined, nodeName: io.env.NODE_NAME || hostname(),
    } : undefined,
    bridge: a.bridge as string | undefined,
    probe: a.probe !== false,
    probeTimeoutS: Math.max(1, Math.ceil(Number(a.probeTimeout ?? 1))),
  });
  const findings = runChecks(facts);
  const failed = findings.filter((f) => f.status === 'fail').length;
  const warned = findings.filter((f) => f.status === 'warn').length;
  if (json) {
    io.stdout(JSON.stringify({ ok: failed === 0, failed, warnings: warned, findings }, null, 2) + '\n');
  } else {
    io.stdout(table(['STATUS', 'OBJECT', 'PROBLEM', 'FIX'], findings.map((f) => [f.status, f.object, f.problem, f.fix])));
    io.stdout(`\n${failed ? `${failed} failed` : 'nothing failed'}${warned ? `, ${warned} warning(s)` : ''}\n`);
  }
  return failed ? 1 : 0;
}

export const DOCTOR_COMMAND: CommandDef = {
  name: 'doctor',
  describe: 'check this node\'s pod networking (agent, subnet.env, VXLAN device, peers, bridge, MTUs, forwarding, conntrack, leases) and name what is wrong',
  options: DOCTOR_OPTIONS as unknown as Record<string, Options>,
  root: true,
  examples: [
    ['flax doctor', 'the table; exit 1 when something fails'],
    ['flax doctor -o json --lease-dir /var/lib/flax/leases', 'the same as JSON, leases from the file store'],
  ],
  epilog: 'Runs in the current network namespace. Each finding names the exact object (file, device, address, peer) and the fix. '
    + 'Leases come from flaxd\'s store, given by flaxd\'s flags (--lease-dir, --etcd-endpoints …).',
  check: (a) => {
    outputFormat(a);
    const t = Number(a.probeTimeout);
    if (!Number.isFinite(t) || t <= 0) throw new UsageError(`--probe-timeout: expected seconds > 0, got "${String(a.probeTimeout)}"`);
  },
  run: (a, io) => runDoctor(a, io),
};
