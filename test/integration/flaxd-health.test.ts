/**
 * flaxd's /healthz, /readyz and /metrics over real HTTP inside a node netns
 * (curl through nsenter). To see the agent before it is ready, node 1's
 * agent runs with a PATH whose `iptables` waits for a gate file: start-up
 * stops at the firewall rules (before subnet.env) while the event loop, and
 * so the HTTP server, keeps running.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../lib/netns';
import { requireBuilt } from '../lib/cni';
import { Cluster, waitFor } from './flaxd-helpers';

const cl = new Cluster();
const PORT = '9110';
/** [status, body] of GET http://127.0.0.1:PORT<p> from inside the node's netns; status 0 = no answer. */
function get(ns: string, p: string): [number, string] {
  const out = execIn(ns, 'curl', ['-s', '-m', '2', '-w', '\n%{http_code}', `http://127.0.0.1:${PORT}${p}`], { allowFail: true });
  const i = out.lastIndexOf('\n');
  return [Number(out.slice(i + 1)) || 0, out.slice(0, Math.max(i, 0))];
}
const metric = (ns: string, name: string): number | undefined => {
  const line = get(ns, '/metrics')[1].split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};
const gate = path.join(cl.tmp, 'iptables-gate');

beforeAll(async () => {
  requireBuilt('flaxd');
  await cl.create(3);
  const shim = path.join(cl.tmp, 'shim');
  mkdirSync(shim);
  writeFileSync(path.join(shim, 'iptables'), `#!/bin/sh\nwhile [ ! -e ${gate} ]; do sleep 0.05; done\nexec /usr/sbin/iptables "$@"\n`);
  chmodSync(path.join(shim, 'iptables'), 0o755);
  const flags = ['--healthz-ip', '127.0.0.1', '--healthz-port', PORT];
  cl.startAgent(cl.nodes[0], flags, { ...process.env, PATH: `${shim}:${process.env.PATH}` });
  for (const n of cl.nodes.slice(1)) cl.startAgent(n, flags);
  for (const n of cl.nodes.slice(1)) await cl.waitReady(n);
}, 60_000);
afterAll(() => cl.destroy(), 60_000);

describe('flaxd healthz / readyz / metrics', () => {
  it('before subnet.env: /healthz 200, /readyz 503', async () => {
    const n1 = cl.nodes[0];
    await waitFor('node 1 /healthz', () => get(n1.ns, '/healthz')[0] === 200);
    await waitFor('node 1 waiting at the firewall', () => /lease 10\.244\./.test(n1.agent!.log()));
    expect(existsSync(n1.subnetFile)).toBe(false);
    expect(get(n1.ns, '/readyz')).toEqual([503, 'not ready: subnet file not written yet\n']);
    expect(get(n1.ns, '/nope')[0]).toBe(404);
  });

  it('after subnet.env: /readyz 200', async () => {
    const n1 = cl.nodes[0];
    writeFileSync(gate, '');
    await cl.waitReady(n1);
    for (const n of cl.nodes) expect(get(n.ns, '/readyz')).toEqual([200, 'ok\n']);
  });

  it('/metrics: peers, routes, reconciles, lease expiry; a repair is counted', async () => {
    const n2 = cl.nodes[1];
    await waitFor('node 2 sees both peers', () => metric(n2.ns, 'flaxd_peers') === 2 && metric(n2.ns, 'flaxd_routes_programmed') === 2);
    const [status, body] = get(n2.ns, '/metrics');
    expect(status).toBe(200);
    expect(body).toMatch(/^# HELP flaxd_peers /m);
    expect(metric(n2.ns, 'flaxd_reconcile_runs_total')).toBeGreaterThan(0);
    expect(metric(n2.ns, 'flaxd_reconcile_failures_total')).toBe(0);
    const exp = metric(n2.ns, 'flaxd_lease_expiration_timestamp_seconds')!;
    expect(Math.abs(exp - Date.now() / 1000 - 24 * 3600)).toBeLessThan(120);
    const repairs = metric(n2.ns, 'flaxd_reconcile_repairs_total')!;
    execIn(n2.ns, 'ip', ['route', 'del', `${cl.leaseOf(cl.nodes[2]).prefix}.0/24`, 'dev', 'flannel.1']);
    await waitFor('repair counted', () => metric(n2.ns, 'flaxd_reconcile_repairs_total')! > repairs, 10_000);
  });

  it('a port in use: exit 1 naming --healthz-port, nothing written', async () => {
    const n3 = cl.nodes[2];
    const other = { ...n3, subnetFile: path.join(cl.tmp, 'other', 'subnet.env') };
    const a = cl.startAgent(other, ['--healthz-ip', '127.0.0.1', '--healthz-port', PORT]);
    expect(await a.exited).toBe(1);
    expect(a.log()).toContain(`--healthz-port: cannot listen on 127.0.0.1:${PORT}`);
    expect(existsSync(other.subnetFile)).toBe(false);
  });
});
