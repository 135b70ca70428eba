/**
 * portmap's warm-up for V8 startup snapshots (skel pluginMain): config
 * decoding with mappings and a prevResult, the nftables rules of both
 * families against a listed skeleton — pure.
 */
import { emptyRuleset, parseRuleset } from '../../pkg/nft/ruleset';
import { afterBatch, listingText } from '../../pkg/nft/skeleton';
import { type PortmapSpec, genPortmapAdd } from '../../pkg/nft/portmap';
import { loadPortMapConf } from './config';

export function warmPortmap(): void {
  const c = loadPortMapConf(JSON.stringify({
    cniVersion: '1.0.0', name: 'warm', type: 'portmap', snat: true, capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '0.0.0.0' }] },
    prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/warm' }], ips: [{ address: '10.22.0.2/16', interface: 0 }, { address: 'fd00::2/64', interface: 0 }] },
  }));
  const specs: PortmapSpec[] = [false, true].map((v6) => ({
    network: c.name, containerId: 'warm', containerIP: v6 ? 'fd00::2' : '10.22.0.2', v6, mappings: c.mappings, snat: c.snat, masqAll: c.masqAll, conditions: [],
  }));
  // once as the first ADD on a node (no tables), once against what it wrote, as `nft -j list` shows it
  const first = genPortmapAdd(specs, emptyRuleset());
  JSON.stringify({ nftables: genPortmapAdd(specs, parseRuleset(listingText(afterBatch(first)))) });
}
