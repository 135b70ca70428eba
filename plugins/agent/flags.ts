/**
 * flaxd's command line: flanneld's flag names and meanings, parsed the way
 * Go's flag package does (`-name` or `--name`, `=value` or the next
 * argument, booleans only with `=`, `--` ends the flags), then each flag not
 * given on the command line taken from FLANNELD_<NAME> (dashes → _,
 * upper case) as flanneld's SetFlagsFromEnv does. Any unknown flag or bad
 * value is a UsageError (exit 2) naming it.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { annotationPrefixError } from './store/kube-annotations';

export class UsageError extends Error {}

type Kind = 'string' | 'bool' | 'int' | 'list' | 'seconds';
interface FlagSpec {
  kind: Kind;
  help: string;
  /** for int: inclusive bounds */
  min?: number;
  max?: number;
  check?: (v: string) => string | null;
}

const regexCheck = (v: string): string | null => {
  try {
    new RegExp(v);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
};

export const FLAGS = {
  'etcd-endpoints': { kind: 'string', help: 'comma-separated etcd endpoints (selects the etcd store)' },
  'etcd-prefix': { kind: 'string', help: 'etcd prefix (default /coreos.com/network)' },
  'etcd-cafile': { kind: 'string', help: 'etcd CA certificate file' },
  'etcd-certfile': { kind: 'string', help: 'etcd client certificate file' },
  'etcd-keyfile': { kind: 'string', help: 'etcd client key file' },
  'etcd-username': { kind: 'string', help: 'etcd user (etcd authentication, with --etcd-password)' },
  'etcd-password': { kind: 'string', help: 'etcd password of --etcd-username' },
  'kube-subnet-mgr': { kind: 'bool', help: 'use the Kubernetes API for subnet assignment' },
  'kubeconfig-file': { kind: 'string', help: 'kubeconfig file' },
  'kube-api-url': { kind: 'string', help: 'Kubernetes API server URL' },
  'kube-annotation-prefix': { kind: 'string', help: 'prefix of flannel\'s Node annotations (default flannel.alpha.coreos.com; at most one "/", else "/" is appended)', check: (v) => annotationPrefixError(v) },
  'set-node-network-unavailable': { kind: 'bool', help: 'kube: set the Node\'s condition NetworkUnavailable=False once the network is up (default true)' },
  'net-config-path': { kind: 'string', help: 'network configuration file (default /etc/kube-flannel/net-conf.json)' },
  iface: { kind: 'list', help: 'interface (name or IP) for inter-host traffic; repeatable, first match wins' },
  'iface-regex': { kind: 'list', help: 'regex matching the interface name or IP; repeatable', check: regexCheck },
  'iface-can-reach': { kind: 'string', help: 'use the interface (and source address) the kernel\'s route lookup picks for this IP, as `ip route get IP` (after --iface and --iface-regex)', check: (v) => (isIP(v) ? null : 'not an IP address') },
  'public-ip': { kind: 'string', help: 'IPv4 address other nodes reach this node at', check: (v) => (isIPv4(v) ? null : 'not an IPv4 address') },
  'public-ipv6': { kind: 'string', help: 'IPv6 address other nodes reach this node at (IPv6 networks)', check: (v) => (isIPv6(v) ? null : 'not an IPv6 address') },
  'ip-masq': { kind: 'bool', help: 'masquerade traffic leaving the overlay' },
  'ip-masq-fully-random-disable': { kind: 'bool', help: 'masquerade without --random-fully (fully-random)' },
  'ip-blackhole-route': { kind: 'bool', help: 'add a blackhole route for our pod subnet (re-checked every --iptables-resync seconds)' },
  'iptables-resync': { kind: 'int', min: 1, max: 86400, help: 'seconds between checks of the masquerade/forward rules, rebuilt when missing (default 5)' },
  'iptables-forward-rules': { kind: 'bool', help: 'accept forwarded traffic to and from the Network (FLANNEL-FWD / nft chain forward; default true)' },
  'subnet-file': { kind: 'string', help: 'subnet file to write (default /run/flannel/subnet.env)' },
  'subnet-lease-renew-margin': { kind: 'int', min: 1, max: 1439, help: 'renew the lease this many minutes before expiry (default 60)' },
  'healthz-ip': { kind: 'string', help: 'healthz listen address (default 0.0.0.0)' },
  'healthz-port': { kind: 'int', min: 0, max: 65535, help: 'healthz port (0 = off)' },
  v: { kind: 'int', min: 0, max: 10, help: 'log verbosity (1 or more: debug lines)' },
  vmodule: { kind: 'string', help: 'klog per-file verbosity; accepted for flanneld compatibility, does nothing (a warning)' },
  log_backtrace_at: { kind: 'string', help: 'klog file:line to log a stack trace at; accepted for flanneld compatibility, does nothing (a warning)' },
  'log-format': { kind: 'string', help: 'log line format: klog (flanneld\'s, default) or json (one object a line)', check: (v) => (v === 'klog' || v === 'json' ? null : 'expected klog or json') },
  'lease-dir': { kind: 'string', help: 'file lease store directory, when neither etcd nor kube is selected (default /var/lib/flax/leases)' },
  'node-name': { kind: 'string', help: 'this node\'s name in kube mode (default $NODE_NAME)' },
  'reconcile-interval': { kind: 'seconds', help: 'seconds between reconciliations of the data plane (default 10)' },
  'gc-interval': { kind: 'int', min: 0, max: 86400, help: 'seconds between sweeps of dead pods\' leftovers, as `flax gc` (default 300; 0 = off)' },
  'gc-cni-conf-dir': { kind: 'string', help: 'CNI config directory the sweeper reads (default /etc/cni/net.d)' },
  'gc-cache-dir': { kind: 'string', help: 'libcni cache directory the sweeper reads (default /var/lib/cni)' },
  'gc-cni-path': { kind: 'string', help: 'CNI plugin path (colon-separated) for the sweeper\'s DELs (default /opt/cni/bin)' },
  'gc-sandbox-dir': { kind: 'string', help: 'root of `flax sandbox`\'s sandboxes whose dead ones the sweeper removes (default $FLAX_SANDBOX_DIR or /run/flax/sandboxes; alias --sandbox-dir, as `flax gc`)' },
  'cni-socket': { kind: 'string', help: 'unix socket of the resident CNI server that dist/bin\'s plugin clients call (default /run/flax/cni.sock; \'\' = no server)' },
  'no-overlay': { kind: 'bool', help: 'run only the CNI server and the sweeper: no lease, store, device or subnet file' },
  help: { kind: 'bool', help: 'print this help' },
  version: { kind: 'bool', help: 'print the version' },
} satisfies Record<string, FlagSpec>;

type FlagName = keyof typeof FLAGS;

export interface AgentOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdCafile: string;
  etcdCertfile: string;
  etcdKeyfile: string;
  etcdUsername: string;
  etcdPassword: string;
  kubeSubnetMgr: boolean;
  kubeconfigFile: string;
  kubeApiUrl: string;
  kubeAnnotationPrefix: string;
  setNodeNetworkUnavailable: boolean;
  netConfigPath: string;
  iface: string[];
  ifaceRegex: string[];
  ifaceCanReach: string;
  publicIp: string;
  publicIpv6: string;
  ipMasq: boolean;
  ipMasqFullyRandomDisable: boolean;
  ipBlackholeRoute: boolean;
  /** seconds */
  iptablesResync: number;
  iptablesForwardRules: boolean;
  subnetFile: string;
  subnetLeaseRenewMargin: number;
  healthzIp: string;
  healthzPort: number;
  v: number;
  vmodule: string;
  logBacktraceAt: string;
  logFormat: 'klog' | 'json';
  leaseDir: string;
  nodeName: string;
  /** seconds */
  reconcileInterval: number;
  /** seconds; 0 = no sweeper */
  gcInterval: number;
  gcCniConfDir: string;
  gcCacheDir: string;
  gcCniPath: string;
  /** '' = $FLAX_SANDBOX_DIR or /run/flax/sandboxes */
  gcSandboxDir: string;
  /** '' = no CNI server */
  cniSocket: string;
  noOverlay: boolean;
  help: boolean;
  version: boolean;
}

