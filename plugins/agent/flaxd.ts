/**
 * flaxd, the daemon (main.ts parses the flags and calls runFlaxd): the
 * overlay agent (agent.ts) with the resident CNI server beside it, or the
 * server alone. The server (plugins/pkg/cniserver), as flaxd runs it:
 *  - `--cni-socket PATH` (default /run/flax/cni.sock; '' = none): the socket
 *    dist/bin's plugin clients call. With the overlay the server starts once
 *    subnet.env is written; a socket another live server holds is skipped
 *    with a warning (the clients reach that one), any other failure logged
 *    (the clients fall back to the standalone plugins) — the overlay runs
 *    anyway;
 *  - `--no-overlay`: only the CNI server, the sweeper and the health server
 *    (no lock, lease, store, device or subnet file); there a busy socket is
 *    fatal (exit 1);
 *  - per-plugin, per-verb latency histograms on /metrics, and the calls
 *    handed back to the standalone plugin, by reason;
 *  - a socket path holding something else than a socket, or a symbolic link
 *    at `<socket>.lock`, is refused before anything starts (exit 1).
 */
import { tmpdir } from 'node:os';
import type { Counter, Histogram } from 'prom-client';
import { lstatSync } from 'node:fs';
import { checkSocketPath, type CniServer, CniSocketBusyError, HAND_BACK_REASONS, startCniServer } from '../pkg/cniserver/server';
import { ConfigError } from './config';
import { type AgentOptions } from './flags';
import { startHealthServer } from './health';
import { type Logger } from './log';
import { AgentMetrics } from './metrics';
import { NodeSweeper, sweeperOptions } from './sweeper';
import { type AgentDeps, runAgent } from './agent';
import { signalReady, takeListenFd, takeReadyFd, untilIdle } from './activation';

/** Latency buckets (seconds): a served call takes 2–100 ms, a slow IPAM lock or exec longer. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface CniMetrics {
  duration: Histogram<'plugin' | 'verb'>;
  errors: Counter<'plugin' | 'verb'>;
  handedBack: Counter<'reason'>;
}

/** The CNI server's series, registered in the agent's registry. */
export async function cniMetrics(metrics: AgentMetrics, server: () => CniServer | undefined): Promise<CniMetrics> {
  const { Counter, Gauge, Histogram } = await import('prom-client');
  const registers = [metrics.registry];
  new Gauge({
    name: 'flaxd_cni_server_workers', help: 'Worker threads of the resident CNI server (absent: no server)', registers,
    collect() {
      const s = server();
      if (s) this.set(s.stats().workers);
    },
  });
  return {
    duration: new Histogram({ name: 'flaxd_cni_request_duration_seconds', help: 'CNI calls served by the resident CNI server, by plugin and verb (CNI_COMMAND): seconds from the request read to the reply', labelNames: ['plugin', 'verb'] as const, buckets: BUCKETS, registers }),
    errors: new Counter({ name: 'flaxd_cni_request_errors_total', help: 'CNI calls the resident CNI server answered with a non-zero exit (a CNI error)', labelNames: ['plugin', 'verb'] as const, registers }),
    handedBack: handedBackCounter(Counter, registers),
  };
}

/** The CNI_COMMANDs of the spec (1.1); anything else is counted as one `other` value, never a new series. */
const CNI_VERBS = new Set(['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS']);
export const verbLabel = (verb: string): string => (CNI_VERBS.has(verb) ? verb : 'other');

/** Every reason present from the start (0): a rate() sees the first hand-back. */
function handedBackCounter(C: typeof Counter, registers: AgentMetrics['registry'][]): Counter<'reason'> {
  const c = new C({ name: 'flaxd_cni_calls_handed_back_total', help: 'CNI calls the resident CNI server handed back to the client\'s standalone plugin, having done nothing: the caller sees a path of the call otherwise (mount_namespace), its CNI_NETNS path is another netns here and the call may exec (netns_path), its netns could not be entered (setns)', labelNames: ['reason'] as const, registers });
  for (const reason of HAND_BACK_REASONS) c.inc({ reason }, 0);
  return c;
}

/**
 * Starts the server on o.cniSocket; undefined when turned off, or when
 * another live server holds the socket and `required` is false (logged).
 */
