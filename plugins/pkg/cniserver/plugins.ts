/**
 * The plugins the resident CNI server serves, by executable name, each with
 * the Exec its own entry point (plugins/<kind>/<name>/main.ts) builds it
 * with — so a call runs exactly as the standalone executable runs it.
 */
import { hostLocalInProcess } from '../../ipam/host-local/in-process';
import { hostLocal } from '../../ipam/host-local/host-local';
import { createBridgePlugin } from '../../main/bridge/bridge';
import { loopbackPlugin } from '../../main/loopback/loopback';
import { createFlannelPlugin } from '../../meta/flannel/flannel';
import { portmapPlugin } from '../../meta/portmap/portmap';
import type { InProcessPlugin } from '../ipam/run-ipam';
import { InProcessExec } from '../invoke/inprocess';
import { about, type About, type PluginFuncs } from '../skel/skel';

export interface ServedPlugin {
  /** built with the Exec its main.ts gives it */
  plugin: PluginFuncs;
  about: About;
  /** the delegates that Exec runs in-process */
  inProcess: Readonly<Record<string, InProcessPlugin>>;
}

/** A plugin built with an InProcessExec of `inProcess`, as its entry point builds it. */
function served(create: (d: { exec: InProcessExec }) => PluginFuncs, name: string, inProcess: Record<string, InProcessPlugin>): ServedPlugin {
  return { plugin: create({ exec: new InProcessExec(inProcess) }), about: about(name), inProcess };
}

const bridge = served(createBridgePlugin, 'bridge', { 'host-local': hostLocalInProcess });

export const SERVED: Readonly<Record<string, ServedPlugin>> = {
  bridge,
  'host-local': { plugin: hostLocal, about: about('host-local'), inProcess: {} },
  loopback: { plugin: loopbackPlugin, about: about('loopback'), inProcess: {} },
  flannel: served(createFlannelPlugin, 'flannel', { bridge: { plugin: bridge.plugin, about: bridge.about }, 'host-local': hostLocalInProcess }),
  portmap: { plugin: portmapPlugin, about: about('portmap'), inProcess: {} },
};

/** Executable names the server answers for (what dist/bin's client stands in for). */
export const SERVED_NAMES: readonly string[] = Object.keys(SERVED);
