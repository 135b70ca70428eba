/**
 * The conflists `flax install --network NAME` writes, and the file names
 * they get. flannel's is kube-flannel.yml's cni-conf.json (FLANNEL-NOTES
 * "Deployment") under kube-flannel's name, so installing flax over flannel
 * replaces the file rather than adding a second network. bridge's is
 * conf/10-flax-bridge.conflist (a unit test keeps them equal).
 *
 * Each says `"cniVersion": "1.0.0"` with `"cniVersions": ["1.0.0", "1.1.0"]`:
 * libcni 1.1.x (podman 4, containerd 1.6/1.7, cnitool 1.1.2) ignores
 * cniVersions and cannot read a 1.1.0 result, libcni ≥ 1.2 (and flax's)
 * picks 1.1.0 (conflists.test.ts, test/e2e/conflists-podman.test.ts).
 */
import { UsageError } from '../usage';

export const NETWORKS = ['bridge', 'flannel'] as const;
export type NetworkName = (typeof NETWORKS)[number];

export const FLANNEL_CONFLIST = {
  name: 'cbr0',
  cniVersion: '1.0.0',
  cniVersions: ['1.0.0', '1.1.0'],
  plugins: [
    { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};

export const BRIDGE_CONFLIST = {
  cniVersion: '1.0.0',
  cniVersions: ['1.0.0', '1.1.0'],
  name: 'flax-bridge',
  plugins: [
    { type: 'loopback' },
    {
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.22.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] },
    },
  ],
};

export const NETWORK_CONFLISTS: Record<NetworkName, { file: string; conf: object }> = {
  flannel: { file: '10-flannel.conflist', conf: FLANNEL_CONFLIST },
  bridge: { file: '10-flax-bridge.conflist', conf: BRIDGE_CONFLIST },
};

/** The bytes written for a conflist: indented JSON with a final newline. */
export const renderConflist = (conf: object) => JSON.stringify(conf, null, 2) + '\n';

/**
 * Checks a conflist given with --conflist (before anything is written):
 * JSON with a "name" and a non-empty "plugins" of objects with a "type".
 * Returns its name.
 */
export function checkConflist(text: string, file: string): string {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--conflist ${file}: not JSON (${(e as Error).message})`);
  }
  const c = j as { name?: unknown; plugins?: unknown };
  if (typeof c !== 'object' || c === null || typeof c.name !== 'string' || !c.name) throw new UsageError(`--conflist ${file}: no "name"`);
  if (!Array.isArray(c.plugins) || !c.plugins.length || c.plugins.some((p) => typeof p?.type !== 'string' || !p.type)) {
    throw new UsageError(`--conflist ${file}: "plugins" must be a non-empty list of objects with a "type"`);
  }
  return c.name;
}

/** The file name a --conflist FILE is installed under when --conf-name is not given. */
export function conflistFileName(file: string, networkName: string): string {
  const base = file.split('/').pop() ?? file;
  return base.endsWith('.conflist') ? base : `10-${networkName}.conflist`;
}