export async function startAgentCniServer(o: AgentOptions, log: Logger, metrics: AgentMetrics | (() => Promise<AgentMetrics>), required: boolean): Promise<CniServer | undefined> {
  if (!o.cniSocket) {
    log.info('cni server: off (--cni-socket \'\'): plugin clients run the standalone plugins');
    return undefined;
  }
  let srv: CniServer | undefined;
  let m: CniMetrics | undefined;
  const listenFd = takeListenFd();
  // the client that started this flaxd waits for the socket to listen (not for the first worker)
  let readyFd = takeReadyFd(process.env, listenFd);
  const ready = (listening: boolean) => {
    signalReady(readyFd, listening);
    readyFd = undefined;
  };
  // what calls answered before the metrics loaded are observed once they have
  const early: ((m: CniMetrics) => void)[] = [];
  const observe = (f: (m: CniMetrics) => void) => (m ? f(m) : early.length < 10_000 && early.push(f));
  try {
    // the server's first worker starts (and its socket listens) before the metrics load (prom-client: a
    // function of metrics is called then): an auto-started server's first call waits for that worker (issue 24);
    // with --no-overlay the first calls are served on this thread meanwhile, and the metrics load after them
    const starting = startCniServer({
      socket: o.cniSocket,
      listenFd,
      onListening: () => ready(true),
      // --no-overlay: nothing else runs on this thread until the server is up (the sweeper starts after it)
      serveWhileStarting: o.noOverlay,
      log: (msg) => log.info(msg),
      onCall(plugin, verb, seconds, code) {
        const labels = { plugin: plugin.slice(0, 64), verb: verbLabel(verb) };
        observe((m) => {
          m.duration.observe(labels, seconds);
          if (code !== 0) m.errors.inc(labels);
        });
      },
      onHandBack: (reason) => observe((m) => m.handedBack.inc({ reason })),
    });
    starting.catch(() => {}); // awaited below, after the metrics
    try {
      if (o.noOverlay) await starting.catch(() => {});
      m = await cniMetrics(typeof metrics === 'function' ? await metrics() : metrics, () => srv);
      for (const f of early.splice(0)) f(m);
    } finally {
      srv = await starting;
    }
  } catch (e) {
    ready(false);
    if (!(e instanceof CniSocketBusyError)) throw new ConfigError(`--cni-socket ${o.cniSocket}: ${(e as Error).message}`);
    if (required) throw new ConfigError(`--cni-socket: ${e.message}; one CNI server per socket`);
    log.warn(`cni server: not started: ${e.message}; that server answers the plugin clients (--cni-socket PATH for another socket, '' for none)`);
    return undefined;
  }
  return withHeapSnapshotSignal(srv, log);
}

/**
 * SIGUSR2: heap snapshots of the server's main thread and of every worker,
 * into $FLAX_DIAGNOSTIC_DIR (default the temp dir), to find what calls keep
 * (Node's own --heapsnapshot-signal sees the main thread only).
 */
function withHeapSnapshotSignal(srv: CniServer, log: Logger): CniServer {
  const dir = process.env.FLAX_DIAGNOSTIC_DIR || tmpdir();
  const onSignal = () => {
    srv.writeHeapSnapshots(dir).then(
      (files) => log.info(`cni server: heap snapshots written: ${files.join(' ')}`),
      (e: Error) => log.warn(`cni server: heap snapshots into ${dir}: ${e.message}`),
    );
  };
  process.on('SIGUSR2', onSignal);
  return {
    ...srv,
    stats: () => srv.stats(),
    async close() {
      process.off('SIGUSR2', onSignal);
      await srv.close();
    },
  };
}

/** Stops the server (calls in flight finish) and logs its counts. */
async function closeServer(srv: CniServer | undefined, log: Logger): Promise<void> {
  if (!srv) return;
  await srv.close();
  const st = srv.stats();
  log.info(`cni server: stopped; served ${st.served}, failed ${st.failed}, refused ${st.refused}, deferred ${st.deferred} (to the standalone plugin: another mount namespace)`);
}

