/** Helpers shared by the rtnetlink message modules (link, addr, route, neigh). */
import { Attrs } from './attrs';
import { AF_INET, AF_INET6, RT_SCOPE, RouteScopeName } from './constants';
import { bufferToIp, ipToBuffer } from '../ip/addr';

/** A network namespace given as an open NetNS (anything with an fd) or a raw fd. */
export type NetnsRef = { readonly fd: number } | number;
export const fdOf = (n: NetnsRef): number => (typeof n === 'number' ? n : n.fd);

export function optIp(a: Attrs, t: number): string | undefined {
  const v = a.get(t);
  return v && (v.length === 4 || v.length === 16) ? bufferToIp(v) : undefined;
}

/** Address family (AF_INET/AF_INET6) of an IP string; throws on garbage. */
export const ipFamily = (ip: string): number => (ipToBuffer(ip).length === 4 ? AF_INET : AF_INET6);

export const scopeNum = (s: RouteScopeName | number | undefined, dflt: number): number =>
  s === undefined ? dflt : typeof s === 'number' ? s : RT_SCOPE[s];
