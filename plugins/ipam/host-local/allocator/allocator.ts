/**
 * The pure allocator (host-local's allocator.go semantics, our code): one
 * address per range set, requested addresses first, otherwise round robin
 * starting after the set's `last_reserved_ip`, wrapping once around the set.
 * Talks to storage only through `Store`; the caller holds the lock.
 *
 * Differences from the reference, all in the "do better" direction:
 * - every check that can fail without touching state (requested IP outside
 *   the sets / gateway / network / broadcast, two requested IPs in one set,
 *   duplicate allocation in any set) runs before anything is reserved;
 * - a later set's failure releases exactly the addresses this call reserved
 *   (the reference releases everything the owner holds, including an
 *   existing reservation that caused a duplicate error);
 * - IPv4 network and broadcast addresses are never handed out.
 */
import { CniError, ErrCode, type ErrCodeValue } from '../../../pkg/cni/errors';
import { type Addr, formatIP, parseIP } from '../../../pkg/ip';
import { type Range, isReservedAddress, lastOfSubnet } from './range';
import { type RangeSet, rangeFor, rangeSetContains, rangeSetText } from './range-set';
import type { Owner, Store } from '../store/store';

export interface RequestedIP {
  ip: Addr;
  /** where it came from, for messages: `CNI_ARGS IP`, `args.cni.ips[0]`, … */
  source: string;
  /** error code when it cannot be honoured: 4 for CNI_ARGS, 7 for config */
  code: ErrCodeValue;
}

export interface Allocation {
  setIndex: number;
  ip: Addr;
  prefix: number;
  gateway: Addr;
}

/** Error codes of allocation failures that are not bad input. */
export const AllocErr = {
  /** the set is full, or a requested address is taken — may clear up as others are released */
  Unavailable: ErrCode.TryAgainLater,
  /** the owner already holds an address in the set (reference: 999) */
  Duplicate: ErrCode.Internal,
} as const;

/**
 * Round-robin candidates of a set: starts right after `last` when the set
 * contains it (else at the first range's start), walks each range's window
 * and wraps, visiting every address once; skips gateways and IPv4
 * network/broadcast addresses.
 */
export function* candidates(set: RangeSet, last: Addr | null): Generator<{ n: bigint; range: Range }> {
  const rs = set.ranges;
  let ri = 0;
  let cur: bigint;
  let first: bigint;
  if (last && rangeSetContains(set, last)) {
    ri = rs.findIndex((r) => (r.family === 6) === last.v6 && last.n >= r.start && last.n <= r.end);
    cur = last.n;
    // the first candidate is the one after `last`
    [ri, cur] = step(rs, ri, cur);
    first = cur;
  } else {
    cur = rs[0].start;
    first = cur;
  }
  for (;;) {
    const r = rs[ri];
    if (!isReservedAddress(r, cur)) yield { n: cur, range: r };
    [ri, cur] = step(rs, ri, cur);
    if (cur === first) return;
  }
}

function step(rs: Range[], ri: number, cur: bigint): [number, bigint] {
  if (cur === rs[ri].end) {
    const next = (ri + 1) % rs.length;
    return [next, rs[next].start];
  }
  return [ri, cur + 1n];
}

const err = (code: ErrCodeValue, msg: string) => new CniError(code, msg);

/** Throws the error ADD would give for requested IPs that cannot be honoured (reads no state). */
export function checkRequested(sets: RangeSet[], requested: RequestedIP[]): void {
  placeRequested(sets, requested);
}

/** Maps every requested IP to its set; throws (nothing reserved yet) when one cannot be honoured. */
function placeRequested(sets: RangeSet[], requested: RequestedIP[]): Map<number, RequestedIP> {
  const bySet = new Map<number, RequestedIP>();
  const seen = new Set<string>();
  for (const req of requested) {
    const text = formatIP(req.ip);
    if (seen.has(text)) continue;
    seen.add(text);
    const idx = sets.findIndex((s) => rangeSetContains(s, req.ip));
    if (idx < 0) {
      throw err(req.code, `failed to allocate all requested IPs: ${text}`
        + ` (${req.source} is in no range set: ${sets.map(rangeSetText).join('; ')})`);
    }
    const r = rangeFor(sets[idx], req.ip)!;
    if (req.ip.n === r.gateway) throw err(req.code, `requested ip ${text} is subnet's gateway (${req.source})`);
    if (r.family === 4 && req.ip.n === r.network) throw err(req.code, `requested ip ${text} is the network address (${req.source})`);
    if (r.family === 4 && req.ip.n === lastOfSubnet(4, r.network, r.prefix)) throw err(req.code, `requested ip ${text} is the broadcast address (${req.source})`);
    const other = bySet.get(idx);
    if (other) {
      throw err(req.code, `requested IPs ${formatIP(other.ip)} and ${text} are both in range set ${idx} (${rangeSetText(sets[idx])}); one address per set`);
    }
    bySet.set(idx, req);
  }
  return bySet;
}

/**
 * Allocates one address per set for `owner`. On any failure the addresses
 * reserved by this call are released and a CniError is thrown whose message
 * matches the reference's (`failed to allocate for range N: …`).
 */
export function allocate(store: Store, sets: RangeSet[], owner: Owner, requested: RequestedIP[] = []): Allocation[] {
  const bySet = placeRequested(sets, requested);

  // Duplicate check for every set that has no requested address (the
  // reference skips it for requested ones), before reserving anything.
  const held = store.getByOwner(owner).map((t) => parseIP(t)).filter((x): x is Addr => x !== null);
  sets.forEach((set, idx) => {
    if (bySet.has(idx)) return;
    const dup = held.find((ip) => rangeSetContains(set, ip));
    if (dup) {
      throw err(AllocErr.Duplicate, `failed to allocate for range ${idx}: ${formatIP(dup)} has been allocated to ${owner.id}, duplicate allocation is not allowed`);
    }
  });

  const done: Allocation[] = [];
  try {
    sets.forEach((set, idx) => {
      const req = bySet.get(idx);
      if (req) {
        const r = rangeFor(set, req.ip)!;
        const text = formatIP(req.ip);
        if (!store.reserve(owner, text, idx)) {
          throw err(AllocErr.Unavailable, `failed to allocate for range ${idx}: requested IP address ${text} is not available in range set ${rangeSetText(set)}`);
        }
        done.push({ setIndex: idx, ip: req.ip, prefix: r.prefix, gateway: { v6: r.family === 6, n: r.gateway } });
        return;
      }
      const lastText = store.lastReservedIP(idx);
      const last = lastText === null ? null : parseIP(lastText.trim());
      for (const c of candidates(set, last)) {
        const ip: Addr = { v6: c.range.family === 6, n: c.n };
        if (store.reserve(owner, formatIP(ip), idx)) {
          done.push({ setIndex: idx, ip, prefix: c.range.prefix, gateway: { v6: c.range.family === 6, n: c.range.gateway } });
          return;
        }
      }
      throw err(AllocErr.Unavailable, `failed to allocate for range ${idx}: no IP addresses available in range set: ${rangeSetText(set)}`);
    });
  } catch (e) {
    for (const a of done) {
      try {
        store.release(owner, formatIP(a.ip));
      } catch { /* keep the original error */ }
    }
    throw e;
  }
  return done;
}