const camel = (n: string): string => n.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
export const envName = (flag: string): string => `FLANNELD_${flag.replace(/-/g, '_').toUpperCase()}`;

function defaults(env: NodeJS.ProcessEnv): AgentOptions {
  return {
    etcdEndpoints: [], etcdPrefix: '/coreos.com/network', etcdCafile: '', etcdCertfile: '', etcdKeyfile: '', etcdUsername: '', etcdPassword: '',
    kubeSubnetMgr: false, kubeconfigFile: '', kubeApiUrl: '', kubeAnnotationPrefix: 'flannel.alpha.coreos.com', setNodeNetworkUnavailable: true,
    netConfigPath: '/etc/kube-flannel/net-conf.json',
    iface: [], ifaceRegex: [], ifaceCanReach: '', publicIp: '', publicIpv6: '', ipMasq: false, ipMasqFullyRandomDisable: false, ipBlackholeRoute: false,
    iptablesResync: 5, iptablesForwardRules: true, subnetFile: '/run/flannel/subnet.env',
    subnetLeaseRenewMargin: 60, healthzIp: '0.0.0.0', healthzPort: 0, v: 0, vmodule: '', logBacktraceAt: '', logFormat: 'klog',
    leaseDir: '/var/lib/flax/leases', nodeName: env.NODE_NAME ?? '', reconcileInterval: 10,
    gcInterval: 300, gcCniConfDir: '/etc/cni/net.d', gcCacheDir: '/var/lib/cni', gcCniPath: '/opt/cni/bin', gcSandboxDir: '', cniSocket: '/run/flax/cni.sock', noOverlay: false, help: false, version: false,
  };
}

