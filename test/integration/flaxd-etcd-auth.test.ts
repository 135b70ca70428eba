/**
 * flaxd against Debian's etcd with authentication on (flanneld's
 * --etcd-username / --etcd-password, here one as a flag, one as
 * FLANNELD_ETCD_PASSWORD): a user whose role may read and write only the
 * network's prefix gets its lease; a wrong password is refused at start-up
 * (exit 1, the etcd error named).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt } from '../lib/cni';
import { ETCD_IP, EtcdServer, requireEtcd, tearDownEtcdCluster } from './etcd-helpers';
import { Cluster } from './flaxd-helpers';

const PREFIX = '/flax/auth-net';
const cl = new Cluster();
const etcd = new EtcdServer(ETCD_IP);
const ROOT = ['--user', 'root:root-pw'];

beforeAll(async () => {
  requireBuilt('flaxd');
  requireEtcd();
  await cl.create(1);
  await etcd.start(cl.underlay);
  etcd.ctl(['put', `${PREFIX}/config`, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}']);
  etcd.ctl(['user', 'add', 'root:root-pw']);
  etcd.ctl(['user', 'add', 'flannel:flannel-pw']);
  etcd.ctl(['role', 'add', 'flannel']);
  etcd.ctl(['role', 'grant-permission', 'flannel', '--prefix=true', 'readwrite', `${PREFIX}/`]);
  etcd.ctl(['user', 'grant-role', 'flannel', 'flannel']);
  etcd.ctl(['auth', 'enable']);
}, 90_000);
afterAll(() => tearDownEtcdCluster(cl, etcd), 60_000);

const args = ['--etcd-endpoints', etcd.url, '-etcd-prefix', PREFIX, '-etcd-username=flannel', '--net-config-path', '/nonexistent/net-conf.json'];

describe('flaxd: etcd with authentication', () => {
  it('a wrong password is refused at start-up, naming etcd\'s error', async () => {
    const n = cl.nodes[0];
    const a = cl.startAgent(n, args, { ...process.env, FLANNELD_ETCD_PASSWORD: 'wrong' });
    expect(await a.exited).toBe(1);
    expect(a.log()).toMatch(/^E\d{4} [^\]]*\] config: etcd unreachable at .* after 5 attempts in \d+s: .*authentication failed/m);
  }, 30_000);

  it('--etcd-username + FLANNELD_ETCD_PASSWORD: the lease is written under the prefix the user may write', async () => {
    const n = cl.nodes[0];
    cl.startAgent(n, args, { ...process.env, FLANNELD_ETCD_PASSWORD: 'flannel-pw' });
    await cl.waitReady(n);
    expect(etcd.ctl(['get', ...ROOT, '--prefix', `${PREFIX}/subnets/`, '--keys-only']).out).toMatch(/\/flax\/auth-net\/subnets\/10\.244\.\d+\.0-24/);
    // and etcd really checks: without credentials nothing is readable
    expect(etcd.ctl(['get', '--prefix', `${PREFIX}/`], true).ok).toBe(false);
  }, 30_000);
});
