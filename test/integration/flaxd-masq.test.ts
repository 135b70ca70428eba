/**
 * flaxd --ip-masq on the real kernel, two vxlan nodes per backend:
 * iptables (FLANNEL-POSTRTG / FLANNEL-FWD exactly as flanneld writes them)
 * and nftables (EnableNFTables: table ip flannel-ipv4). A TCP server
 * records the source address it sees: a pod talking to an address outside
 * the Network (a server in the underlay netns, which has a route back to
 * the pods, so both answers are possible) is seen as its node; a pod on the
 * other node is seen as itself. Removed rules come back on the next
 * reconcile; a restart rebuilds nothing and duplicates nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../lib/netns';
import { requireBuilt } from '../lib/cni';
import { Cluster, moreLogLines, NETWORK, sourceSeen, vxlanView, waitFor } from './flaxd-helpers';

const ipt = (ns: string, table: string) => execIn(ns, 'iptables', ['-w', '-t', table, '-S']).split('\n').filter((l) => /FLANNEL|flanneld/.test(l));
const M = '-m comment --comment "flanneld masq"';
const F = '-m comment --comment "flanneld forward"';

async function setUp(cl: Cluster, netConf: object): Promise<void> {
  requireBuilt('flaxd');
  await cl.create(2, netConf);
  for (const n of cl.nodes) cl.startAgent(n, ['--ip-masq']);
  for (const n of cl.nodes) await cl.waitReady(n);
  for (const n of cl.nodes) await cl.addPod(n, cl.leaseOf(n).prefix);
  // both nodes programmed for each other (a peer's lease may land after a node's first reconcile)
  for (const n of cl.nodes) await waitFor(`node ${n.i} peer route`, () => vxlanView(n.ns).routes.length === cl.nodes.length - 1);
  // the "internet": an address on the underlay bridge, with a route back to the pods through node 1
  execIn(cl.underlay, 'ip', ['addr', 'add', '192.168.77.1/24', 'dev', 'ul0']);
  execIn(cl.underlay, 'ip', ['route', 'add', NETWORK, 'via', cl.nodes[0].ip]);
}

async function checkMasquerading(cl: Cluster): Promise<void> {
  const [n1, n2] = cl.nodes;
  expect(await sourceSeen(cl.underlay, '192.168.77.1', n1.pod!)).toBe(n1.ip);
  const p2 = `${cl.leaseOf(n2).prefix}.2`;
  expect(await sourceSeen(n2.pod!, p2, n1.pod!)).toBe(`${cl.leaseOf(n1).prefix}.2`);
}

describe('flaxd --ip-masq: iptables (FLANNEL-POSTRTG, FLANNEL-FWD)', () => {
  const cl = new Cluster();
  beforeAll(() => setUp(cl, { Network: NETWORK, Backend: { Type: 'vxlan' } }), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  const want = (i: number) => {
    const pod = `${cl.leaseOf(cl.nodes[i]).prefix}.0/24`;
    return {
      nat: ['-N FLANNEL-POSTRTG', `-A POSTROUTING ${M} -j FLANNEL-POSTRTG`,
        `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${M} -j RETURN`,
        `-A FLANNEL-POSTRTG -s ${pod} -d ${NETWORK} ${M} -j RETURN`,
        `-A FLANNEL-POSTRTG -s ${NETWORK} -d ${pod} ${M} -j RETURN`,
        `-A FLANNEL-POSTRTG ! -s ${NETWORK} -d ${pod} ${M} -j RETURN`,
        `-A FLANNEL-POSTRTG -s ${NETWORK} ! -d 224.0.0.0/4 ${M} -j MASQUERADE --random-fully`,
        `-A FLANNEL-POSTRTG ! -s ${NETWORK} -d ${NETWORK} ${M} -j MASQUERADE --random-fully`],
      filter: ['-N FLANNEL-FWD', `-A FORWARD ${F} -j FLANNEL-FWD`, `-A FLANNEL-FWD -s ${NETWORK} ${F} -j ACCEPT`, `-A FLANNEL-FWD -d ${NETWORK} ${F} -j ACCEPT`],
    };
  };
  const rules = (i: number) => ({ nat: ipt(cl.nodes[i].ns, 'nat'), filter: ipt(cl.nodes[i].ns, 'filter') });

  it("installs flanneld's chains, jumps and rules on every node, and FLANNEL_IPMASQ=true", async () => {
    for (const [i, n] of cl.nodes.entries()) {
      expect(rules(i)).toEqual(want(i));
      expect(n.agent!.log()).not.toMatch(/firewall rules: /);
    }
    expect((await import('node:fs')).readFileSync(cl.nodes[0].subnetFile, 'utf8')).toContain('FLANNEL_IPMASQ=true\n');
  });

  it('masquerades a pod talking outside the Network, not pod to pod across nodes', async () => {
    await checkMasquerading(cl);
  });

  it('a deleted chain (with its jump) and a deleted rule come back on the next reconcile', async () => {
    const n = cl.nodes[0];
    // (the agent may rebuild between these commands and any check of ours: its log counts the rebuilds)
    const rebuilt = (table: string, chain: string) => n.agent!.log().split(`iptables: (re)built ${table} ${chain}`).length - 1;
    const before = { nat: rebuilt('nat', 'FLANNEL-POSTRTG'), filter: rebuilt('filter', 'FLANNEL-FWD') };
    execIn(n.ns, 'iptables', ['-w', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'FLANNEL-POSTRTG']);
    execIn(n.ns, 'iptables', ['-w', '-t', 'nat', '-F', 'FLANNEL-POSTRTG']);
    execIn(n.ns, 'iptables', ['-w', '-t', 'nat', '-X', 'FLANNEL-POSTRTG']);
    execIn(n.ns, 'iptables', ['-w', '-t', 'filter', '-D', 'FLANNEL-FWD', '2']);
    await waitFor('rules rebuilt', () => rebuilt('nat', 'FLANNEL-POSTRTG') > before.nat && rebuilt('filter', 'FLANNEL-FWD') > before.filter, 10_000);
    await waitFor('rules restored', () => JSON.stringify(rules(0)) === JSON.stringify(want(0)), 10_000);
    await checkMasquerading(cl);
  });

  it('restart: the rules are reused as they are, nothing duplicated or rebuilt', async () => {
    const n = cl.nodes[0];
    expect(await cl.stopAgent(n)).toBe(0);
    expect(rules(0)).toEqual(want(0)); // SIGTERM leaves them
    cl.startAgent(n, ['--ip-masq', '--iptables-resync', '1']);
    await cl.waitReady(n);
    await moreLogLines(n.agent!, /firewall rules checked/, 2); // two checks of the rules since
    expect(rules(0)).toEqual(want(0));
    expect(n.agent!.log()).not.toMatch(/\(re\)built/);
  });
});

describe('flaxd --ip-masq: nftables (EnableNFTables, table ip flannel-ipv4)', () => {
  const cl = new Cluster();
  beforeAll(() => setUp(cl, { Network: NETWORK, EnableNFTables: true, Backend: { Type: 'vxlan' } }), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  const listing = (ns: string) => execIn(ns, 'nft', ['list', 'table', 'ip', 'flannel-ipv4'], { allowFail: true })
    .split('\n').map((l) => l.trim()).filter(Boolean);
  const want = (i: number) => {
    const pod = `${cl.leaseOf(cl.nodes[i]).prefix}.0/24`;
    return ['table ip flannel-ipv4 {', 'chain postrtg {', 'type nat hook postrouting priority srcnat; policy accept;',
      'meta mark 0x00004000 return',
      `ip saddr ${pod} ip daddr ${NETWORK} return`,
      `ip saddr ${NETWORK} ip daddr ${pod} return`,
      `ip saddr != ${pod} ip daddr ${NETWORK} return`,
      `ip saddr ${NETWORK} ip daddr != 224.0.0.0/4 masquerade fully-random`,
      `ip saddr != ${NETWORK} ip daddr ${NETWORK} masquerade fully-random`, '}',
      'chain forward {', 'type filter hook forward priority filter; policy accept;',
      `ip saddr ${NETWORK} accept`, `ip daddr ${NETWORK} accept`, '}', '}'];
  };

  it("installs flanneld's nftables table and no iptables chain", () => {
    for (const [i, n] of cl.nodes.entries()) {
      expect(listing(n.ns)).toEqual(want(i));
      expect(ipt(n.ns, 'nat')).toEqual([]);
    }
  });

  it('masquerades a pod talking outside the Network, not pod to pod across nodes', async () => {
    await checkMasquerading(cl);
  });

  it('a deleted table comes back; a restart rebuilds nothing', async () => {
    const n = cl.nodes[1];
    execIn(n.ns, 'nft', ['delete', 'table', 'ip', 'flannel-ipv4']);
    await waitFor('table restored', () => JSON.stringify(listing(n.ns)) === JSON.stringify(want(1)), 10_000);
    expect(n.agent!.log()).toMatch(/nftables: \(re\)built table ip flannel-ipv4 chains postrtg, forward/);
    const handles = execIn(n.ns, 'nft', ['-a', 'list', 'table', 'ip', 'flannel-ipv4']);
    expect(await cl.stopAgent(n)).toBe(0);
    cl.startAgent(n, ['--ip-masq', '--iptables-resync', '1']);
    await cl.waitReady(n);
    await moreLogLines(n.agent!, /firewall rules checked/, 2); // two checks of the table since
    expect(execIn(n.ns, 'nft', ['-a', 'list', 'table', 'ip', 'flannel-ipv4'])).toBe(handles);
    expect(n.agent!.log()).not.toMatch(/\(re\)built/);
  });
});
