/**
 * A sandbox's networks, attached and detached through the libcni-equivalent
 * library (plugins/pkg/invoke) exactly as `flax cni` does: the chain runs
 * with CNI_CONTAINERID = the sandbox's container id and CNI_NETNS = its
 * pinned net namespace, and the final result is cached (cniCacheV1), so
 * `flax cni`, `flax status` and `flax gc` see the attachment.
 */
import { Writable } from 'node:stream';
import { confListFromBytes, type NetworkConfigList } from '../pkg/invoke/conf';
import { readCache } from '../pkg/invoke/cache';
import { CniConfig } from '../pkg/invoke/api';
import type { RawResult, RuntimeConf } from '../pkg/invoke/result';
import type { NetworkState, SandboxState } from './state';

export interface CniIo {
  /** overrides the CNI_PATH recorded in the state */
  cniPath?: string[];
  /** where plugins' stderr goes (default process.stderr; null = captured only) */
  stderr?: NodeJS.WritableStream | null;
  env?: NodeJS.ProcessEnv;
}

function cniOf(s: SandboxState, io: CniIo): CniConfig {
  return new CniConfig({ path: io.cniPath ?? s.cni.path, cacheDir: s.cni.cacheDir, stderr: io.stderr, env: io.env });
}

function runtimeConf(s: SandboxState, n: NetworkState): RuntimeConf {
  const rt: RuntimeConf = { containerId: s.containerId, netns: s.namespaces.net!, ifName: n.ifName };
  if (n.args?.length) rt.args = n.args;
  if (n.capabilityArgs) rt.capabilityArgs = n.capabilityArgs;
  return rt;
}

/** The list a network was added with (the bytes recorded in the state). */
export function listOf(n: NetworkState): NetworkConfigList {
  return confListFromBytes(Buffer.from(n.config, 'base64'));
}

/** ADD the network's chain into the sandbox; returns the (cached) final result. */
export async function attachNetwork(s: SandboxState, n: NetworkState, io: CniIo = {}): Promise<RawResult> {
  return cniOf(s, io).addNetworkList(listOf(n), runtimeConf(s, n));
}

/**
 * DEL the network's chain (reverse order, cached result as prevResult). When
 * the libcni cache holds the attachment, its config bytes are used — what
 * ADD ran, as libcni's GC does — else the bytes recorded in the state.
 */
export async function detachNetwork(s: SandboxState, n: NetworkState, io: CniIo = {}): Promise<void> {
  const cni = cniOf(s, io);
  const cached = readCache(cni.cacheDir, listOf(n).name, s.containerId, n.ifName);
  const list = cached.kind === 'v1' ? confListFromBytes(cached.info.config) : listOf(n);
  await cni.delNetworkList(list, runtimeConf(s, n));
}

/** A Writable that hands plugins' stderr to a line printer (for the CLI). */
export function stderrTo(write: (s: string) => void): Writable {
  return new Writable({ write: (chunk: Buffer, _enc, done) => { write(chunk.toString('utf8')); done(); } });
}
