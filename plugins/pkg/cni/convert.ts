/**
 * Conversion between result versions. Every supported version can be read
 * (`parseResult`) and written (`convertResult`); the canonical in-memory form
 * is the 1.1.0 `Result`.
 *
 * - 1.1.0: interfaces{name,mac,mtu,sandbox,socketPath,pciID}, routes with
 *   mtu/advmss/priority/table/scope.
 * - 1.0.0: as 1.1.0 without the fields 1.1.0 added.
 * - 0.3.0/0.3.1/0.4.0: as 1.0.0, each ip carries `version: "4"|"6"`.
 * - 0.1.0/0.2.0: `{ip4:{ip,gateway,routes}, ip6:{…}, dns}`, first IP per family.
 */
import { CniError, ErrCode } from './errors';
import type { DNS, Interface, IPConfig, Result, Route } from './types';
import { compareVersions, isSupportedVersion } from './version';

const isV6 = (addr: string) => addr.includes(':');

function clean<T extends object>(o: T): T {
  const r: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) r[k] = v;
  return r as T;
}

function routeFor(version: string, r: Route): Record<string, unknown> {
  if (compareVersions(version, '1.1.0') >= 0) return clean({ ...r });
  return clean({ dst: r.dst, gw: r.gw });
}
function ifaceFor(version: string, i: Interface): Record<string, unknown> {
  if (compareVersions(version, '1.1.0') >= 0) return clean({ ...i });
  return clean({ name: i.name, mac: i.mac, sandbox: i.sandbox });
}
function dnsOut(dns: DNS | undefined): DNS | undefined {
  if (!dns) return undefined;
  const d = clean({ ...dns });
  return Object.keys(d).length ? d : undefined;
}

/**
 * Renders a canonical result in `version`. Throws CniError(1) for an
 * unsupported version and the reference's "cannot convert: no valid IP
 * addresses" for a 0.1.0/0.2.0 result without IPs.
 */
export function convertResult(result: Result, version: string): Record<string, unknown> {
  if (!isSupportedVersion(version)) {
    throw new CniError(ErrCode.IncompatibleVersion, `unsupported CNI result version "${version}"`);
  }
  if (compareVersions(version, '0.3.0') < 0) return toLegacy(result, version);
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces?.length) out.interfaces = result.interfaces.map((i) => ifaceFor(version, i));
  if (result.ips?.length) {
    const withVersion = compareVersions(version, '1.0.0') < 0;
    out.ips = result.ips.map((ip) =>
      clean({ version: withVersion ? (isV6(ip.address) ? '6' : '4') : undefined, interface: ip.interface, address: ip.address, gateway: ip.gateway }),
    );
  }
  if (result.routes?.length) out.routes = result.routes.map((r) => routeFor(version, r));
  const dns = dnsOut(result.dns);
  out.dns = dns ?? {};
  return out;
}

function toLegacy(result: Result, version: string): Record<string, unknown> {
  const v4 = result.ips?.find((ip) => !isV6(ip.address));
  const v6 = result.ips?.find((ip) => isV6(ip.address));
  if (!v4 && !v6) throw new CniError(ErrCode.IncompatibleVersion, 'cannot convert: no valid IP addresses');
  const out: Record<string, unknown> = { cniVersion: version };
  const fam = (ip: IPConfig | undefined, six: boolean) => {
    if (!ip) return undefined;
    const routes = (result.routes ?? []).filter((r) => isV6(r.dst) === six).map((r) => clean({ dst: r.dst, gw: r.gw }));
    return clean({ ip: ip.address, gateway: ip.gateway, routes: routes.length ? routes : undefined });
  };
  if (v4) out.ip4 = fam(v4, false);
  if (v6) out.ip6 = fam(v6, true);
  out.dns = dnsOut(result.dns) ?? {};
  return out;
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string') throw new CniError(ErrCode.DecodingFailure, `failed to parse result: ${what} must be a string`);
  return v;
};
const optStr = (v: unknown, what: string) => (v === undefined || v === null ? undefined : str(v, what));
const optNum = (v: unknown, what: string) => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new CniError(ErrCode.DecodingFailure, `failed to parse result: ${what} must be a number`);
  return v;
};
const arr = (v: unknown, what: string): unknown[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new CniError(ErrCode.DecodingFailure, `failed to parse result: ${what} must be an array`);
  return v;
};
const obj = (v: unknown, what: string): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CniError(ErrCode.DecodingFailure, `failed to parse result: ${what} must be an object`);
  return v as Record<string, unknown>;
};

