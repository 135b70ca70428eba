/**
 * host-local's warm-up for V8 startup snapshots (skel pluginMain): its
 * config decoding and an allocation against an in-memory store — pure.
 */
import { allocate } from './allocator/allocator';
import { loadHostLocalConf } from './config';
import { FakeStore } from './store/fake-store';

export const WARM_IPAM = { type: 'host-local', ranges: [[{ subnet: '10.22.0.0/16' }], [{ subnet: 'fd00::/64' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/nonexistent' };

export function warmHostLocal(): void {
  const conf = loadHostLocalConf(JSON.stringify({ cniVersion: '1.0.0', name: 'warm', type: 'bridge', ipam: WARM_IPAM }), { cniArgs: '', requested: true });
  allocate(new FakeStore(), conf.rangeSets, { id: 'warm', ifname: 'eth0' }, conf.requested);
}
