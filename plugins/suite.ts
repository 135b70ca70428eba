/**
 * The composition root: every plugin of the suite built with its delegates
 * and deps, in one place. The executables' entry points (plugins/bin/), the
 * resident CNI server's worker (plugins/bin/cni-worker.ts) and main
 * thread (inlineServer), the node
 * sweeper (`flax gc`, flaxd's) and the CLI take their plugins from here;
 * nothing below this module imports a plugin, and a plugin never wires
 * another.
 *
 * What runs in-process: bridge runs our host-local in-process, flannel our
 * bridge (and, through it, host-local) — each only when CNI_PATH resolves
 * the delegate to our executable (InProcessExec), so a call runs as the
 * chain of standalone executables would.
 *
 * Bundles take only what their entry uses (package.json "sideEffects":
 * false): dist/bin/bridge carries no flannel, portmap or sweeper.
 */
import type { Exec } from './pkg/invoke/plugin-exec';
import type { InlineServer } from './pkg/cniserver/inline';
import { type CallSite, serveCall, threadSite } from './pkg/cniserver/worker';
import { InProcessExec, type LocalPlugin } from './pkg/invoke/inprocess';
import type { FirewallDeps } from './pkg/nft';
import type { FaultHook } from './pkg/rollback';
import { about, type PluginFuncs } from './pkg/skel/skel';
import { hostLocalInProcess } from './ipam/host-local/in-process';
import { hostLocal as hostLocalFuncs } from './ipam/host-local/host-local';
import { createBridgePlugin } from './main/bridge/bridge';
import { loopbackPlugin } from './main/loopback/loopback';
import { createFlannelPlugin } from './meta/flannel/flannel';
import { portmapPlugin } from './meta/portmap/portmap';
import { type SweepOptions, type SweepReport, sweepNode as sweepWith } from './sweep/sweep';

/** bridge as dist/bin/bridge runs it: host-local in-process; `fault` is the tests' seam (test/lib/bins). */
export const bridge = (o: { fault?: FaultHook } = {}): PluginFuncs =>
  createBridgePlugin({ exec: new InProcessExec({ 'host-local': hostLocalInProcess }), ...o });

/** flannel as dist/bin/flannel runs it: its bridge delegate and host-local in-process. */
export const flannel = (): PluginFuncs =>
  createFlannelPlugin({ exec: new InProcessExec({ bridge: { plugin: bridge(), about: about('bridge') }, 'host-local': hostLocalInProcess }) });

export const hostLocal: PluginFuncs = hostLocalFuncs;
export const loopback: PluginFuncs = loopbackPlugin;
export const portmap: PluginFuncs = portmapPlugin;

/** The executables the resident CNI server answers for, by name, each built as its entry point builds it. */
export const servedPlugins = (): Readonly<Record<string, LocalPlugin>> => ({
  bridge: { plugin: bridge(), about: about('bridge') },
  'host-local': { plugin: hostLocal, about: about('host-local') },
  loopback: { plugin: loopback, about: about('loopback') },
  flannel: { plugin: flannel(), about: about('flannel') },
  portmap: { plugin: portmap, about: about('portmap') },
});

/**
 * The served plugins on the calling thread: the CNI server's main thread
 * while its first worker starts (pkg/cniserver/inline.ts; from
 * dist/bin/cni-worker.js, or the package's snapshot). `own` (the thread's
 * netns fd) is the caller's to close.
 */
export function inlineServer(answer: CallSite['answer']): InlineServer {
  const plugins = servedPlugins();
  const site = threadSite(answer);
  return { serve: (m) => serveCall(plugins, m, site), own: site.own };
}

/**
 * Every plugin in-process behind one Exec (the sweeper's DELs and GCs of
 * whole chains): flannel's delegate and bridge's IPAM go through it too;
 * bridge uses `firewall`.
 */
export function inProcessSuite(firewall: FirewallDeps): Exec {
  const local: Record<string, LocalPlugin> = {
    'host-local': hostLocalInProcess,
    loopback: { plugin: loopback, about: about('loopback') },
    portmap: { plugin: portmap, about: about('portmap') },
  };
  const exec = new InProcessExec(local);
  local.bridge = { plugin: createBridgePlugin({ firewall, exec }), about: about('bridge') };
  local.flannel = { plugin: createFlannelPlugin({ exec }), about: about('flannel') };
  return exec;
}

/** One sweep of the node (`flax gc`, flaxd's sweeper) with our plugins in-process. */
export const sweepNode = (o: SweepOptions): Promise<SweepReport> => sweepWith(o, inProcessSuite);
