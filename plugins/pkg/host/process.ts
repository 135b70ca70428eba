/** The Host of a plugin executable (snapshot launcher, bundle, multi-call binary): this process's own. */
import { RawExec } from '../invoke/plugin-exec';
import { native } from '../native';
import { toolsFor } from '../nft/tools';
import { SYSCTL_ROOT, openNsFile } from '../ns/ns';
import type { Host } from './host';

/** This process as a plugin's Host (`env` and `stderr` replaceable for a caller that brings its own). */
export function processHost(env: Readonly<Record<string, string | undefined>> = process.env, stderr: Host['stderr'] = process.stderr): Host {
  return {
    env,
    stderr,
    openNetnsFile: openNsFile,
    sysctlRoot: SYSCTL_ROOT,
    tools: toolsFor(env),
    exec: new RawExec(),
    now: Date.now,
    native,
  };
}
