/**
 * The cluster's network: an underlay netns holding a bridge, and one netns per
 * node (control plane, the kubelet worker, flaxd nodes, the flanneld node),
 * each with eth0 on the underlay (172.30.99.0/24) and a default route
 * through it. All named flaxk-<pid>-<role>, all removed after: the root netns
 * is never touched.
 */
import { run } from '../../lib/e2e';

export const UNDERLAY = '172.30.99';
export const CP_IP = `${UNDERLAY}.2`;

export interface Net { prefix: string; ul: string; nodes: Map<string, { ns: string; ip: string }> }

export const nsPath = (name: string) => `/run/netns/${name}`;
export const inNs = (ns: string, cmd: string, args: string[], allowFail = false) => run('nsenter', [`--net=${nsPath(ns)}`, '--', cmd, ...args], { allowFail, timeoutMs: 60_000 });

export function makeUnderlay(prefix: string): Net {
  const ul = `${prefix}-ul`;
  run('ip', ['netns', 'add', ul]);
  inNs(ul, 'ip', ['link', 'set', 'lo', 'up']);
  inNs(ul, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  inNs(ul, 'ip', ['addr', 'add', `${UNDERLAY}.1/24`, 'dev', 'br0']);
  inNs(ul, 'ip', ['link', 'set', 'br0', 'up']);
  return { prefix, ul, nodes: new Map() };
}

/** A node netns on the underlay: eth0 = ip/24, default route via the underlay's .1. */
export function addNode(net: Net, role: string, ip: string): string {
  const ns = `${net.prefix}-${role}`;
  run('ip', ['netns', 'add', ns]);
  inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
  const port = `p-${role}`.slice(0, 15);
  inNs(net.ul, 'ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nsPath(ns)]);
  inNs(net.ul, 'ip', ['link', 'set', port, 'master', 'br0', 'up']);
  inNs(ns, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
  inNs(ns, 'ip', ['route', 'add', 'default', 'via', `${UNDERLAY}.1`]);
  net.nodes.set(role, { ns, ip });
  return ns;
}

export function destroyNet(net: Net | undefined): void {
  if (!net) return;
  for (const { ns } of net.nodes.values()) run('ip', ['netns', 'del', ns], { allowFail: true });
  run('ip', ['netns', 'del', net.ul], { allowFail: true });
}
