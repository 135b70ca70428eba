/**
 * The CNI server's plugins on its main thread while its first worker starts
 * (pool.ts serveInline): the package's snapshot holds them already; from
 * dist/bin the worker script (cni-worker.js, scripts/cni-worker-bundle.mjs)
 * is loaded here, compiled with V8's code cache of exactly
 * `Module.wrap(source)` (cni-worker.cache beside it, made at build time; a
 * cache V8 rejects, or none, is a plain compile).
 */
import type { FlaxNative } from '../native';
import type { PoolJob, WorkerPool } from './pool';
import type { CallSite, WorkerReply, WorkerRequest } from './worker';

const codeCacheFile = (script: string): string => script.replace(/\.js$/, '') + '.cache';

/** What cni-worker.js exports to a main thread (plugins/bin/cni-worker.ts). */
export interface InlineServer {
  serve(m: WorkerRequest): Promise<WorkerReply>;
  /** fd of the thread's own netns (the caller closes it) */
  own: number;
}

/** The package's snapshot holds the inline server already (scripts/package.mjs's multi-call entry). */
declare const __flaxInlineServer: ((answer: CallSite['answer']) => InlineServer) | undefined;

/** The worker script's inline server on this thread: the one in the package's snapshot, else `script` loaded here. */
export function inlineServer(script: string, answer: CallSite['answer']): InlineServer {
  if (typeof __flaxInlineServer === 'function') return __flaxInlineServer(answer);
  return loadWorkerScript(script, answer);
}

/**
 * Loads `script` on this thread (not into require's cache: once dropped, its
 * code can be collected) and returns its inline server.
 */
function loadWorkerScript(script: string, answer: CallSite['answer']): InlineServer {
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

/**
 * The main thread serves (pool.serveInline) until a worker runs: the
 * worker script loaded here; a thread that cannot come back to its own
 * netns after a call stops the process (its socket first: the clients run
 * the standalone plugins, or start another server).
 */
export function serveInline<J extends PoolJob>(pool: WorkerPool<J>, workerFile: string, n: FlaxNative, log: (msg: string) => void): void {
  let inline: InlineServer;
  try {
    inline = inlineServer(workerFile, (m, stdout, stderr, exitCode) => n.cniReply(m.conn, Buffer.from(stdout), Buffer.from(stderr), exitCode));
  } catch (e) {
    log(`cni server: calls wait for the first worker (${(e as Error).message})`);
    return;
  }
  // libuv's thread pool starts at its first job, in the netns of the thread that submits it: here, now, not
  // during a call (its threads would stay in a caller's netns)
  process.getBuiltinModule('node:fs').access('/', () => {});
  let served = 0;
  pool.serveInline({
    async serve(m) {
      served++;
      const reply = await inline.serve(m);
      if (reply.stranded) {
        log('cni server: the main thread could not return to its network namespace after a call: exiting');
        process.exit(1);
      }
      return reply;
    },
    retire() {
      closeQuietly(inline.own);
      if (served) log(`cni server: ${served} call(s) served on the main thread while the first worker started`);
    },
  });
}

/** Closes `fd`; one already closed is not an error (the server's connections and passed fds, the inline server's netns). */
export function closeQuietly(fd: number): void {
  try {
    process.getBuiltinModule('node:fs').closeSync(fd);
  } catch { /* already closed */ }
}