const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

/** Other names of a flag: `flax gc`'s `--sandbox-dir` names the sweeper's sandbox root as `--gc-sandbox-dir` does. */
const ALIASES: Readonly<Record<string, FlagName>> = { 'sandbox-dir': 'gc-sandbox-dir' };

/** Converts one value; returns an error text (without the flag's name) or the value. */
function convert(spec: FlagSpec, v: string): { value: unknown } | { error: string } {
  switch (spec.kind) {
    case 'bool':
      if (GO_TRUE.includes(v)) return { value: true };
      if (GO_FALSE.includes(v)) return { value: false };
      return { error: 'not a boolean' };
    case 'int': {
      if (!/^[+-]?\d{1,10}$/.test(v)) return { error: 'not an integer' };
      const n = Number(v);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        return { error: `out of range ${spec.min}..${spec.max}` };
      }
      return { value: n };
    }
    case 'seconds': {
      const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
      if (!(n > 0) || n > 86400) return { error: 'not a number of seconds in (0, 86400]' };
      return { value: n };
    }
    default: {
      const err = spec.check?.(v);
      return err ? { error: err } : { value: v };
    }
  }
}

function assign(o: AgentOptions, name: FlagName, value: unknown): void {
  const key = camel(name) as keyof AgentOptions;
  const spec: FlagSpec = FLAGS[name];
  if (spec.kind === 'list') (o[key] as string[]).push(value as string);
  else if (name === 'etcd-endpoints') o.etcdEndpoints = (value as string).split(',').map((s) => s.trim()).filter(Boolean);
  else (o as unknown as Record<string, unknown>)[key] = value;
}

/** Parses argv (without node and script) and the environment. Throws UsageError. */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv = {}): AgentOptions {
  const o = defaults(env);
  const seen = new Set<FlagName>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      if (i + 1 < argv.length) throw new UsageError(`unexpected argument "${argv[i + 1]}"`);
      break;
    }
    if (!a.startsWith('-') || a === '-') throw new UsageError(`unexpected argument "${a}"`);
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    let name = eq < 0 ? body : body.slice(0, eq);
    const shown = a.startsWith('--') ? `--${name}` : `-${name}`;
    if (name === 'h') {
      o.help = true;
      continue;
    }
    if (Object.hasOwn(ALIASES, name)) name = ALIASES[name];
    if (!Object.hasOwn(FLAGS, name)) throw new UsageError(`unknown flag ${shown}`);
    const spec: FlagSpec = FLAGS[name as FlagName];
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else if (spec.kind === 'bool') value = 'true';
    else if (i + 1 < argv.length) value = argv[++i];
    else throw new UsageError(`flag ${shown} needs a value`);
    const r = convert(spec, value);
    if ('error' in r) throw new UsageError(`invalid value "${value}" for ${shown}: ${r.error}`);
    assign(o, name as FlagName, r.value);
    seen.add(name as FlagName);
  }
  for (const name of Object.keys(FLAGS) as FlagName[]) {
    const v = env[envName(name)];
    // empty = unset, as in flanneld; except FLANNELD_CNI_SOCKET='', which turns the CNI server off as --cni-socket '' does
    if (seen.has(name) || v === undefined || (v === '' && name !== 'cni-socket')) continue;
    const r = convert(FLAGS[name], v);
    if ('error' in r) throw new UsageError(`invalid value "${v}" for ${envName(name)}: ${r.error}`);
    assign(o, name, r.value);
  }
  return o;
}

/** Warnings for flags flaxd accepts (flanneld's) but that do nothing here. */
export function flagWarnings(o: AgentOptions): string[] {
  const out: string[] = [];
  if (o.vmodule) out.push(`--vmodule ${o.vmodule}: accepted for flanneld compatibility, does nothing (flaxd has one verbosity: -v)`);
  if (o.logBacktraceAt) out.push(`--log_backtrace_at ${o.logBacktraceAt}: accepted for flanneld compatibility, does nothing (flaxd is not Go: no file:line to trace at)`);
  return out;
}

export function usage(): string {
  const lines = ['Usage: flaxd [flags]   (each flag also settable as FLANNELD_<FLAG>)', ''];
  for (const [name, spec] of Object.entries(FLAGS) as Array<[string, FlagSpec]>) {
    const arg = spec.kind === 'bool' ? '' : spec.kind === 'list' ? ' VALUE (repeatable)' : spec.kind === 'string' ? ' VALUE' : ' N';
    lines.push(`  --${name}${arg}\n      ${spec.help}`);
  }
  return lines.join('\n') + '\n';
}
