/**
 * The CNI server's plugins on its main thread while its first worker starts
 * (pool.ts serveInline): the package's snapshot holds them already; from
 * dist/bin the worker script (cni-worker.js, scripts/cni-worker-bundle.mjs)
 * is loaded here, compiled with V8's code cache of exactly
 * `Module.wrap(source)` (cni-worker.cache beside it, made at build time; a
 * cache V8 rejects, or none, is a plain compile).
 */
import type { CallSite, WorkerReply, WorkerRequest } from './worker';

export const codeCacheFile = (script: string): string => script.replace(/\.js$/, '') + '.cache';

/** What cni-worker.js exports to a main thread (plugins/bin/cni-worker.ts). */
export interface InlineServer {
  serve(m: WorkerRequest): Promise<WorkerReply>;
  /** fd of the thread's own netns (the caller closes it) */
  own: number;
}

/** The package's snapshot holds the inline server already (scripts/package.mjs's multi-call entry). */
declare const __flaxInlineServer: ((answer: CallSite['answer']) => InlineServer) | undefined;

/**
 * The worker script's inline server on this thread: the one in the
 * package's snapshot, else `script` loaded here (not into require's cache:
 * once dropped, its code can be collected).
 */
export function inlineServer(script: string, answer: CallSite['answer']): InlineServer {
  if (typeof __flaxInlineServer === 'function') return __flaxInlineServer(answer);
  return loadWorkerScript(script, answer);
}

/**
 * Loads `script` on this thread (not into require's cache: once dropped, its
 * code can be collected) and returns its inline server.
 */
export function loadWorkerScript(script: string, answer: CallSite['answer']): InlineServer {
  const fs = process.getBuiltinModule('node:fs');
  const vm = process.getBuiltinModule('node:vm');
  const path = process.getBuiltinModule('node:path');
  const Module = process.getBuiltinModule('node:module') as unknown as typeof import('node:module') & {
    new (id: string, parent: null): { exports: Record<string, unknown>; filename: string; paths: string[] };
    _nodeModulePaths(dir: string): string[];
    wrap(src: string): string;
  };
  let cachedData: Buffer | undefined;
  try {
    cachedData = fs.readFileSync(codeCacheFile(script));
  } catch { /* none: a plain compile */ }
  const m = new Module(script, null);
  m.filename = script;
  m.paths = Module._nodeModulePaths(path.dirname(script));
  const fn = new vm.Script(Module.wrap(fs.readFileSync(script, 'utf8')), { filename: script, cachedData }).runInThisContext() as (...a: unknown[]) => void;
  fn.call(m.exports, m.exports, Module.createRequire(script), m, script, path.dirname(script));
  const make = m.exports.inlineServer as ((a: CallSite['answer']) => InlineServer) | undefined;
  if (typeof make !== 'function') throw new Error(`${script}: exports no inlineServer`);
  return make(answer);
}
