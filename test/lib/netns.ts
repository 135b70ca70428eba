/**
 * Throwaway network namespaces for integration tests (run as root). Every
 * namespace is pinned under /run/netns as flaxt-<pid>-<n> and removed even
 * when the test fails. Tests must never modify the machine's root netns:
 * open handles with openHandleAt(nsPath) only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { test as base } from 'vitest';
import { createNetns, removeNetns } from '../../plugins/pkg/ns';
import { openHandleAt, type Link, type NetlinkHandle } from '../../plugins/pkg/netlink';

let counter = 0;

/** A unique name for a test namespace / link suffix. */
export function uniqueName(prefix = 'flaxt'): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/** Creates `count` pinned namespaces and returns their paths; pair with destroyTestNetns. */
export function createTestNetns(count: number): string[] {
  const paths: string[] = [];
  try {
    for (let i = 0; i < count; i++) paths.push(createNetns(uniqueName()));
  } catch (e) {
    destroyTestNetns(paths);
    throw e;
  }
  return paths;
}

export function destroyTestNetns(paths: string[]): void {
  for (const p of paths) {
    try {
      removeNetns(p);
    } catch (e) {
      process.stderr.write(`test cleanup: removeNetns ${p}: ${(e as Error).message}\n`);
    }
  }
}

/** Runs fn with `count` fresh namespaces, removed afterwards whatever happens. */
export async function withTestNetns<T>(count: number, fn: (nsPaths: string[]) => Promise<T> | T): Promise<T> {
  const paths = createTestNetns(count);
  try {
    return await fn(paths);
  } finally {
    destroyTestNetns(paths);
  }
}

/** Runs a command inside a netns (tests only: product code never shells out). */
export function execIn(nsPath: string, cmd: string, args: string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync('nsenter', [`--net=${nsPath}`, '--', cmd, ...args], { encoding: 'utf8' });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} in ${nsPath} failed (${r.status}): ${r.stderr}`);
  }
  return r.stdout;
}

/** `ip -j …` inside nsPath, parsed. */
export function ipJson<T = unknown>(nsPath: string, args: string[]): T {
  const out = execIn(nsPath, 'ip', ['-j', ...args]);
  return (out.trim() ? JSON.parse(out) : []) as T;
}

/** Polls until the link's operstate is up (or it is IFF_UP with lower_up). */
export async function waitLinkUp(h: NetlinkHandle, index: number, timeoutMs = 5000): Promise<Link> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = await h.linkByIndex(index);
    if (l.operstate === 'up' || (l.up && l.lowerUp)) return l;
    if (Date.now() >= deadline) throw new Error(`link ${l.name} (${index}) not up after ${timeoutMs} ms (operstate ${l.operstate})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Names of links in the root netns (to assert tests leave nothing there). */
export function rootLinkNames(): string[] {
  return (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string }>).map((l) => l.ifname);
}

interface NetnsFixtures {
  /** one fresh netns (the test's "host") */
  ns: string;
  /** a second fresh netns (the "pod") */
  ns2: string;
  /** a netlink handle bound to `ns` */
  h: NetlinkHandle;
  /** a netlink handle bound to `ns2` */
  h2: NetlinkHandle;
}

/** vitest fixtures: `netnsTest('…', async ({ ns, h }) => …)`; cleaned up after each test. */
export const netnsTest = base.extend<NetnsFixtures>({
  // eslint-disable-next-line no-empty-pattern
  ns: async ({}, use) => {
    const [p] = createTestNetns(1);
    try { await use(p); } finally { destroyTestNetns([p]); }
  },
  // eslint-disable-next-line no-empty-pattern
  ns2: async ({}, use) => {
    const [p] = createTestNetns(1);
    try { await use(p); } finally { destroyTestNetns([p]); }
  },
  h: async ({ ns }, use) => {
    using h = openHandleAt(ns);
    await use(h);
  },
  h2: async ({ ns2 }, use) => {
    using h = openHandleAt(ns2);
    await use(h);
  },
});
