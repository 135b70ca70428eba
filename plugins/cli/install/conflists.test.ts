/**
 * Every conflist flax ships (conf/*.conflist, the DaemonSets' cni-conf.json)
 * or writes (`flax install --network NAME`) must load in the runtimes in the
 * field: libcni 1.1.x (podman 4, containerd 1.6/1.7, cnitool 1.1.2) ignores
 * `cniVersions` and refuses a 1.1.0 result ("unsupported CNI result version
 * 1.1.0"), so `cniVersion` is 1.0.0; libcni ≥ 1.2 (and flax's) picks the
 * highest of `cniVersions` it implements: 1.1.0. The e2e proof through
 * podman's libcni is test/e2e/conflists-podman.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { confListFromBytes } from '../../pkg/invoke/conf';
import { compareVersions } from '../../pkg/cni/version';
import { shippedConflists } from '../../../test/lib/shipped-conflists';

/** the newest version libcni 1.1.x knows (its pkg/version.Current()) */
const LIBCNI_1_1_CURRENT = '1.0.0';

describe('shipped and installed conflists', () => {
  const all = shippedConflists();
  it('covers conf/, flax install and the DaemonSets\' ConfigMaps', () => {
    expect(all.map(([w]) => w)).toEqual(expect.arrayContaining([
      'conf/10-flax-bridge.conflist', 'conf/10-flannel.conflist', 'flax install --network bridge', 'flax install --network flannel',
    ]));
    expect(all.filter(([w]) => w.includes('ConfigMap'))).toHaveLength(2);
  });
  it.each(all)('%s: cniVersion 1.0.0 (libcni 1.1 loads it), cniVersions lets libcni ≥ 1.2 pick 1.1.0', (_what, text) => {
    const raw = JSON.parse(text) as { cniVersion?: string; cniVersions?: string[] };
    expect(raw.cniVersion).toBe('1.0.0');
    expect(compareVersions(raw.cniVersion!, LIBCNI_1_1_CURRENT)).toBeLessThanOrEqual(0);
    expect(raw.cniVersions).toEqual(expect.arrayContaining(['1.0.0', '1.1.0']));
    // flax's libcni (as libcni ≥ 1.2): the highest listed version it implements
    expect(confListFromBytes(text).cniVersion).toBe('1.1.0');
  });
});