function parseRoute(v: unknown, i: number): Route {
  const o = obj(v, `routes[${i}]`);
  return clean({
    dst: str(o.dst, `routes[${i}].dst`), gw: optStr(o.gw, `routes[${i}].gw`), mtu: optNum(o.mtu, 'mtu'), advmss: optNum(o.advmss, 'advmss'),
    priority: optNum(o.priority, 'priority'), table: optNum(o.table, 'table'), scope: optNum(o.scope, 'scope'),
  });
}
function parseDns(v: unknown): DNS | undefined {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, 'dns');
  const list = (x: unknown, w: string) => (x === undefined || x === null ? undefined : arr(x, w).map((s, i) => str(s, `${w}[${i}]`)));
  const d = clean({ nameservers: list(o.nameservers, 'dns.nameservers'), domain: optStr(o.domain, 'dns.domain'), search: list(o.search, 'dns.search'), options: list(o.options, 'dns.options') });
  return Object.keys(d).length ? d : undefined;
}

/**
 * Reads a result (or prevResult) of `version` into the canonical form.
 * The shape decides for legacy results (ip4/ip6), so a 0.2.0 prevResult
 * handed to a plugin under a newer config still parses. Errors are code 6.
 */
export function parseResult(raw: unknown, version: string): Result {
  const o = obj(raw, 'result');
  const legacy = 'ip4' in o || 'ip6' in o || (compareVersions(version, '0.3.0') < 0 && !('ips' in o) && !('interfaces' in o));
  const res: Result = { cniVersion: version };
  if (legacy) {
    const ips: IPConfig[] = [];
    const routes: Route[] = [];
    for (const fam of ['ip4', 'ip6'] as const) {
      if (o[fam] === undefined || o[fam] === null) continue;
      const f = obj(o[fam], fam);
      ips.push(clean({ address: str(f.ip, `${fam}.ip`), gateway: optStr(f.gateway, `${fam}.gateway`) }));
      arr(f.routes, `${fam}.routes`).forEach((r, i) => routes.push(parseRoute(r, i)));
    }
    if (ips.length) res.ips = ips;
    if (routes.length) res.routes = routes;
  } else {
    const ifs = arr(o.interfaces, 'interfaces').map((v, i) => {
      const x = obj(v, `interfaces[${i}]`);
      return clean({
        name: str(x.name, `interfaces[${i}].name`), mac: optStr(x.mac, 'mac'), mtu: optNum(x.mtu, 'mtu'), sandbox: optStr(x.sandbox, 'sandbox'),
        socketPath: optStr(x.socketPath, 'socketPath'), pciID: optStr(x.pciID, 'pciID'),
      });
    });
    const ips = arr(o.ips, 'ips').map((v, i) => {
      const x = obj(v, `ips[${i}]`);
      return clean({ interface: optNum(x.interface, `ips[${i}].interface`), address: str(x.address, `ips[${i}].address`), gateway: optStr(x.gateway, `ips[${i}].gateway`) });
    });
    const routes = arr(o.routes, 'routes').map(parseRoute);
    if (ifs.length) res.interfaces = ifs;
    if (ips.length) res.ips = ips;
    if (routes.length) res.routes = routes;
  }
  const dns = parseDns(o.dns);
  if (dns) res.dns = dns;
  return res;
}
