/**
 * The addon's releaseFilePages (flaxd gives back what its start-up touched,
 * plugins/agent/footprint.ts; issue 24): in a node process that has run
 * some code, it unmaps pages of the executable's read-only mappings (RssFile
 * goes down, the bytes it reports are > 0), and everything the process holds
 * is intact afterwards: data written before (copy-on-write and anonymous
 * pages are never dropped), code run and compiled after, builtins loaded
 * after, a vm context made after.
 */
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { ours, requireBuilt } from '../lib/cni';

beforeAll(() => requireBuilt('flax.node'));

const CHILD = `
const n = require(process.argv[1]);
const fs = require('fs');
const rssFile = () => Number(/RssFile:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
// data and code from before the release
const data = Array.from({ length: 200000 }, (_, i) => ({ i, s: 'v' + i }));
const sum = (a) => a.reduce((t, x) => t + x.i + x.s.length, 0);
const before = sum(data);
JSON.stringify(require('os').networkInterfaces());
const fileBefore = rssFile();
const released = n.releaseFilePages();
const fileAfter = rssFile();
// after: the same data, new code, a builtin not loaded before, a vm context, Intl (ICU data)
const again = sum(data);
const fresh = new Function('x', 'return x.map((v) => v * 2).join(",")')([1, 2, 3]);
const zlib = require('zlib').gunzipSync(require('zlib').gzipSync('flax')).toString();
const vm = require('vm').runInNewContext('a + b', { a: 40, b: 2 });
const intl = new Intl.NumberFormat('en-US').format(1234567.5);
process.stdout.write(JSON.stringify({ released, fileBefore, fileAfter, before, again, fresh, zlib, vm, intl }));
`;

describe('releaseFilePages', () => {
  it('unmaps read-only file pages, and the process runs on with its data intact', () => {
    const r = spawnSync(process.execPath, ['-e', CHILD, ours('flax.node')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.released).toBeGreaterThan(1024 * 1024);
    expect(o.fileAfter).toBeLessThan(o.fileBefore);
    expect(o.again).toBe(o.before);
    expect(o).toMatchObject({ fresh: '2,4,6', zlib: 'flax', vm: 42, intl: '1,234,567.5' });
  });
});
