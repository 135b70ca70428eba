/**
 * The netlink codec's warm-up for V8 startup snapshots (skel pluginMain):
 * the requests a plugin sends (links, bridge ports, addresses, routes)
 * encoded, framed, split and decoded back as the kernel's answers are —
 * pure, no socket.
 */
import { decodeMsgs, encodeMsg, NLM_F_ACK, NLM_F_REQUEST } from './attrs';
import { encodeAddr, encodeBrportSet, encodeLinkAdd, encodeLinkGet, encodeLinkSet, encodeRoute, parseAddr, parseLink, parseRoute } from './messages';

export function warmNetlink(): void {
  const frame = (parts: Buffer[]) => decodeMsgs(encodeMsg(16, NLM_F_REQUEST | NLM_F_ACK, 1, parts))[0].data;
  parseLink(frame(encodeLinkAdd({ kind: 'veth', name: 'veth0', peerName: 'eth0', peerNetns: 3, mtu: 1500, mac: '0a:58:0a:16:00:02' })));
  parseLink(frame(encodeLinkAdd({ kind: 'bridge', name: 'cni0', mtu: 1500 })));
  frame(encodeLinkGet({ name: 'lo' }));
  frame(encodeLinkSet(2, { up: true, master: 3 }));
  frame(encodeBrportSet(2, { hairpin: true }));
  parseAddr(frame(encodeAddr(2, '10.22.0.2/16')));
  parseAddr(frame(encodeAddr(2, 'fd00::2/64')));
  parseRoute(frame(encodeRoute({ dst: '0.0.0.0/0', gw: '10.22.0.1', oif: 2 })));
  parseRoute(frame(encodeRoute({ dst: '::/0', gw: 'fd00::1', oif: 2 })));
}
