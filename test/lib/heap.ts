/**
 * V8 heap snapshots (.heapsnapshot JSON) read for tests: how many objects a
 * heap holds, in all and by kind (type and constructor/name), so a test can
 * count what a process keeps per call between two snapshots (each taken
 * after a full GC, as V8 takes them).
 */
import { readFileSync } from 'node:fs';

export interface HeapCount {
  /** every object but compiled code (bytecode, feedback, scope infos: what V8 compiles lazily on a function's first calls) */
  objects: number;
  bytes: number;
  /** per `type:name` (strings by their first 40 characters) */
  byKind: Map<string, { objects: number; bytes: number }>;
}

export function countHeap(file: string): HeapCount {
  const j = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = j.snapshot.meta.node_fields;
  const types = j.snapshot.meta.node_types[0];
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const byKind = new Map<string, { objects: number; bytes: number }>();
  let objects = 0;
  let bytes = 0;
  for (let i = 0; i < j.nodes.length; i += fields.length) {
    const type = types[j.nodes[i + ti]];
    if (type === 'synthetic') continue; // GC roots and such: not objects
    const name = j.strings[j.nodes[i + ni]] ?? '';
    const key = `${type}:${type.includes('string') ? name.slice(0, 40) : name}`;
    const e = byKind.get(key) ?? { objects: 0, bytes: 0 };
    e.objects++;
    e.bytes += j.nodes[i + si];
    byKind.set(key, e);
    if (type === 'code') continue;
    objects++;
    bytes += j.nodes[i + si];
  }
  return { objects, bytes, byKind };
}

/** The kinds that grew most from `a` to `b` (objects), as `+N type:name` lines. */
export function heapGrowth(a: HeapCount, b: HeapCount, top = 8): string[] {
  return [...b.byKind]
    .filter(([k]) => !k.startsWith('code:'))
    .map(([k, e]) => [k, e.objects - (a.byKind.get(k)?.objects ?? 0)] as const)
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([k, n]) => `+${n} ${k}`);
}
