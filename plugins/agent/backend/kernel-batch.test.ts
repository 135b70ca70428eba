import { describe, expect, it } from 'vitest';
import { type BatchRequest, type NetlinkHandle, NetlinkError, NotFoundError } from '../../pkg/netlink';
import { applyVxlanPlan, runBatch } from './kernel-batch';
import { type Logger } from '../log';
import { type Plan } from './vxlan/plan';

const ENOBUFS = 105;
/** A handle whose batch() answers from a script: per request op, the errors of its successive attempts. */
function fakeHandle(script: Record<string, Array<Error | null>>) {
  const rounds: string[][] = [];
  const h = {
    async batch(reqs: readonly BatchRequest[]) {
      const names = reqs.map((r) => `${r.op} ${'route' in r ? r.route.dst : 'neigh' in r ? r.neigh.ip : 'mac' in r ? r.mac : r.ip}`);
      rounds.push(names);
      return names.map((n) => (script[n]?.length ? script[n].shift()! : null));
    },
  };
  return { h: h as unknown as NetlinkHandle, rounds };
}
const noSleep = async () => {};
const enobufs = (op: string) => new NetlinkError(ENOBUFS, op);

describe('runBatch', () => {
  it('resends only what failed transiently (ENOBUFS: its ack was lost), in order, until done or out of attempts', async () => {
    const { h, rounds } = fakeHandle({
      'routeReplace 10.244.2.0/24': [enobufs('r2'), enobufs('r2')],
      'routeReplace 10.244.4.0/24': [enobufs('r4'), enobufs('r4'), enobufs('r4')],
      'routeReplace 10.244.3.0/24': [new NetlinkError(22, 'r3')],
    });
    const reqs: BatchRequest[] = [2, 3, 4, 5].map((i) => ({ op: 'routeReplace', route: { dst: `10.244.${i}.0/24`, gw: `10.244.${i}.0`, oif: 7 } }));
    const res = await runBatch(h, reqs, 3, noSleep);
    expect(rounds).toEqual([
      ['routeReplace 10.244.2.0/24', 'routeReplace 10.244.3.0/24', 'routeReplace 10.244.4.0/24', 'routeReplace 10.244.5.0/24'],
      ['routeReplace 10.244.2.0/24', 'routeReplace 10.244.4.0/24'],
      ['routeReplace 10.244.2.0/24', 'routeReplace 10.244.4.0/24'],
    ]);
    expect(res.map((e) => (e instanceof NetlinkError ? e.code : e))).toEqual([null, 'EINVAL', 'ENOBUFS', null]);
  });

  it('a delete of what is already gone succeeds', async () => {
    const { h } = fakeHandle({ 'neighDel 10.244.2.0': [new NotFoundError(2, 'neighDel')], 'neighSet 10.244.3.0': [new NotFoundError(2, 'neighSet')] });
    const res = await runBatch(h, [{ op: 'neighDel', index: 7, ip: '10.244.2.0' }, { op: 'neighSet', neigh: { index: 7, ip: '10.244.3.0', mac: '02:00:00:00:00:03' } }], 5, noSleep);
    expect(res[0]).toBeNull();
    expect(res[1]).toBeInstanceOf(NotFoundError);
  });
});

describe('applyVxlanPlan', () => {
  it('removals, then every peer in one batch; a failed peer is rolled back (its done entries deleted, newest first) and counted', async () => {
    const { h, rounds } = fakeHandle({ 'fdbSet 02:00:00:00:00:03': [new NetlinkError(22, 'fdbSet')] });
    const peer = (i: number) => ({ subnet: `10.244.${i}.0/24`, gateway: `10.244.${i}.0`, vtepMAC: `02:00:00:00:00:0${i}`, publicIP: `192.168.0.${i}` });
    const plan: Plan = {
      removals: [{ op: 'routeDel', dst: '10.244.9.0/24', gw: '10.244.9.0' }],
      peers: [2, 3].map((i) => ({ peer: peer(i), actions: [
        { op: 'neighSet', ip: `10.244.${i}.0`, mac: `02:00:00:00:00:0${i}` },
        { op: 'fdbSet', mac: `02:00:00:00:00:0${i}`, dst: `192.168.0.${i}` },
        { op: 'routeReplace', dst: `10.244.${i}.0/24`, gw: `10.244.${i}.0` },
      ] })),
    };
    const lines: string[] = [];
    const log: Logger = { error: (m) => lines.push(`E ${m}`), warn: (m) => lines.push(`W ${m}`), info: (m) => lines.push(`I ${m}`), debug: () => {} };
    const o = await applyVxlanPlan(h, { index: 7, name: 'flannel.1' }, plan, log);
    expect(o).toEqual({ repairs: 4, failures: 1, failedPeers: 1 });
    expect(rounds).toEqual([
      ['routeDel 10.244.9.0/24'],
      ['neighSet 10.244.2.0', 'fdbSet 02:00:00:00:00:02', 'routeReplace 10.244.2.0/24', 'neighSet 10.244.3.0', 'fdbSet 02:00:00:00:00:03', 'routeReplace 10.244.3.0/24'],
      ['routeDel 10.244.3.0/24', 'neighDel 10.244.3.0'],
    ]);
    expect(lines).toContain('I flannel.1: delete route 10.244.9.0/24 via 10.244.9.0 (stale)');
    expect(lines).toContain('I flannel.1: peer 10.244.2.0/24 (192.168.0.2): route 10.244.2.0/24 via 10.244.2.0 onlink');
    expect(lines.filter((l) => l.startsWith('E'))).toEqual(['E flannel.1: peer 10.244.3.0/24 (192.168.0.3) failed: fdbSet: EINVAL; rolling back, retrying next round']);
  });
});
