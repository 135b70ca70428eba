import { describe, expect, it } from 'vitest';
import { envName, FLAGS, parseFlags, UsageError, usage } from './flags';
import { thrownMessage } from './testing';

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
