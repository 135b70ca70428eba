// What flaxd's start-up used and its idle life does not need, given back
// once it runs (issue 24; measured: scripts/bench-footprint.mjs, README
// "Footprint").
import { native } from './native';

/**
 * After `delayMs` (the start-up's last async steps done): V8's
 * LowMemoryNotification (full GCs that also shrink the young generation and
 * free the pages start-up's compiling and parsing grew: ~14 MiB of RssAnon),
 * malloc_trim, and the page-table entries of the executable's read-only
 * file mappings (text, read-only data, a SEA's snapshot blob: pages start-up
 * read and idle does not; those it uses are mapped again from the page cache
 * at their next use: ~28 MiB of RssFile). The timer does not hold the process.
 */
export function releaseStartupMemory(delayMs = 1000): void {
  setTimeout(() => {
    try {
      const n = native();
      n.lowMemoryNotification();
      n.mallocTrim();
      n.releaseFilePages();
    } catch {
      // no addon (a test's in-process agent): nothing to give back
    }
  }, delayMs).unref();
}
