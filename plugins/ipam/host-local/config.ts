/**
 * host-local configuration: the zod schema of the `ipam` section (plus the
 * top-level `args.cni.ips` and `runtimeConfig.{ips,ipRanges}`) and its
 * resolution into range sets, requested addresses, routes and paths.
 *
 * Range sets, in order (as the reference): `runtimeConfig.ipRanges`, the
 * legacy top-level `ipam.subnet/rangeStart/rangeEnd/gateway`, `ipam.ranges`.
 * The set index (which names `last_reserved_ip.N`) is the position in that
 * list. Every problem is a CniError(7) naming the field; a bad `IP=` in
 * CNI_ARGS is 4 (an environment variable).
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import * as z from 'zod/mini';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { NetConfSchema, loadNetConf, confSchema } from '../../pkg/cni/conf';
import { parseCniArgs } from '../../pkg/cni/args';
import { compareVersions } from '../../pkg/cni/version';
import type { DNS, Result, Route } from '../../pkg/cni/types';
import { type Addr, formatIP, formatPrefix, parseCIDR, parseIP, prefixAddr } from '../../pkg/ip';
import type { RangeSpec } from './allocator/range';
import { type RangeSet, canonicalizeRangeSet, rangeSetFamily, rangeSetsOverlap } from './allocator/range-set';
import type { RequestedIP } from './allocator/allocator';
import { DEFAULT_DATA_DIR } from './store/disk-store';

const MAX_SETS = 128;
const MAX_RANGES_PER_SET = 128;
const MAX_ROUTES = 1024;
const MAX_REQUESTED = 64;
const MAX_RESOLV_CONF = 1 << 20;

const addrStr = z.string().check(z.maxLength(64));
const RangeSpecSchema = z.looseObject({
  subnet: z.optional(addrStr),
  rangeStart: z.optional(addrStr),
  rangeEnd: z.optional(addrStr),
  gateway: z.optional(addrStr),
});
const RangeSetSchema = z.array(RangeSpecSchema).check(z.maxLength(MAX_RANGES_PER_SET));
const u32 = z.number().check(z.int(), z.minimum(0), z.maximum(0xffffffff));
const RouteSchema = z.looseObject({
  dst: addrStr,
  gw: z.optional(addrStr),
  mtu: z.optional(u32),
  advmss: z.optional(u32),
  priority: z.optional(u32),
  table: z.optional(u32),
  scope: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(255))),
});
const pathStr = z.string().check(z.maxLength(4096));

export const HostLocalIpamSchema = z.looseObject({
  type: z.optional(z.string()),
  subnet: z.optional(addrStr),
  rangeStart: z.optional(addrStr),
  rangeEnd: z.optional(addrStr),
  gateway: z.optional(addrStr),
  ranges: z.optional(z.array(RangeSetSchema).check(z.maxLength(MAX_SETS))),
  routes: z.optional(z.array(RouteSchema).check(z.maxLength(MAX_ROUTES))),
  dataDir: z.optional(pathStr),
  resolvConf: z.optional(pathStr),
});

export const HostLocalConfSchema = confSchema(z.extend(NetConfSchema, {
  ipam: z.optional(HostLocalIpamSchema),
  args: z.optional(z.looseObject({
    cni: z.optional(z.looseObject({ ips: z.optional(z.array(addrStr).check(z.maxLength(MAX_REQUESTED))) })),
  })),
  runtimeConfig: z.optional(z.looseObject({
    ips: z.optional(z.array(addrStr).check(z.maxLength(MAX_REQUESTED))),
    ipRanges: z.optional(z.array(RangeSetSchema).check(z.maxLength(MAX_SETS))),
  })),
}));

export interface HostLocalConf {
  cniVersion: string;
  name: string;
  rangeSets: RangeSet[];
  requested: RequestedIP[];
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
  /** CHECK: the parsed prevResult, if any */
  prevResult?: Result;
}

const bad = (field: string, msg: string) => new CniError(ErrCode.InvalidNetworkConfig, `invalid network config: field \`${field}\`: ${msg}`);

function absPath(field: string, p: string): string {
  if (p.includes('\0')) throw bad(field, 'contains a NUL byte');
  if (!path.isAbsolute(p)) throw bad(field, `must be an absolute path, got "${p.slice(0, 128)}"`);
  return path.resolve(p);
}

/** A requested address: `a.b.c.d` or, from JSON, also `a.b.c.d/len`. */
function requestedFrom(text: string, source: string, code: number, allowCidr: boolean): RequestedIP {
  const t = text.trim();
  let ip: Addr | null = parseIP(t);
  if (!ip && allowCidr) { const c = parseCIDR(t); ip = c ? prefixAddr(c) : null; }
  if (!ip) {
    const msg = `invalid IP "${t.slice(0, 64)}" in ${source}`;
    throw code === ErrCode.InvalidEnvironmentVariables ? new CniError(code, msg) : bad(source, msg);
  }
  return { ip, source, code };
}

function resolveRoute(r: z.infer<typeof RouteSchema>, i: number): Route {
  const field = `ipam.routes[${i}]`;
  const dst = parseCIDR(r.dst);
  if (!dst) throw bad(`${field}.dst`, `invalid CIDR "${r.dst}"`);
  const out: Route = { dst: formatPrefix(dst) };
  if (r.gw !== undefined && r.gw !== '') {
    const gw = parseIP(r.gw);
    if (!gw) throw bad(`${field}.gw`, `invalid IP address "${r.gw}"`);
    if (gw.v6 !== dst.v6) throw bad(`${field}.gw`, `gateway ${formatIP(gw)} and destination ${out.dst} are of different families`);
    out.gw = formatIP(gw);
  }
  for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) if (r[k] !== undefined) out[k] = r[k];
  return out;
}

