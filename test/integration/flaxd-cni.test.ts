/**
 * flaxd's resident CNI server (issue 15) wired into the agent:
 * `--cni-socket PATH` beside the overlay, two agents on one socket (the
 * second runs without a server and says why), the per-plugin/verb latency
 * histograms on /metrics, and a flannel ADD through the client served by
 * the node's own flaxd. Namespace "nodes" as the other flaxd tests; sockets
 * in the cluster's temp dir (never the machine's /run/flax).
 */
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';
import { cni, ours, requireBuilt } from '../lib/cni';
import { Cluster, waitFor } from './flaxd-helpers';

const cl = new Cluster();
const PORT = '9111';
let sock = '';
const metrics = (ns: string) => execIn(ns, 'curl', ['-s', '-m', '2', `http://127.0.0.1:${PORT}/metrics`], { allowFail: true });
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

beforeAll(async () => {
  requireBuilt('flaxd', 'flannel', 'flannel.standalone', 'bridge', 'host-local');
  await cl.create(2);
  sock = path.join(cl.tmp, 'run/flax/cni.sock');
}, 60_000);
afterAll(() => cl.destroy(), 60_000);

describe('flaxd --cni-socket beside the overlay', () => {
  it('the first agent serves the socket (0600) once running; a second one on the same socket runs its overlay without a server and names the holder', async () => {
    const [n1, n2] = cl.nodes;
    const a1 = cl.startAgent(n1, ['--cni-socket', sock, '--healthz-ip', '127.0.0.1', '--healthz-port', PORT]);
    await cl.waitReady(n1);
    expect(a1.log()).toContain(`cni server: listening on ${sock}`);
    expect(statSync(sock).isSocket()).toBe(true);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const a2 = cl.startAgent(n2, ['--cni-socket', sock]);
    await cl.waitReady(n2);
    expect(a2.log()).toMatch(new RegExp(`W\\d{4} [^\\]]*\\] cni server: not started: ${sock}: another CNI server holds ${sock}\\.lock \\(pid ${a1.proc.pid}\\)`));
    expect(a2.log()).not.toContain('listening on');
  }, 60_000);

  it('a flannel ADD/DEL through the client is served by node 1\'s flaxd, in the caller\'s netns, and counted per plugin and verb', async () => {
    const n1 = cl.nodes[0];
    const [pod] = createTestNetns(1);
    const data = mkdtempSync(path.join(cl.tmp, 'flannel-'));
    try {
      const conf = { cniVersion: '1.0.0', name: 'cbr0', type: 'flannel', subnetFile: n1.subnetFile, dataDir: path.join(data, 'flannel'), ipam: { dataDir: path.join(data, 'ipam') } };
      const call = (verb: string) => cni(ours('flannel'), { command: verb, containerId: 'ctr-srv', netns: pod, ifname: 'eth0', hostNs: n1.ns, stdin: conf, env: { FLAX_CNI_SOCKET: sock } });
      const add = call('ADD');
      expect(add.code, add.stdout + add.stderr).toBe(0);
      expect(add.json.ips[0].address).toMatch(/^10\.244\.\d+\.2\/24$/);
      expect(execIn(n1.ns, 'ip', ['-o', 'link', 'show', 'cni0'])).toContain('cni0');
      const del = call('DEL');
      expect(del.code, del.stdout).toBe(0);
      const text = metrics(n1.ns);
      expect(sample(text, 'flaxd_cni_request_duration_seconds_count{plugin="flannel",verb="ADD"}')).toBe(1);
      expect(sample(text, 'flaxd_cni_request_duration_seconds_count{plugin="flannel",verb="DEL"}')).toBe(1);
      expect(sample(text, 'flaxd_cni_request_duration_seconds_bucket{le="+Inf",plugin="flannel",verb="ADD"}')).toBe(1);
      expect(sample(text, 'flaxd_cni_request_duration_seconds_sum{plugin="flannel",verb="ADD"}')).toBeGreaterThan(0);
      expect(sample(text, 'flaxd_cni_server_workers')).toBeGreaterThanOrEqual(1);
      // an error is counted as one
      const bad = cni(ours('flannel'), { command: 'ADD', containerId: 'bad id!', netns: pod, ifname: 'eth0', hostNs: n1.ns, stdin: conf, env: { FLAX_CNI_SOCKET: sock } });
      expect(bad.code).toBe(1);
      expect(sample(metrics(n1.ns), 'flaxd_cni_request_errors_total{plugin="flannel",verb="ADD"}')).toBe(1);
    } finally {
      destroyTestNetns([pod]);
    }
  }, 60_000);

  it('SIGTERM: the agent removes its socket (clients then run the standalone plugins) and logs its counts', async () => {
    const n1 = cl.nodes[0];
    const a1 = n1.agent!;
    expect(await cl.stopAgent(n1)).toBe(0);
    expect(existsSync(sock)).toBe(false);
    expect(a1.log()).toMatch(/cni server: stopped; served 2, failed 1, refused 0/);
    await waitFor('node 2 still running', () => cl.nodes[1].agent!.proc.exitCode === null);
    const v = cni(ours('flannel'), { command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}', env: { FLAX_CNI_SOCKET: sock } });
    expect(v.code, v.stderr).toBe(0); // the standalone plugin answered
  }, 30_000);
});
