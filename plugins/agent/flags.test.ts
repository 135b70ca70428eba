import { sweeperOptions } from './sweeper';
import { describe, expect, it } from 'vitest';
import { envName, FLAGS, flagWarnings, parseFlags, UsageError, usage } from './flags';
import { thrownMessage } from '../../test/lib/thrown';

const bad = (argv: string[], env: NodeJS.ProcessEnv = {}) => thrownMessage(() => parseFlags(argv, env), UsageError);

describe('flaxd flags', () => {
  it("has flanneld's defaults and flax's own", () => {
    const o = parseFlags([], { NODE_NAME: 'n1' });
    expect(o).toMatchObject({
      etcdEndpoints: [], etcdPrefix: '/coreos.com/network', kubeSubnetMgr: false, netConfigPath: '/etc/kube-flannel/net-conf.json',
      iface: [], subnetFile: '/run/flannel/subnet.env', subnetLeaseRenewMargin: 60, healthzIp: '0.0.0.0', healthzPort: 0, v: 0,
      leaseDir: '/var/lib/flax/leases', nodeName: 'n1', reconcileInterval: 10, ipMasq: false,
    });
  });

  it('sweeper flags: --gc-interval 300 by default, 0 = off, the CNI directories as `flax gc`', () => {
    expect(parseFlags([])).toMatchObject({ gcInterval: 300, gcCniConfDir: '/etc/cni/net.d', gcCacheDir: '/var/lib/cni', gcCniPath: '/opt/cni/bin' });
    expect(parseFlags(['--gc-interval', '0', '--gc-cni-path', '/a:/b']).gcInterval).toBe(0);
    expect(bad(['--gc-interval', '-1'])).toContain('invalid value "-1" for --gc-interval');
  });

  it('--gc-sandbox-dir: the sweeper\'s `flax sandbox` root (as `flax gc --sandbox-dir`); unset: $FLAX_SANDBOX_DIR or the default', () => {
    expect(parseFlags([]).gcSandboxDir).toBe('');
    expect(parseFlags(['--gc-sandbox-dir', '/s']).gcSandboxDir).toBe('/s');
    expect(parseFlags([], { FLANNELD_GC_SANDBOX_DIR: '/e' }).gcSandboxDir).toBe('/e');
    expect(parseFlags(['--sandbox-dir', '/a']).gcSandboxDir).toBe('/a');
    expect(parseFlags(['-sandbox-dir=/b']).gcSandboxDir).toBe('/b');
  });

  it('both ways flaxd runs give the sweeper the same options, --gc-sandbox-dir included', () => {
    expect(sweeperOptions(parseFlags(['--no-overlay', '--gc-sandbox-dir', '/s', '--gc-cni-path', '/a:/b']))).toEqual({ intervalS: 300, confDir: '/etc/cni/net.d', cacheDir: '/var/lib/cni', cniPath: ['/a', '/b'], sandboxDir: '/s' });
  });

  it('--iptables-forward-rules defaults to true, as in flanneld, and is turned off with =false', () => {
    expect(parseFlags([]).iptablesForwardRules).toBe(true);
    expect(parseFlags(['--iptables-forward-rules=false']).iptablesForwardRules).toBe(false);
    expect(parseFlags([], { FLANNELD_IPTABLES_FORWARD_RULES: 'false' }).iptablesForwardRules).toBe(false);
  });

  it("parses Go flag syntax: -x, --x, =value or the next argument, booleans, repeatable --iface", () => {
    const o = parseFlags(['-iface', 'eth0', '--iface=10.0.0.1', '--ip-masq', '-kube-subnet-mgr=false', '--subnet-lease-renew-margin', '30',
      '-v=2', '--etcd-endpoints=http://a:2379, http://b:2379', '--reconcile-interval', '0.5', '--public-ip', '192.168.1.1', '--iface-regex', '^en']);
    expect(o).toMatchObject({ iface: ['eth0', '10.0.0.1'], ipMasq: true, kubeSubnetMgr: false, subnetLeaseRenewMargin: 30, v: 2,
      etcdEndpoints: ['http://a:2379', 'http://b:2379'], reconcileInterval: 0.5, publicIp: '192.168.1.1', ifaceRegex: ['^en'] });
    expect(parseFlags(['--help']).help).toBe(true);
    expect(parseFlags(['-h']).help).toBe(true);
  });

  it('takes FLANNELD_<FLAG> from the environment unless the flag is on the command line', () => {
    const env = { FLANNELD_SUBNET_FILE: '/x/subnet.env', FLANNELD_IP_MASQ: 'true', FLANNELD_HEALTHZ_PORT: '8471', FLANNELD_IFACE: 'eth1', FLANNELD_LEASE_DIR: '/l' };
    expect(parseFlags([], env)).toMatchObject({ subnetFile: '/x/subnet.env', ipMasq: true, healthzPort: 8471, iface: ['eth1'], leaseDir: '/l' });
    expect(parseFlags(['--subnet-file', '/cli'], env).subnetFile).toBe('/cli');
    expect(envName('subnet-lease-renew-margin')).toBe('FLANNELD_SUBNET_LEASE_RENEW_MARGIN');
  });

  it('names the unknown flag or the bad value in one line', () => {
    expect(bad(['--etcd-endpoint', 'x'])).toBe('unknown flag --etcd-endpoint');
    expect(bad(['-nope'])).toBe('unknown flag -nope');
    expect(bad(['--healthz-port', 'abc'])).toBe('invalid value "abc" for --healthz-port: not an integer');
    expect(bad(['--healthz-port=70000'])).toBe('invalid value "70000" for --healthz-port: out of range 0..65535');
    expect(bad(['--subnet-lease-renew-margin', '1440'])).toMatch(/--subnet-lease-renew-margin: out of range 1..1439/);
    expect(bad(['--ip-masq=yes'])).toBe('invalid value "yes" for --ip-masq: not a boolean');
    expect(bad(['--public-ip', 'fc00::1'])).toBe('invalid value "fc00::1" for --public-ip: not an IPv4 address');
    expect(bad(['--iface-regex', '('])).toMatch(/^invalid value "\(" for --iface-regex: /);
    expect(bad(['--reconcile-interval', '0'])).toMatch(/--reconcile-interval/);
    expect(bad(['--iface'])).toBe('flag --iface needs a value');
    expect(bad(['eth0'])).toBe('unexpected argument "eth0"');
    expect(bad([], { FLANNELD_HEALTHZ_PORT: 'x' })).toBe('invalid value "x" for FLANNELD_HEALTHZ_PORT: not an integer');
    for (const m of [bad(['--x']), bad(['--v', 'q'])]) expect(m).not.toMatch(/\n/);
  });

  it('documents every flag in --help', () => {
    const u = usage();
    for (const name of Object.keys(FLAGS)) expect(u).toContain(`--${name}`);
  });
});