export interface LoadOptions {
  /** CNI_ARGS (only ADD reads `IP=` from it) */
  cniArgs?: string;
  /** parse requested addresses (ADD) */
  requested?: boolean;
}

/** Decodes and validates a host-local config (whole plugin config on stdin). */
export function loadHostLocalConf(stdin: string | Buffer, opts: LoadOptions = {}): HostLocalConf {
  const conf = loadNetConf(stdin, HostLocalConfSchema);
  const ipam = conf.ipam;
  if (!ipam) throw new CniError(ErrCode.InvalidNetworkConfig, "IPAM config missing 'ipam' key");

  // range sets: runtimeConfig.ipRanges, legacy, ipam.ranges
  const specs: { specs: RangeSpec[]; field: string }[] = [];
  (conf.runtimeConfig?.ipRanges ?? []).forEach((s, i) => specs.push({ specs: s, field: `runtimeConfig.ipRanges[${i}]` }));
  if (ipam.subnet !== undefined && ipam.subnet !== '') {
    specs.push({ specs: [{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }], field: 'ipam' });
  } else {
    for (const k of ['rangeStart', 'rangeEnd', 'gateway'] as const) {
      if (ipam[k] !== undefined && ipam[k] !== '') throw bad(`ipam.${k}`, 'given without ipam.subnet');
    }
  }
  (ipam.ranges ?? []).forEach((s, i) => specs.push({ specs: s, field: `ipam.ranges[${i}]` }));
  if (specs.length === 0) throw bad('ipam.ranges', 'no IP ranges specified');
  if (specs.length > MAX_SETS) throw bad('ipam.ranges', `too many range sets (${specs.length}, limit ${MAX_SETS})`);
  const rangeSets = specs.map((s) => canonicalizeRangeSet(s.specs, s.field, s.field === 'ipam'));
  for (let i = 0; i < rangeSets.length; i++) {
    for (let j = i + 1; j < rangeSets.length; j++) {
      if (rangeSetsOverlap(rangeSets[i], rangeSets[j])) {
        throw bad(rangeSets[j].field, `range set ${j} overlaps with range set ${i} (${rangeSets[i].field})`);
      }
    }
  }
  if (compareVersions(conf.cniVersion, '0.3.0') < 0) {
    const v4 = rangeSets.filter((s) => rangeSetFamily(s) === 4).length;
    if (v4 > 1 || rangeSets.length - v4 > 1) {
      throw new CniError(ErrCode.InvalidNetworkConfig, `CNI version ${conf.cniVersion} does not support more than 1 address per family`);
    }
  }

  const requested: RequestedIP[] = [];
  if (opts.requested) {
    const argIps = conf.args?.cni?.ips ?? [];
    argIps.forEach((t, i) => requested.push(requestedFrom(t, `args.cni.ips[${i}]`, ErrCode.InvalidNetworkConfig, true)));
    // CONVENTIONS: args.cni.ips supersedes CNI_ARGS IP=
    if (argIps.length === 0 && opts.cniArgs) {
      const ipArg = parseCniArgs(opts.cniArgs).get('IP');
      if (ipArg !== undefined) {
        const items = ipArg.split(',');
        if (items.length > MAX_REQUESTED) throw new CniError(ErrCode.InvalidEnvironmentVariables, `CNI_ARGS IP: too many addresses (limit ${MAX_REQUESTED})`);
        for (const t of items) requested.push(requestedFrom(t, 'CNI_ARGS IP', ErrCode.InvalidEnvironmentVariables, false));
      }
    }
    (conf.runtimeConfig?.ips ?? []).forEach((t, i) => requested.push(requestedFrom(t, `runtimeConfig.ips[${i}]`, ErrCode.InvalidNetworkConfig, true)));
  }

  return {
    cniVersion: conf.cniVersion,
    name: conf.name,
    rangeSets,
    requested,
    routes: (ipam.routes ?? []).map(resolveRoute),
    dataDir: ipam.dataDir !== undefined && ipam.dataDir !== '' ? absPath('ipam.dataDir', ipam.dataDir) : DEFAULT_DATA_DIR,
    resolvConf: ipam.resolvConf !== undefined && ipam.resolvConf !== '' ? absPath('ipam.resolvConf', ipam.resolvConf) : undefined,
    prevResult: conf.prevResultParsed,
  };
}

/** resolv.conf → DNS (nameserver, domain, search, options), as the reference reads it. */
export function parseResolvConfText(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    const f = line.split(/\s+/);
    if (f.length < 2) continue;
    switch (f[0]) {
      case 'nameserver': (dns.nameservers ??= []).push(f[1]); break;
      case 'domain': dns.domain = f[1]; break;
      case 'search': (dns.search ??= []).push(...f.slice(1)); break;
      case 'options': (dns.options ??= []).push(...f.slice(1)); break;
    }
  }
  return dns;
}

export function readResolvConf(file: string): DNS {
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (e) {
    throw new CniError(ErrCode.IOFailure, `cannot read resolvConf ${file}: ${(e as Error).message}`);
  }
  if (text.length > MAX_RESOLV_CONF) throw bad('ipam.resolvConf', `${file} is too large (${text.length} bytes)`);
  return parseResolvConfText(text.toString('utf8'));
}
