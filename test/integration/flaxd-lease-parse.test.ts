/**
 * An unreadable lease is no removal (issue 21 item 3): two vxlan nodes on
 * the file store; node 2's lease file is emptied, then garbled, in place (a
 * non-atomic write, as `: > file` or an editor does). Node 2 keeps running
 * and writes its lease again from the one it holds; node 1 keeps node 2's
 * route, neighbour and FDB entry (it never logs the peer removed), and both
 * warn naming the file and count it in flaxd_lease_parse_errors_total.
 * Deleting the file still removes the lease: node 2 stops, node 1 withdraws
 * its entries.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../lib/netns';
import { requireBuilt } from '../lib/cni';
import { Cluster, type Node, peerEntries, peerState, vxlanView, waitFor } from './flaxd-helpers';

const cl = new Cluster();
const PORT = '9121';
const metric = (ns: string, name: string): number | undefined => {
  const out = execIn(ns, 'curl', ['-s', '-m', '2', `http://127.0.0.1:${PORT}/metrics`], { allowFail: true });
  const line = out.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};
const expected = (p: Node) => peerEntries([{ prefix: cl.leaseOf(p).prefix, mac: vxlanView(p.ns).link.address, ip: p.ip }]);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

let n1: Node;
let n2: Node;
let file: string;
let n2Lease: string;
let n2Subnet: string;

beforeAll(async () => {
  requireBuilt('flaxd');
  await cl.create(2);
  [n1, n2] = cl.nodes;
  for (const n of cl.nodes) cl.startAgent(n, ['--healthz-ip', '127.0.0.1', '--healthz-port', PORT]);
  for (const n of cl.nodes) await cl.waitReady(n);
  await waitFor('node 1 programmed for node 2', () => same(peerState(n1.ns), expected(n2)));
  await waitFor('node 2 programmed for node 1', () => same(peerState(n2.ns), expected(n1)));
  const l = cl.leaseOf(n2);
  file = path.join(cl.leaseDir, 'subnets', l.file);
  n2Lease = readFileSync(file, 'utf8');
  n2Subnet = `${l.prefix}.0/24`;
}, 60_000);
afterAll(() => cl.destroy(), 60_000);

describe('flaxd: an unreadable lease file is no removal', () => {
  for (const [what, text] of [['emptied', ''], ['garbled', '{{{']] as const) {
    it(`node 2's lease file ${what} in place: node 2 writes it again and keeps running; node 1 keeps node 2's entries`, async () => {
      const warned = (n: Node) => n.agent!.log().split('\n').filter((l) => l.includes(`lease ${file} (${n2Subnet}) cannot be parsed`)).length;
      const [w1, w2] = [warned(n1), warned(n2)];
      const rewrites = n2.agent!.log().split('\n').filter((l) => l.includes(`our lease ${file} written again`)).length;
      writeFileSync(file, text); // truncates and writes the same inode: not atomic
      // node 2 writes its lease again: valid, its own attributes, a fresh TTL
      await waitFor('node 2 rewrites its lease', () => {
        if (n2.agent!.proc.exitCode !== null) throw new Error(`node 2's flaxd exited ${n2.agent!.proc.exitCode}:\n${n2.agent!.log()}`);
        return n2.agent!.log().split('\n').filter((l) => l.includes(`our lease ${file} written again`)).length > rewrites;
      });
      const now = JSON.parse(readFileSync(file, 'utf8'));
      expect(JSON.stringify(now.Value)).toBe(JSON.stringify(JSON.parse(n2Lease).Value));
      expect(Math.abs(Date.parse(now.Expiration) - Date.now() - 24 * 3600_000)).toBeLessThan(120_000);
      // both warned, naming the file and why
      await waitFor('node 1 warns', () => warned(n1) > w1);
      expect(warned(n2)).toBeGreaterThan(w2);
      // (the write truncates first: a reader may see the empty file, the garbled one, or both)
      expect(n1.agent!.log()).toContain(`lease ${file} (${n2Subnet}) cannot be parsed: `);
      expect(n1.agent!.log()).toMatch(new RegExp(`cannot be parsed: [^\\n]*; keeping the last good lease of ${n2.ip.replace(/\./g, '\\.')}\\n`));
      expect(n2.agent!.log()).toMatch(/cannot be parsed: [^\n]*; this is our lease: writing it again\n/);
      // nothing withdrawn on node 1, ever; nothing shut down on node 2
      expect(n1.agent!.log()).not.toContain(`peer removed: ${n2Subnet}`);
      expect(n2.agent!.log()).not.toContain('was removed from the store');
      expect(peerState(n1.ns)).toEqual(expected(n2));
      expect(n2.agent!.proc.exitCode).toBeNull();
      expect(metric(n1.ns, 'flaxd_lease_parse_errors_total')).toBeGreaterThanOrEqual(1);
      expect(metric(n2.ns, 'flaxd_lease_parse_errors_total')).toBeGreaterThanOrEqual(1);
    });
  }

  it("deleting node 2's lease file still removes it: node 2 stops, node 1 withdraws its entries", async () => {
    rmSync(file);
    const code = await n2.agent!.exited;
    expect(code).not.toBe(0);
    expect(n2.agent!.log()).toContain('was removed from the store');
    await waitFor('node 1 withdraws node 2', () => same(peerState(n1.ns), peerEntries([])));
    expect(n1.agent!.log()).toContain(`peer removed: ${n2Subnet}`);
  });
});