/** Resolves when SIGTERM or SIGINT arrives (logged). */
function untilSignal(log: Logger): Promise<number> {
  return new Promise((resolve) => {
    // signal handlers alone do not keep node running (no server, no sweeper: still wait)
    const alive = setInterval(() => {}, 1 << 30);
    const on = (sig: string) => {
      clearInterval(alive);
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      log.info(`${sig}: exiting`);
      resolve(0);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/** `flaxd --no-overlay`: the CNI server, the sweeper and /healthz + /metrics until a signal. */
export async function runCniOnly(o: AgentOptions, log: Logger, afterStart?: () => void): Promise<number> {
  let metrics: AgentMetrics | undefined;
  const loadMetrics = async () => (metrics ??= await AgentMetrics.create());
  let sweeper: NodeSweeper | undefined;
  let srv: CniServer | undefined;
  let healthz: import('node:http').Server | undefined;
  const stop = untilSignal(log);
  try {
    if (o.healthzPort > 0) healthz = await startHealthServer({ ip: o.healthzIp, port: o.healthzPort, metrics: await loadMetrics(), ready: () => srv !== undefined || !o.cniSocket });
    srv = await startAgentCniServer(o, log, loadMetrics, true);
    sweeper = new NodeSweeper(sweeperOptions(o), log, await loadMetrics());
    sweeper.start();
    log.info(`no overlay: ${srv ? `CNI server on ${srv.socket}` : 'no CNI server'}, sweeper ${o.gcInterval > 0 ? `every ${o.gcInterval} s` : 'off'}; running${srv && o.idleExit ? ` until ${o.idleExit / 1000} s without a call (--idle-exit)` : ''}`);
    // the start-up's memory goes back at the server's first quiet moment, not in the middle of the calls that
    // started it (issue 24: a client that started it calls again at once; the release holds this thread ~10 ms)
    const quiet = srv ? untilIdle(srv, 500) : undefined;
    if (quiet) void quiet.done.then(() => afterStart?.());
    else afterStart?.();
    const idle = srv && o.idleExit > 0 ? untilIdle(srv, o.idleExit) : undefined;
    const why = await (idle ? Promise.race([stop, idle.done.then(() => 'idle' as const)]) : stop);
    idle?.cancel();
    quiet?.cancel();
    if (why === 'idle') log.info(`cni server: no call for ${o.idleExit / 1000} s (--idle-exit): exiting`);
    return 0;
  } finally {
    await sweeper?.stop();
    await closeServer(srv, log);
    healthz?.close();
    healthz?.closeAllConnections();
  }
}

/**
 * Before anything starts: a socket path that holds something else than a
 * socket, or a symbolic link at `<socket>.lock`, is a ConfigError naming it.
 */
export function checkCniPaths(o: AgentOptions): void {
  if (!o.cniSocket) return;
  try {
    checkSocketPath(o.cniSocket);
  } catch (e) {
    throw new ConfigError(`--cni-socket: ${(e as Error).message}`);
  }
  const lock = `${o.cniSocket}.lock`;
  let link = false;
  try { link = lstatSync(lock).isSymbolicLink(); } catch { /* absent */ }
  if (link) throw new ConfigError(`--cni-socket: ${lock} is a symbolic link: refusing to use it as a lock file (remove it)`);
}

/** flaxd: the overlay agent with the CNI server beside it, or the CNI server alone (--no-overlay). */
export async function runFlaxd(o: AgentOptions, deps: AgentDeps): Promise<number> {
  checkCniPaths(o);
  if (o.noOverlay) return runCniOnly(o, deps.log, deps.afterStart);
  const metrics = deps.metrics ?? await AgentMetrics.create();
  let srv: CniServer | undefined;
  // once the agent runs (subnet.env written): a refused start made no socket;
  // until then, and if it cannot start, the clients run the standalone plugins
  const onRunning = async () => {
    try {
      srv = await startAgentCniServer(o, deps.log, metrics, false);
    } catch (e) {
      deps.log.error(`cni server: not started: ${(e as Error).message}; the plugin clients run the standalone plugins`);
    }
    deps.afterStart?.();
  };
  try {
    return await runAgent(o, { ...deps, metrics, onRunning });
  } finally {
    await closeServer(srv, deps.log);
  }
}
