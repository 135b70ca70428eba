/**
 * JSON the way Go's encoding/json writes it, so what we put on disk (the
 * libcni cache) and on a plugin's stdin is byte-identical to what libcni
 * produces:
 *
 * - map[string]interface{} values are written with their keys sorted
 *   (Go sorts map keys; structs keep field order) — `sortKeys`;
 * - `<`, `>`, `&`, U+2028 and U+2029 are escaped as \u003c … (Go's default
 *   HTML-safe escaping);
 * - compact (no spaces).
 *
 * A value wrapped with `ordered()` keeps its insertion order even inside a
 * sorted map: libcni injects `prevResult` as a typed struct, whose fields
 * Go writes in declaration order.
 */

const ORDERED = Symbol('ordered');
interface Ordered { [ORDERED]: true; value: unknown }

/** Marks a value as a Go struct: its keys keep their order when marshalled. */
export function ordered(value: unknown): unknown {
  return { [ORDERED]: true, value } as Ordered;
}
const isOrdered = (v: unknown): v is Ordered => typeof v === 'object' && v !== null && (v as Ordered)[ORDERED] === true;

function sortDeep(v: unknown): unknown {
  if (isOrdered(v)) return v.value;
  if (Array.isArray(v)) return v.map(sortDeep);
  if (typeof v === 'object' && v !== null && !Buffer.isBuffer(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort(goStringLess)) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortDeep(x);
    }
    return out;
  }
  return v;
}

/** Go compares strings bytewise (UTF-8); JS sort compares UTF-16 units. */
function goStringLess(a: string, b: string): number {
  const ba = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return Buffer.compare(ba, bb);
}

/** Applies Go's HTML-safe escaping to JSON text (those characters only occur inside strings). */
export function goEscape(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/**
 * Marshals like Go's json.Marshal of a map[string]interface{} (keys sorted
 * at every level, except inside `ordered()` values).
 */
export function goMarshal(v: unknown): string {
  return goEscape(JSON.stringify(sortDeep(v)));
}

/** Marshals a value as a Go struct would be (insertion order kept), compact, Go-escaped. */
export function goMarshalOrdered(v: unknown): string {
  return goEscape(JSON.stringify(v, (_k, x) => (isOrdered(x) ? x.value : x)));
}

/** Like json.MarshalIndent(v, "", "    ") of a Go struct (insertion order kept). */
export function goMarshalIndent(v: unknown): string {
  return goEscape(JSON.stringify(v, (_k, x) => (isOrdered(x) ? x.value : x), 4));
}
