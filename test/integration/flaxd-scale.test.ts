/**
 * flaxd with 1000 peers (issue 11: "peer programming must not fail at
 * scale"): one node whose agent only hears of them through store events
 * (the periodic re-list is pushed out to an hour), so the incremental path
 * and its netlink batches alone must get the kernel exactly right:
 * 1000 leases created, then half removed and a tenth of the rest given a
 * new VTEP MAC and public IP. Correctness only: nothing here is timed but
 * the generous wait for convergence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileLeaseStore } from '../../plugins/agent/store/file';
import { type LeaseAttrs, SUBNET_TTL_MS, systemClock, vxlanBackendData } from '../../plugins/agent/store/lease';
import { parseNetwork as parseCidr } from '../../plugins/pkg/ip';
import { Cluster, peerEntries, peerState, waitFor } from './flaxd-helpers';

const N = 1000;
const hex = (n: number) => n.toString(16).padStart(2, '0');
interface Peer { prefix: string; mac: string; ip: string }
const peer = (k: number, gen = 0): Peer => ({
  prefix: `10.${100 + (k >> 8)}.${k & 255}`,
  mac: `02:${hex(0xa0 + gen)}:00:${hex(k >> 8)}:${hex(k & 255)}:01`,
  ip: `172.${16 + gen}.${k >> 7}.${(k & 127) + 1}`,
});
const attrs = (p: Peer): LeaseAttrs => ({ publicIP: p.ip, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: p.mac }) });

describe('flaxd with 1000 peers (store events only)', () => {
  const cl = new Cluster();
  beforeAll(async () => {
    await cl.create(1, { Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } });
    cl.startAgent(cl.nodes[0], ['--reconcile-interval', '3600']);
    await cl.waitReady(cl.nodes[0]);
  });
  afterAll(() => cl.destroy());

  const converged = (want: Peer[]) => waitFor(`${want.length} peers exactly on flannel.1`, () => {
    const s = peerState(cl.nodes[0].ns);
    return s.routes.length === want.length && s.neighs.length === want.length && s.fdb.length === want.length && s;
  }, 120_000, 500);

  it('programs 1000 new peers, then removes half and re-points a tenth, entry for entry', async () => {
    const store = new FileLeaseStore({ dir: cl.leaseDir, clock: systemClock, relistMs: 3_600_000 });
    const peers = Array.from({ length: N }, (_, k) => peer(k));
    for (const p of peers) await store.create(parseCidr(`${p.prefix}.0/24`), undefined, attrs(p), SUBNET_TTL_MS);
    expect(await converged(peers)).toEqual(peerEntries(peers));

    const kept: Peer[] = [];
    for (const [k, p] of peers.entries()) {
      if (k % 2) await store.delete(parseCidr(`${p.prefix}.0/24`), undefined);
      else if (k % 10 === 0) {
        const moved = peer(k, 1);
        await store.update(parseCidr(`${p.prefix}.0/24`), undefined, attrs(moved), SUBNET_TTL_MS);
        kept.push(moved);
      } else kept.push(p);
    }
    // the half removed must be gone and the moved ones replaced: wait for the exact set
    await waitFor('the removals and replacements', () => {
      const s = peerState(cl.nodes[0].ns);
      return JSON.stringify(s) === JSON.stringify(peerEntries(kept)) && s;
    }, 120_000, 500).catch(() => undefined);
    expect(peerState(cl.nodes[0].ns)).toEqual(peerEntries(kept));
    expect(cl.nodes[0].agent!.log()).not.toMatch(/^E\d{4} /m);
  });
});
