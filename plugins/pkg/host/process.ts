/** The Host of a plugin executable (snapshot launcher, bundle, multi-call binary): this process's own. */
import { openSync, constants } from 'node:fs';
import { RawExec } from '../invoke/plugin-exec';
import { native } from '../native';
import { toolsFor } from '../nft/tools';
import type { Host } from './host';

export const SYSCTL_ROOT = '/proc/sys';

/** open(2) O_RDONLY of a netns path in this process's view. */
export const openNetnsFile = (nsPath: string): number => openSync(nsPath, constants.O_RDONLY);

/** This process as a plugin's Host (`env` and `stderr` replaceable for a caller that brings its own). */
export function processHost(env: Readonly<Record<string, string | undefined>> = process.env, stderr: Host['stderr'] = process.stderr): Host {
  return {
    env,
    stderr,
    openNetnsFile,
    sysctlRoot: SYSCTL_ROOT,
    tools: toolsFor(env),
    exec: new RawExec(),
    now: Date.now,
    native,
  };
}
