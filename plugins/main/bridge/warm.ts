/**
 * bridge's warm-up for V8 startup snapshots (skel pluginMain): config
 * decoding, host-local's part, the netlink codec, the masquerade rules
 * against a listed skeleton — pure.
 */
import { parsePrefix } from '../../pkg/ip';
import { genMasqBase, genMasqChain } from '../../pkg/nft/masq';
import { parseRuleset } from '../../pkg/nft/ruleset';
import { afterBatch, listingText } from '../../pkg/nft/skeleton';
import { WARM_IPAM, warmHostLocal } from '../../ipam/host-local/warm';
import { warmNetlink } from '../../pkg/netlink/warm';
import { loadBridgeConf } from './config';

export function warmBridge(): void {
  loadBridgeConf(JSON.stringify({ cniVersion: '1.0.0', name: 'warm', type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, hairpinMode: true, ipam: WARM_IPAM }), '');
  warmHostLocal();
  warmNetlink();
  // against the skeleton in place, listed back as nft prints it
  const rs = parseRuleset(listingText(afterBatch(genMasqBase())));
  JSON.stringify({ nftables: genMasqChain('warm', 'eth0', 'warm', [parsePrefix('10.22.0.2/16'), parsePrefix('fd00::2/64')], rs) });
}
