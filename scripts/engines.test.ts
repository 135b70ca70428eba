/**
 * `npm ci` must not warn EBADENGINE: every package the lockfile installs
 * admits the Node version that runs it (the project's: package.json
 * `engines.node`, Node 20 — scripts/setup.sh). kubernetes-models 5.1.0 and
 * its @kubernetes-models/* 3.x/6.x/5.x dependencies want Node >= 22; 4.5.1
 * (>= 14) validates the manifests the same way.
 * npm compares each package's `engines.node` with process.version, as here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');

type V = [number, number, number];
const parseV = (s: string): V => {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(s);
  if (!m) throw new Error(`not a version: ${s}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
};
const cmp = (a: V, b: V) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** One comparator of a node-semver range, as [low, high) bounds on v. */
function comparator(tok: string, v: V): boolean {
  if (tok === '*' || tok === 'x' || tok === '') return true;
  const m = /^(>=|<=|>|<|=|\^|~)?v?(\d+|[x*])(?:\.(\d+|[x*]))?(?:\.(\d+|[x*]))?$/.exec(tok);
  if (!m) throw new Error(`engines range syntax not understood: ${tok}`);
  const op = m[1] ?? '';
  const parts = [m[2], m[3], m[4]];
  const given = parts.findIndex((p) => p === undefined || p === 'x' || p === '*');
  const n = given < 0 ? 3 : given; // how many numbers were given
  const num = parts.map((p) => (p === undefined || p === 'x' || p === '*' ? 0 : Number(p))) as V;
  const bump = (i: number): V => { const r: V = [num[0], num[1], num[2]]; r[i]++; for (let k = i + 1; k < 3; k++) r[k] = 0; return r; };
  switch (op) {
    case '>=': return cmp(v, num) >= 0;
    case '>': return n === 3 ? cmp(v, num) > 0 : cmp(v, bump(n - 1)) >= 0;
    case '<': return cmp(v, num) < 0;
    case '<=': return n === 3 ? cmp(v, num) <= 0 : cmp(v, bump(n - 1)) < 0;
    case '^': {
      const i = num[0] !== 0 || n === 1 ? 0 : num[1] !== 0 || n === 2 ? 1 : 2;
      return cmp(v, num) >= 0 && cmp(v, bump(i)) < 0;
    }
    case '~': return cmp(v, num) >= 0 && cmp(v, bump(n >= 2 ? 1 : 0)) < 0;
    default: return n === 3 ? cmp(v, num) === 0 : cmp(v, num) >= 0 && cmp(v, bump(n - 1)) < 0;
  }
}

/** node-semver's satisfies() for the range forms engines fields use (throws on others). */
export function satisfies(version: string, range: string): boolean {
  const v = parseV(version);
  return range.split('||').some((clause) => clause.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).every((t) => comparator(t, v)));
}

describe('engines', () => {
  it('the range checker agrees with node-semver on the forms in the lockfile', () => {
    const cases: Array<[string, string, boolean]> = [
      ['20.20.2', '>=22', false], ['20.20.2', '>=14', true], ['20.20.2', '>= 10.16.0', true], ['20.20.2', '^20.19.0 || >=22.12.0', true],
      ['20.18.0', '^20.19.0 || >=22.12.0', false], ['20.20.2', '6.* || 8.* || >= 10.*', true], ['20.20.2', '4.x || >=6.0.0', true],
      ['20.20.2', '^10 || ^12 || ^13.7 || ^14 || >=15.0.1', true], ['13.6.0', '^13.7', false], ['20.20.2', '^18 || ^20 || >= 21', true],
      ['20.20.2', '~20.19', false], ['20.19.5', '~20.19', true], ['20.20.2', '*', true], ['20.20.2', '<20', false], ['20.20.2', '<=20', true],
    ];
    for (const [v, r, want] of cases) expect(satisfies(v, r), `${v} in ${r}`).toBe(want);
    expect(() => satisfies('20.0.0', '>=20 <wat')).toThrow(/not understood/);
  });

  it('this Node is one the project declares (package.json engines.node)', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(satisfies(process.version, pkg.engines.node), `${process.version} vs ${pkg.engines.node}`).toBe(true);
  });

  it('every package in package-lock.json admits this Node (what npm ci warns EBADENGINE about)', () => {
    const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
    const bad: string[] = [];
    for (const [where, p] of Object.entries(lock.packages as Record<string, { version?: string; engines?: unknown }>)) {
      const range = p.engines && typeof p.engines === 'object' && !Array.isArray(p.engines) ? (p.engines as { node?: string }).node : undefined;
      if (where === '' || !range) continue;
      if (!satisfies(process.version, range)) bad.push(`${where.replace(/^.*node_modules\//, '')}@${p.version}: node ${range}`);
    }
    expect(bad, `packages whose engines exclude ${process.version}`).toEqual([]);
  });
});
