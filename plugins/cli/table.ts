/** Plain-text tables for the CLI (no colours, no dependencies). */
export function table(headers: string[], rows: (string | number | undefined)[][]): string {
  const cells = rows.map((r) => headers.map((_, i) => (r[i] === undefined || r[i] === '' ? '-' : String(r[i]))));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ').trimEnd();
  return [line(headers), line(w.map((n) => '-'.repeat(n))), ...cells.map(line)].join('\n') + '\n';
}
