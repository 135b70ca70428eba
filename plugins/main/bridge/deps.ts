/** What the bridge plugin is given (tests: fault seam, fake firewall; plugins/suite.ts: how IPAM runs). */
import type { Exec } from '../../pkg/invoke/plugin-exec';
import type { FirewallDeps } from '../../pkg/nft';
import type { FaultHook } from '../../pkg/rollback';
import type { CmdArgs } from '../../pkg/skel/skel';

export interface BridgeDeps {
  /** test seam: called after each named ADD step; throwing fails that step */
  fault?: FaultHook;
  firewall?: FirewallDeps;
  /** port-up wait budget (ms) */
  portWaitMs?: number;
  /** how IPAM runs (default: the Host's exec; plugins/suite.ts passes an InProcessExec) */
  exec?: Exec;
}

/** How the plugin runs its IPAM plugin. */
export const ipamExec = (d: BridgeDeps, a: CmdArgs): Exec => d.exec ?? a.host.exec;
