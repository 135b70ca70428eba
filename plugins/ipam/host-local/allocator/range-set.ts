/**
 * A range set: one or more ranges of one family; host-local hands out one
 * address per set. Sets must not overlap each other.
 */
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import type { Addr } from '../../../pkg/ip';
import { type Range, type RangeSpec, canonicalizeRange, rangeContains, rangeSubnetText, rangeText, rangesOverlap } from './range';

export interface RangeSet {
  ranges: Range[];
  /** config path of the set (`ipam.ranges[1]`) */
  field: string;
}

const bad = (field: string, msg: string) => new CniError(ErrCode.InvalidNetworkConfig, `invalid network config: field \`${field}\`: ${msg}`);

/** `single`: the set is the legacy top-level range, whose fields are `<field>.subnet` etc. */
export function canonicalizeRangeSet(specs: RangeSpec[], field: string, single = false): RangeSet {
  if (specs.length === 0) throw bad(field, 'empty range set (no IP ranges)');
  const ranges = specs.map((s, i) => canonicalizeRange(s, single ? field : `${field}[${i}]`));
  const fam = ranges[0].family;
  for (const r of ranges) {
    if (r.family !== fam) throw bad(r.field, `mixed address families in one range set (${rangeSubnetText(ranges[0])} and ${rangeSubnetText(r)})`);
  }
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (rangesOverlap(ranges[i], ranges[j])) {
        throw bad(ranges[j].field, `ranges ${rangeText(ranges[i])} and ${rangeText(ranges[j])} overlap`);
      }
    }
  }
  return { ranges, field };
}

export const rangeSetFamily = (s: RangeSet) => s.ranges[0].family;

/** The range holding `ip` (inside its [start, end] window), or undefined. */
export function rangeFor(s: RangeSet, ip: Addr): Range | undefined {
  return s.ranges.find((r) => rangeContains(r, ip));
}

export const rangeSetContains = (s: RangeSet, ip: Addr): boolean => rangeFor(s, ip) !== undefined;

/** `start-end,start-end` as the reference prints a set in its errors. */
export const rangeSetText = (s: RangeSet): string => s.ranges.map(rangeText).join(',');

export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  return a.ranges.some((x) => b.ranges.some((y) => rangesOverlap(x, y)));
}
