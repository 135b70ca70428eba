/**
 * host-local's warm-up for V8 startup snapshots (skel pluginMain): its
 * config decoding and an allocation against an empty store — pure.
 */
import { allocate } from './allocator/allocator';
import { loadHostLocalConf } from './config';
import type { Store } from './store/store';

export const WARM_IPAM = { type: 'host-local', ranges: [[{ subnet: '10.22.0.0/16' }], [{ subnet: 'fd00::/64' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/nonexistent' };

/** A store with nothing reserved that takes every reservation and keeps none. */
const emptyStore = (): Store => ({ reserve: () => true, release: () => {}, lastReservedIP: () => null, getByOwner: () => [], releaseByOwner: () => [] });

export function warmHostLocal(): void {
  const conf = loadHostLocalConf(JSON.stringify({ cniVersion: '1.0.0', name: 'warm', type: 'bridge', ipam: WARM_IPAM }), { cniArgs: '', requested: true });
  allocate(emptyStore(), conf.rangeSets, { id: 'warm', ifname: 'eth0' }, conf.requested);
}
