/**
 * Pure parts of the bridge result: gateway calculation (the reference's
 * calcGateways) and the final result assembly.
 */
import type { DNS, Interface, IPConfig, Result, Route } from '../../pkg/cni/types';
import { type Prefix, formatPrefix, maskedPrefix, nextIp, parsePrefix, prefixIP } from '../../pkg/ip';

export interface GwInfo {
  /** gateway addresses with the container address's prefix, for the bridge */
  gws: Prefix[];
  defaultRouteFound: boolean;
}

/**
 * For each IPAM IP: point it at the container interface (index 2), fill a
 * missing gateway with the subnet's first address when isGW, add a default
 * route per family via that gateway when isDefaultGW (unless IPAM already
 * gave one with a gateway), and collect the bridge's gateway addresses.
 * Returns new ips/routes; the input is not modified.
 */
export function calcGateways(
  ips: IPConfig[], routes: Route[], opts: { isGW: boolean; isDefaultGW: boolean },
): { ips: IPConfig[]; routes: Route[]; v4: GwInfo; v6: GwInfo } {
  const v4: GwInfo = { gws: [], defaultRouteFound: false };
  const v6: GwInfo = { gws: [], defaultRouteFound: false };
  const outRoutes = [...routes];
  const outIps = ips.map((ipc) => {
    const addr = parsePrefix(ipc.address);
    const gws = addr.v6 ? v6 : v4;
    const defaultDst = addr.v6 ? '::/0' : '0.0.0.0/0';
    const r: IPConfig = { ...ipc, interface: 2 };
    if (r.gateway === undefined && opts.isGW) r.gateway = nextIp(prefixIP(maskedPrefix(addr)));
    if (opts.isDefaultGW && !gws.defaultRouteFound) {
      gws.defaultRouteFound = outRoutes.some((rt) => rt.gw !== undefined && normDst(rt.dst) === defaultDst);
      if (!gws.defaultRouteFound) {
        outRoutes.push({ dst: defaultDst, gw: r.gateway });
        gws.defaultRouteFound = true;
      }
    }
    if (opts.isGW && r.gateway !== undefined) gws.gws.push(parsePrefix(`${r.gateway}/${addr.prefixLen}`));
    return r;
  });
  return { ips: outIps, routes: outRoutes, v4, v6 };
}

function normDst(dst: string): string {
  try {
    return formatPrefix(parsePrefix(dst));
  } catch {
    return dst;
  }
}

/** The ADD result: `[bridge, hostVeth, container]`, IPAM ips/routes, dns override. */
export function assembleResult(p: {
  cniVersion: string;
  bridge: Interface;
  hostVeth: Interface;
  container: Interface;
  ips?: IPConfig[];
  routes?: Route[];
  ipamDns?: DNS;
  confDns?: DNS;
}): Result {
  const r: Result = { cniVersion: p.cniVersion, interfaces: [p.bridge, p.hostVeth, p.container] };
  if (p.ips?.length) r.ips = p.ips;
  if (p.routes?.length) r.routes = p.routes;
  const dns = p.confDns ?? p.ipamDns;
  if (dns) r.dns = dns;
  return r;
}
