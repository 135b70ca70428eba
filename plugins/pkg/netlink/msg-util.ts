/** Helpers shared by the rtnetlink message modules (link, addr, route, neigh). */
import { Attrs } from './attrs';
import { RT_SCOPE, RouteScopeName } from './constants';
import { bufferToIp } from './ipaddr';

/** A network namespace given as an open NetNS (anything with an fd) or a raw fd. */
export type NetnsRef = { readonly fd: number } | number;
export const fdOf = (n: NetnsRef): number => (typeof n === 'number' ? n : n.fd);

export function optIp(a: Attrs, t: number): string | undefined {
  const v = a.get(t);
  return v && (v.length === 4 || v.length === 16) ? bufferToIp(v) : undefined;
}

export const scopeNum = (s: RouteScopeName | number | undefined, dflt: number): number =>
  s === undefined ? dflt : typeof s === 'number' ? s : RT_SCOPE[s];
