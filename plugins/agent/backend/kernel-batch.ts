/**
 * Planned kernel changes applied in batches (NetlinkHandle.batch): many
 * requests per datagram instead of one round trip each, which is what makes
 * a thousand peers quick. A request that fails with a transient error
 * (ENOBUFS: its reply was lost to a receive buffer overrun; EBUSY, EAGAIN,
 * EINTR) is sent again with the others of its round, in order, after a
 * short backoff; deleting what is already gone is success. Every change is
 * logged, one line each, as the one-by-one code did.
 */
import { type BatchRequest, type NetlinkHandle, NetlinkError, isNotFound } from '../../pkg/netlink';
import { type Logger } from '../log';
import { type RouteAction } from './hostgw/plan';
import { type Action, type Plan, describeAction } from './vxlan/plan';

export const TRANSIENT = new Set(['ENOBUFS', 'EBUSY', 'EAGAIN', 'EINTR']);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a kernel call, retrying transient errors with a short backoff. */
export async function retryKernel<T>(fn: () => Promise<T>, attempts = 5, sleep = pause): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= attempts || !(e instanceof NetlinkError) || !TRANSIENT.has(e.code)) throw e;
      await sleep(10 * 2 ** i);
    }
  }
}

/** One result per request (null = done); transient failures retried up to `attempts` rounds. */
export async function runBatch(h: NetlinkHandle, reqs: readonly BatchRequest[], attempts = 5, sleep = pause): Promise<Array<Error | null>> {
  const out: Array<Error | null> = new Array(reqs.length).fill(null);
  let todo = reqs.map((_, i) => i);
  for (let round = 1; todo.length; round++) {
    const res = await h.batch(todo.map((i) => reqs[i]));
    const again: number[] = [];
    res.forEach((e, k) => {
      const i = todo[k];
      out[i] = e && reqs[i].op.endsWith('Del') && isNotFound(e) ? null : e;
      if (out[i] instanceof NetlinkError && TRANSIENT.has((out[i] as NetlinkError).code) && round < attempts) again.push(i);
    });
    todo = again;
    if (todo.length) await sleep(10 * 2 ** round);
  }
  return out;
}

/** The request of a vxlan plan action on device `index`. */
export function vxlanRequest(index: number, a: Action): BatchRequest {
  switch (a.op) {
    case 'neighSet': return { op: 'neighSet', neigh: { index, ip: a.ip, mac: a.mac } };
    case 'fdbSet': return { op: 'fdbSet', index, mac: a.mac, dst: a.dst };
    case 'routeReplace': return { op: 'routeReplace', route: { dst: a.dst, gw: a.gw, oif: index, onlink: true } };
    case 'routeDel': return { op: 'routeDel', route: { dst: a.dst, gw: a.gw, oif: index } };
    case 'fdbDel': return { op: 'fdbDel', index, mac: a.mac, dst: a.dst };
    case 'neighDel': return { op: 'neighDel', index, ip: a.ip };
  }
}

/** What undoes a set (a peer's partial programming is rolled back). */
export function undoAction(a: Action): Action | null {
  switch (a.op) {
    case 'neighSet': return { op: 'neighDel', ip: a.ip };
    case 'fdbSet': return { op: 'fdbDel', mac: a.mac, dst: a.dst };
    case 'routeReplace': return { op: 'routeDel', dst: a.dst, gw: a.gw };
    default: return null;
  }
}

export interface Outcome {
  repairs: number;
  failures: number;
  /** peers left without their entries (rolled back; retried next round) */
  failedPeers: number;
}

/**
 * A vxlan plan on device `dev`: the removals, then every peer's actions
 * (neighbour → FDB → route each), two batches; a peer with a failed action
 * has what was done for it rolled back.
 */
export async function applyVxlanPlan(h: NetlinkHandle, dev: { index: number; name: string }, plan: Plan, log: Logger): Promise<Outcome> {
  const req = (a: Action) => vxlanRequest(dev.index, a);
  const o: Outcome = { repairs: 0, failures: 0, failedPeers: 0 };
  const rm = await runBatch(h, plan.removals.map(req));
  plan.removals.forEach((a, i) => {
    const e = rm[i];
    if (e) o.failures++;
    else o.repairs++;
    if (e) log.error(`${dev.name}: ${describeAction(a)} failed: ${e.message}`);
    else log.info(`${dev.name}: ${describeAction(a)} (stale)`);
  });
  const res = await runBatch(h, plan.peers.flatMap((p) => p.actions).map(req));
  const undo: Action[] = [];
  let k = 0;
  for (const { peer, actions } of plan.peers) {
    const r = res.slice(k, (k += actions.length));
    const err = r.find((e) => e !== null);
    if (!err) {
      o.repairs += actions.length;
      for (const a of actions) log.info(`${dev.name}: peer ${peer.subnet} (${peer.publicIP}): ${describeAction(a)}`);
      continue;
    }
    o.failures++;
    o.failedPeers++;
    log.error(`${dev.name}: peer ${peer.subnet} (${peer.publicIP}) failed: ${err.message}; rolling back, retrying next round`);
    actions.forEach((a, i) => {
      const u = r[i] === null ? undoAction(a) : null;
      if (u) undo.push(u);
    });
  }
  undo.reverse();
  const ur = await runBatch(h, undo.map(req));
  ur.forEach((e, i) => { if (e) log.error(`${dev.name}: rollback ${describeAction(undo[i])} failed: ${e.message}`); });
  return o;
}

export const describeRouteAction = (a: RouteAction) => (a.op === 'routeDel' ? `delete route ${a.dst}${a.gw ? ` via ${a.gw}` : ''}` : `route ${a.dst} via ${a.gw}`);

/** Direct routes on interface `ext`, one batch; a failed route is logged and retried next round. */
export async function applyRoutePlan(h: NetlinkHandle, ext: { index: number; name: string }, plan: readonly RouteAction[], log: Logger): Promise<Outcome> {
  const o: Outcome = { repairs: 0, failures: 0, failedPeers: 0 };
  const res = await runBatch(h, plan.map((a): BatchRequest => ({ op: a.op, route: { dst: a.dst, gw: a.gw, oif: ext.index } })));
  plan.forEach((a, i) => {
    const e = res[i];
    if (!e) {
      o.repairs++;
      log.info(`${ext.name}: ${describeRouteAction(a)}${a.op === 'routeDel' ? ' (stale)' : ''}`);
      return;
    }
    o.failures++;
    if (a.op === 'routeReplace') o.failedPeers++;
    log.error(`${ext.name}: ${describeRouteAction(a)} failed: ${e.message}; retrying next round`);
  });
  return o;
}