/** flanneld's flags (flannel-io/flannel main.go, v0.28: its flannelFlags plus klog's v, vmodule, log_backtrace_at). */
const FLANNELD_FLAGS = [
  'etcd-endpoints', 'etcd-prefix', 'etcd-keyfile', 'etcd-certfile', 'etcd-cafile', 'etcd-username', 'etcd-password', 'iface', 'iface-regex',
  'iface-can-reach', 'subnet-file', 'public-ip', 'public-ipv6', 'subnet-lease-renew-margin', 'ip-masq', 'ip-masq-fully-random-disable',
  'kube-subnet-mgr', 'kube-api-url', 'kube-annotation-prefix', 'kubeconfig-file', 'version', 'healthz-ip', 'healthz-port', 'iptables-resync',
  'iptables-forward-rules', 'ip-blackhole-route', 'net-config-path', 'set-node-network-unavailable', 'v', 'vmodule', 'log_backtrace_at',
];

describe("flanneld's whole flag set", () => {
  it('accepts every flag flanneld accepts, each with its FLANNELD_* variable', () => {
    for (const f of FLANNELD_FLAGS) expect(Object.keys(FLAGS), f).toContain(f);
    expect(envName('log_backtrace_at')).toBe('FLANNELD_LOG_BACKTRACE_AT');
    expect(envName('iptables-resync')).toBe('FLANNELD_IPTABLES_RESYNC');
  });

  it("has flanneld's defaults for the new ones", () => {
    expect(parseFlags([])).toMatchObject({ etcdUsername: '', etcdPassword: '', ifaceCanReach: '', kubeAnnotationPrefix: 'flannel.alpha.coreos.com',
      iptablesResync: 5, setNodeNetworkUnavailable: true, ipMasqFullyRandomDisable: false, ipBlackholeRoute: false, vmodule: '', logBacktraceAt: '', logFormat: 'klog' });
  });

  it("parses Go's forms: -flag, --flag, =value or the next argument, booleans as -flag / -flag=false", () => {
    const o = parseFlags(['--iptables-resync', '7', '-ip-masq', '-etcd-endpoints=http://e:2379', '-etcd-username', 'flannel', '--etcd-password=s3cret',
      '-iface-can-reach=192.0.2.1', '-kube-annotation-prefix', 'example.com/x', '-set-node-network-unavailable=false', '-ip-masq-fully-random-disable',
      '--ip-blackhole-route=true', '-v=3', '-vmodule=main=2', '--log_backtrace_at', 'main.go:10', '-log-format=json']);
    expect(o).toMatchObject({ iptablesResync: 7, ipMasq: true, etcdEndpoints: ['http://e:2379'], etcdUsername: 'flannel', etcdPassword: 's3cret',
      ifaceCanReach: '192.0.2.1', kubeAnnotationPrefix: 'example.com/x', setNodeNetworkUnavailable: false, ipMasqFullyRandomDisable: true,
      ipBlackholeRoute: true, v: 3, vmodule: 'main=2', logBacktraceAt: 'main.go:10', logFormat: 'json' });
    expect(parseFlags(['-iptables-resync=9']).iptablesResync).toBe(9);
  });

  it('takes each new flag from FLANNELD_<FLAG>', () => {
    const env = { FLANNELD_IPTABLES_RESYNC: '3', FLANNELD_ETCD_USERNAME: 'u', FLANNELD_ETCD_PASSWORD: 'p', FLANNELD_IFACE_CAN_REACH: 'fd00::1',
      FLANNELD_KUBE_ANNOTATION_PREFIX: 'example.com', FLANNELD_SET_NODE_NETWORK_UNAVAILABLE: 'false', FLANNELD_IP_MASQ_FULLY_RANDOM_DISABLE: 'true',
      FLANNELD_IP_BLACKHOLE_ROUTE: 'true', FLANNELD_VMODULE: 'x=1', FLANNELD_LOG_BACKTRACE_AT: 'a.go:1', FLANNELD_LOG_FORMAT: 'json', FLANNELD_V: '2' };
    expect(parseFlags([], env)).toMatchObject({ iptablesResync: 3, etcdUsername: 'u', etcdPassword: 'p', ifaceCanReach: 'fd00::1', kubeAnnotationPrefix: 'example.com',
      setNodeNetworkUnavailable: false, ipMasqFullyRandomDisable: true, ipBlackholeRoute: true, vmodule: 'x=1', logBacktraceAt: 'a.go:1', logFormat: 'json', v: 2 });
    expect(parseFlags(['--iptables-resync', '4'], env).iptablesResync).toBe(4);
  });

  it('refuses bad values of the new flags, naming them', () => {
    expect(bad(['--iptables-resync', 'x'])).toBe('invalid value "x" for --iptables-resync: not an integer');
    expect(bad(['--iptables-resync=0'])).toBe('invalid value "0" for --iptables-resync: out of range 1..86400');
    expect(bad(['--iface-can-reach', 'eth0'])).toBe('invalid value "eth0" for --iface-can-reach: not an IP address');
    expect(bad(['--kube-annotation-prefix', 'a/b/c'])).toBe('invalid value "a/b/c" for --kube-annotation-prefix: a prefix can contain at most one "/"');
    expect(bad(['--kube-annotation-prefix', 'Flannel'])).toMatch(/--kube-annotation-prefix: a prefix must be fqdn/);
    expect(bad(['--log-format', 'text'])).toBe('invalid value "text" for --log-format: expected klog or json');
    expect(bad(['--set-node-network-unavailable', 'false'])).toBe('unexpected argument "false"'); // Go: a bool takes its value only with =
  });

  it('warns about the klog flags that do nothing here, and only about those', () => {
    expect(flagWarnings(parseFlags(['-v=4']))).toEqual([]);
    const w = flagWarnings(parseFlags(['-vmodule=main=2', '--log_backtrace_at=main.go:10']));
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/^--vmodule main=2: accepted for flanneld compatibility, does nothing/);
    expect(w[1]).toMatch(/^--log_backtrace_at main\.go:10: accepted for flanneld compatibility, does nothing/);
  });
});
