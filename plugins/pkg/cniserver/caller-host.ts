/**
 * The Host a worker of the resident CNI server runs a call on: the
 * caller's environment, stderr captured for the caller, CNI_NETNS opened
 * as the CALLER opened it, net sysctls through the caller's /proc when the
 * server's own is read-only. Nothing global is set for a call: the worker
 * passes this Host to handle() and drops it.
 */
import fs from 'node:fs';
import { getSystemErrorMap } from 'node:util';
import type { Host, HostStderr } from '../host/host';
import { processHost } from '../host/process';
import { openNsFile, type NetnsOpener } from '../ns/ns';

/** How CNI_NETNS resolved for the caller: the fd the client opened (in this process), or the errno of its failed open. */
export type CallerNetns = { fd: number } | { errno: number };

/**
 * open(2) for a caller: `nsPath` (its CNI_NETNS) reopens the fd the client
 * sent, or fails with the client's errno as fs.openSync would on that path
 * (every message still names the path the runtime gave); any other path
 * opens in this process's view.
 */
export function callerNetnsOpener(nsPath: string, how: CallerNetns): NetnsOpener {
  return (p) => {
    if (p !== nsPath) return openNsFile(p);
    if ('fd' in how) return fs.openSync(`/proc/self/fd/${how.fd}`, fs.constants.O_RDONLY);
    const [code, desc] = getSystemErrorMap().get(-how.errno) ?? ['EUNKNOWN', 'unknown error'];
    const e = new Error(`${code}: ${desc}, open '${nsPath}'`) as NodeJS.ErrnoException;
    Object.assign(e, { errno: -how.errno, code, syscall: 'open', path: nsPath });
    throw e;
  };
}

export interface CallerHostOptions {
  env: Record<string, string>;
  stderr: HostStderr;
  /** CNI_NETNS as the client opened it (absent: the path opens here) */
  netns?: CallerNetns;
  /** the caller's /proc/sys (absent: this process's) */
  sysctlRoot?: string;
}

/** The Host of one call from a caller. */
export function callerHost(o: CallerHostOptions): Host {
  const host = processHost(o.env, o.stderr);
  const netns = o.env.CNI_NETNS;
  return {
    ...host,
    ...(o.netns && netns?.startsWith('/') ? { openNetnsFile: callerNetnsOpener(netns, o.netns) } : {}),
    ...(o.sysctlRoot ? { sysctlRoot: o.sysctlRoot } : {}),
  };
}
