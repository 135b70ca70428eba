/**
 * IPAM delegation (plugins pkg/ipam/ipam.go): one-line wrappers over
 * pkg/invoke's delegate(), through the Exec the calling plugin's context
 * holds (the composition root, plugins/suite.ts, decides what runs
 * in-process) or, built without one, its Host's (every delegate exec'd).
 */
import { CniError, ErrCode } from '../cni/errors';
import { parseResult } from '../cni/convert';
import type { Result } from '../cni/types';
import type { Exec } from '../invoke/plugin-exec';
import { delegate, delegateValidate } from '../invoke/delegation';
import { type LocalPlugin } from '../invoke/inprocess';
import type { CmdArgs } from '../skel/skel';

export type InProcessPlugin = LocalPlugin;

/** IPAM ADD → the result in canonical form. */
export async function execAdd(exec: Exec, type: string, a: CmdArgs, stdin: string | Buffer, confVersion: string): Promise<Result> {
  const { out } = await delegate(exec, 'ADD', type, a, stdin);
  if (!out) throw new CniError(ErrCode.DecodingFailure, `IPAM plugin ${type} returned no result`);
  const v = typeof out.cniVersion === 'string' ? out.cniVersion : confVersion;
  return parseResult(out, v);
}
export async function execDel(exec: Exec, type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await delegate(exec, 'DEL', type, a, stdin);
}
export async function execCheck(exec: Exec, type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await delegate(exec, 'CHECK', type, a, stdin);
}
export async function execStatus(exec: Exec, type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await delegate(exec, 'STATUS', type, a, stdin);
}
export async function execGc(exec: Exec, type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> {
  await delegate(exec, 'GC', type, a, stdin);
}
/** IPAM ADD's input checks, before the caller's first side effect (see delegateValidate). */
export const execValidate = (exec: Exec, type: string, a: CmdArgs, stdin: string | Buffer): Promise<void> => delegateValidate(exec, type, a, stdin);
