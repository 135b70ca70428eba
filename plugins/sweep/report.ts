/**
 * What a sweep of the node takes and tells (sweep.ts): its options, the
 * plugins it runs in-process, and its report of findings.
 */
import type { Exec } from '../pkg/invoke/plugin-exec';
import type { FirewallDeps } from '../pkg/nft';

/**
 * How a sweep runs our plugins in-process for its DELs and GCs: one Exec
 * for whole chains, whose bridge uses `firewall` (the composition root,
 * plugins/suite.ts, builds it).
 */
export type SweepPlugins = (firewall: FirewallDeps) => Exec;

export interface SweepOptions {
  confDir: string;
  cacheDir: string;
  /** CNI_PATH for the DELs and GCs */
  cniPath: string[];
  /** only these networks (empty: all) */
  networks: string[];
  minAgeMs: number;
  dryRun: boolean;
  now?: number;
  firewall?: FirewallDeps;
  /** sandbox root of `flax sandbox` (default: $FLAX_SANDBOX_DIR or /run/flax/sandboxes) */
  sandboxDir?: string;
}

export type FindingKind = 'sandbox' | 'attachment' | 'masquerade' | 'portmap' | 'reservation';

export interface Finding {
  kind: FindingKind;
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  address: string;
  /** why it is judged dead (or, in `kept`, alive) */
  reason: string;
  action: 'removed' | 'would remove' | 'failed' | 'kept';
  /** what was removed, e.g. "DEL bridge+host-local" or the fallback's steps */
  removed?: string;
  error?: string;
}

export interface SweepReport {
  findings: Finding[];
  /** attachments judged alive (or undecidable), with the reason */
  kept: Finding[];
  /** problems that stopped part of the sweep (unreadable config, nft failure, GC errors, …) */
  errors: string[];
  /**
   * Set when this sweeper cannot see the node's netns pins (liveness.ts
   * blindView): why, and how many attachments it kept that a missing netns
   * path alone would have judged dead.
   */
  blind?: { reason: string; kept: number };
  /** Set when nothing was swept at all, and why (no network configuration found). */
  skipped?: string;
}

