/**
 * Every conflist flax ships or writes: conf/*.conflist, what `flax install
 * --network NAME` writes, and the DaemonSets' ConfigMap cni-conf.json (what
 * their init container installs). Read by the unit test
 * plugins/cli/install/conflists.test.ts and the e2e
 * test/e2e/conflists-podman.test.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { NETWORK_CONFLISTS, renderConflist } from '../../plugins/cli/install/conflists';

const ROOT = path.resolve(__dirname, '../..');

/** [where it comes from, the conflist's text], in a fixed order */
export function shippedConflists(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const f of readdirSync(path.join(ROOT, 'conf')).filter((x) => x.endsWith('.conflist')).sort()) {
    out.push([`conf/${f}`, readFileSync(path.join(ROOT, 'conf', f), 'utf8')]);
  }
  for (const [net, { conf }] of Object.entries(NETWORK_CONFLISTS)) out.push([`flax install --network ${net}`, renderConflist(conf)]);
  for (const f of ['flax.yml', 'flax-etcd.yml']) {
    for (const d of parseAllDocuments(readFileSync(path.join(ROOT, 'conf', f), 'utf8'))) {
      const o = d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
      if (o?.kind !== 'ConfigMap') continue;
      for (const [k, v] of Object.entries(o.data ?? {})) if (k.startsWith('cni-conf')) out.push([`conf/${f} ConfigMap ${o.metadata?.name} ${k}`, v]);
    }
  }
  return out;
}

/** The distinct conflists (same JSON = one), each with every place it comes from. */
export function distinctShippedConflists(): Array<{ sources: string[]; conf: Record<string, unknown> }> {
  const by = new Map<string, { sources: string[]; conf: Record<string, unknown> }>();
  for (const [what, text] of shippedConflists()) {
    const conf = JSON.parse(text) as Record<string, unknown>;
    const key = JSON.stringify(conf);
    const e = by.get(key);
    if (e) e.sources.push(what);
    else by.set(key, { sources: [what], conf });
  }
  return [...by.values()];
}
