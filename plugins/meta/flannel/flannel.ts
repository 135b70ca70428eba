/**
 * flannel: the meta-plugin of flannel's conflist. Reads the agent's subnet
 * file, renders the delegate config (config.ts), keeps it in
 * `<dataDir>/<containerID>` for DEL, and delegates every verb to the plugin
 * the config names (bridge by default) — exec'd from CNI_PATH, or run
 * in-process when the binary found is one of ours and the composition
 * root (plugins/suite.ts) handed it over (the Exec in its context, pkg/invoke/delegation.ts).
 *
 * Better than the reference: the file is written atomically (temp + fsync
 * + rename) and a failed ADD restores what was there before (the reference
 * leaves the new file, or overwrites the one a live pod's DEL needs);
 * CHECK, STATUS and GC are implemented (the reference's CHECK is a no-op).
 */
import { mkdirSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { writeFileAtomic } from '../../pkg/atomic';
import path from 'node:path';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { parseJsonObject } from '../../pkg/cni/conf';
import { parseResult } from '../../pkg/cni/convert';
import type { Result } from '../../pkg/cni/types';
import { delegate } from '../../pkg/invoke/delegation';
import type { Exec } from '../../pkg/invoke/plugin-exec';
import { log } from '../../pkg/log';
import { type CmdArgs, type PluginFuncs, bindPlugin } from '../../pkg/skel/skel';
import { validAttachments } from '../../pkg/cni/gc';
import { type FlannelConf, delegateBytes, loadFlannelConf, renderDelegate } from './config';
import { loadSubnetEnv } from './subnet-env';

const LABEL = 'delegate plugin';
/** Files younger than this survive GC: an ADD in flight is not yet known to the runtime. */
export const GC_GRACE_MS = 5_000;
const ID_FILE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const fileOf = (n: FlannelConf, id: string) => path.join(n.dataDir, id);

function readStored(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Writes the file atomically: dir 0700, file 0600, fsync'd before the rename. */
function writeStored(dataDir: string, file: string, text: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileAtomic(file, text, 0o600);
  } catch (e) {
    throw new CniError(ErrCode.IOFailure, `cannot save the delegate config in ${file}: ${(e as Error).message}`);
  }
}

function removeStored(file: string): void {
  try { unlinkSync(file); } catch { /* gone */ }
}

const typeOf = (conf: Record<string, unknown>) => (typeof conf.type === 'string' ? conf.type : 'bridge');

export async function cmdAdd(a: CmdArgs, exec: Exec): Promise<Result> {
  const n = loadFlannelConf(a.stdin);
  const env = loadSubnetEnv(n.subnetFile, ErrCode.TryAgainLater);
  const d = renderDelegate(n, env);
  const text = delegateBytes(d);
  const file = fileOf(n, a.containerId);
  const before = readStored(file);
  writeStored(n.dataDir, file, text);
  try {
    const { out } = await delegate(exec, 'ADD', typeOf(d), a, text, LABEL);
    if (!out) throw new CniError(ErrCode.DecodingFailure, `${LABEL} ${typeOf(d)} returned no result`);
    return parseResult(out, typeof out.cniVersion === 'string' ? out.cniVersion : n.cniVersion);
  } catch (e) {
    // undo only our write: a live pod of this id keeps the file its DEL needs
    if (before === null) removeStored(file);
    else writeStored(n.dataDir, file, before);
    throw e;
  }
}

export async function cmdDel(a: CmdArgs, exec: Exec): Promise<void> {
  const n = loadFlannelConf(a.stdin);
  const file = fileOf(n, a.containerId);
  const text = readStored(file);
  if (text === null) return; // never added, or already deleted
  let conf: Record<string, unknown>;
  try {
    conf = parseJsonObject(text, 'stored delegate config');
  } catch (e) {
    log('flannel', `DEL: ${file}: ${(e as Error).message}; nothing to delegate`);
    return;
  }
  await delegate(exec, 'DEL', typeOf(conf), a, text, LABEL);
  removeStored(file);
}

export async function cmdCheck(a: CmdArgs, exec: Exec): Promise<void> {
  const n = loadFlannelConf(a.stdin);
  const file = fileOf(n, a.containerId);
  const text = readStored(file);
  if (text === null) throw new CniError(ErrCode.UnknownContainer, `flannel: no delegate config for container ${a.containerId} in ${n.dataDir}`);
  const conf = parseJsonObject(text, 'stored delegate config');
  if (n.prevResult !== undefined) conf.prevResult = n.prevResult;
  await delegate(exec, 'CHECK', typeOf(conf), a, JSON.stringify(conf), LABEL);
}

export async function cmdStatus(a: CmdArgs, exec: Exec): Promise<void> {
  const n = loadFlannelConf(a.stdin);
  const env = loadSubnetEnv(n.subnetFile, ErrCode.PluginNotAvailable, ErrCode.PluginNotAvailable);
  const d = renderDelegate(n, env);
  await delegate(exec, 'STATUS', typeOf(d), a, delegateBytes(d), LABEL);
}

export async function cmdGc(a: CmdArgs, exec: Exec, now = a.host.now()): Promise<void> {
  const n = loadFlannelConf(a.stdin);
  const valid = validAttachments(a.stdin);
  const errors: string[] = [];
  if (valid) {
    const ids = new Set(valid.map((v) => v.containerID));
    let names: string[] = [];
    try { names = readdirSync(n.dataDir); } catch { /* nothing stored */ }
    for (const id of names) {
      if (!ID_FILE.test(id) || ids.has(id)) continue;
      const file = path.join(n.dataDir, id);
      try {
        const st = statSync(file);
        if (!st.isFile() || now - st.mtimeMs < GC_GRACE_MS) continue;
        unlinkSync(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`${file}: ${(e as Error).message}`);
      }
    }
  }
  // forward GC to the delegate, with the same valid list
  let env;
  try {
    env = loadSubnetEnv(n.subnetFile, ErrCode.TryAgainLater);
  } catch (e) {
    errors.push(`GC not forwarded: ${(e as Error).message}`);
  }
  if (env) {
    const raw = parseJsonObject(a.stdin);
    const d = renderDelegate(n, env);
    for (const k of ['cni.dev/valid-attachments', 'cni.dev/attachments']) if (raw[k] !== undefined) d[k] = raw[k];
    try {
      await delegate(exec, 'GC', typeOf(d), a, delegateBytes(d), LABEL);
    } catch (e) {
      errors.push(`delegate GC: ${(e as Error).message}`);
    }
  }
  if (errors.length) throw new CniError(ErrCode.IOFailure, `flannel GC: ${errors[0]}`, errors.slice(1, 10).join('; '));
}

export interface FlannelDeps {
  /** how the delegate runs (default: the Host's exec; plugins/suite.ts passes an InProcessExec) */
  exec?: Exec;
}

/** The delegate's Exec for a call: the one the plugin was built with, else its Host's. */
const viaExec = <T>(verb: (a: CmdArgs, exec: Exec) => Promise<T>) => (a: CmdArgs, exec: Exec | undefined) => verb(a, exec ?? a.host.exec);

export const createFlannelPlugin = (deps: FlannelDeps = {}): PluginFuncs =>
  bindPlugin({ add: viaExec(cmdAdd), del: viaExec(cmdDel), check: viaExec(cmdCheck), status: viaExec(cmdStatus), gc: viaExec((a, exec) => cmdGc(a, exec)) }, deps.exec);
