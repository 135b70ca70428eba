/**
 * flaxd reacts to kernel changes of its data plane at once, through netlink
 * notifications (NetlinkHandle.subscribe), not at the next reconcile: two
 * vxlan nodes whose agents reconcile only every hour get back a deleted
 * device, a deleted peer route and a deleted peer neighbour within seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../lib/netns';
import { requireBuilt } from '../lib/cni';
import { Cluster, peerEntries, peerState, vxlanView, waitFor } from './flaxd-helpers';

const cl = new Cluster();

beforeAll(async () => {
  requireBuilt('flaxd');
  await cl.create(2);
  // the last --reconcile-interval wins: an hour, so only the kernel's notifications can explain a repair
  for (const n of cl.nodes) cl.startAgent(n, ['--reconcile-interval', '3600']);
  for (const n of cl.nodes) await cl.waitReady(n);
}, 60_000);
afterAll(() => cl.destroy(), 60_000);

describe('flaxd: kernel notifications', () => {
  it('repairs a deleted peer route and neighbour, and re-creates a deleted device, long before the reconcile interval', async () => {
    const [n1, n2] = cl.nodes;
    const want = () => peerEntries([{ prefix: cl.leaseOf(n2).prefix, mac: vxlanView(n2.ns).link.address, ip: n2.ip }]);
    await waitFor('node 1 programmed', () => JSON.stringify(peerState(n1.ns)) === JSON.stringify(want()));
    const p2 = cl.leaseOf(n2).prefix;

    execIn(n1.ns, 'ip', ['route', 'del', `${p2}.0/24`, 'dev', 'flannel.1']);
    await waitFor('route re-added', () => JSON.stringify(peerState(n1.ns)) === JSON.stringify(want()), 10_000, 50);
    await waitFor('the route event logged', () => n1.agent!.log().includes(`kernel: route ${p2}.0/24 removed; reconciling`), 5000, 50);

    execIn(n1.ns, 'ip', ['neigh', 'del', `${p2}.0`, 'dev', 'flannel.1']);
    await waitFor('neighbour re-added', () => JSON.stringify(peerState(n1.ns)) === JSON.stringify(want()), 10_000, 50);
    await waitFor('the neighbour event logged', () => n1.agent!.log().includes(`kernel: neighbour ${p2}.0 removed; reconciling`), 5000, 50);

    execIn(n1.ns, 'ip', ['link', 'del', 'flannel.1']);
    await waitFor('device re-created and programmed', () => {
      try {
        return JSON.stringify(peerState(n1.ns)) === JSON.stringify(want());
      } catch {
        return false; // no device yet
      }
    }, 10_000, 50);
    await waitFor('the device event logged', () => n1.agent!.log().includes('kernel: device flannel.1 deleted; reconciling'), 5000, 50);
    expect(n1.agent!.log()).toMatch(/flannel\.1: created/);
  });
});
