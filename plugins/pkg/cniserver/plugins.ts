/**
 * The plugins the resident CNI server serves, by executable name, each with
 * the in-process delegates its own entry point (plugins/<kind>/<name>/main.ts)
 * registers — so a call runs exactly as the standalone executable runs it.
 */
import { hostLocalInProcess } from '../../ipam/host-local/in-process';
import { hostLocal } from '../../ipam/host-local/host-local';
import { bridgePlugin } from '../../main/bridge/bridge';
import { loopbackPlugin } from '../../main/loopback/loopback';
import { flannelPlugin } from '../../meta/flannel/flannel';
import { portmapPlugin } from '../../meta/portmap/portmap';
import type { InProcessPlugin } from '../ipam/delegate';
import { about, type About, type PluginFuncs } from '../skel/skel';

export interface ServedPlugin {
  plugin: PluginFuncs;
  about: About;
  /** what its main.ts passes to registerInProcess */
  inProcess: Readonly<Record<string, InProcessPlugin>>;
}

export const SERVED: Readonly<Record<string, ServedPlugin>> = {
  bridge: { plugin: bridgePlugin, about: about('bridge'), inProcess: { 'host-local': hostLocalInProcess } },
  'host-local': { plugin: hostLocal, about: about('host-local'), inProcess: {} },
  loopback: { plugin: loopbackPlugin, about: about('loopback'), inProcess: {} },
  flannel: {
    plugin: flannelPlugin, about: about('flannel'),
    inProcess: { bridge: { plugin: bridgePlugin, about: about('bridge') }, 'host-local': hostLocalInProcess },
  },
  portmap: { plugin: portmapPlugin, about: about('portmap'), inProcess: {} },
};

/** Executable names the server answers for (what dist/bin's client stands in for). */
export const SERVED_NAMES: readonly string[] = Object.keys(SERVED);
