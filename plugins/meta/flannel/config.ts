/**
 * flannel's netconf and the delegate config it renders, as flannel-io/
 * cni-plugin does (name and cniVersion copied, `ipMasq = !FLANNEL_IPMASQ`,
 * `mtu = FLANNEL_MTU`, bridge `isGateway` true unless set, host-local
 * ranges from FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET, routes = the user's
 * ipam routes + every FLANNEL_NETWORK / FLANNEL_IPV6_NETWORK, the user's
 * ipam block merged, runtimeConfig passed on), serialised as Go's
 * json.Marshal of that map would (sorted keys; routes as types.Route).
 */
import path from 'node:path';
import * as z from 'zod/mini';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { NetConfSchema, loadNetConf, confSchema } from '../../pkg/cni/conf';
import { formatIP, formatPrefix, parsePrefix, toAddr } from '../../pkg/ip';
import { goMarshal, ordered } from '../../pkg/invoke/gojson';
import type { SubnetEnv } from './subnet-env';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
export const DEFAULT_DATA_DIR = '/var/lib/cni/flannel';

const absolute = (field: string) => z.string().check(z.refine((p) => path.isAbsolute(p), { message: `${field} must be an absolute path` }));

export const FlannelConfSchema = confSchema(z.extend(NetConfSchema, {
  subnetFile: z.optional(absolute('subnetFile')),
  dataDir: z.optional(absolute('dataDir')),
  delegate: z.optional(z.record(z.string(), z.unknown())),
  ipam: z.optional(z.record(z.string(), z.unknown())),
  runtimeConfig: z.optional(z.record(z.string(), z.unknown())),
}));

export interface FlannelConf {
  name: string;
  cniVersion: string;
  /** the cniVersion as written (the delegate gets it only when non-empty) */
  rawVersion?: string;
  subnetFile: string;
  dataDir: string;
  delegate: Record<string, unknown>;
  ipam?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
  prevResult?: unknown;
}

export function loadFlannelConf(stdin: string | Buffer): FlannelConf {
  const c = loadNetConf(stdin, FlannelConfSchema);
  const raw = JSON.parse(typeof stdin === 'string' ? stdin : stdin.toString('utf8')) as Record<string, unknown>;
  const delegate = { ...(c.delegate ?? {}) };
  if ('type' in delegate && typeof delegate.type !== 'string') {
    throw new CniError(ErrCode.InvalidNetworkConfig, "'delegate' dictionary, if present, must have (string) 'type' field");
  }
  if ('name' in delegate) throw new CniError(ErrCode.InvalidNetworkConfig, "'delegate' dictionary must not have 'name' field, it'll be set by flannel");
  if ('ipam' in delegate) throw new CniError(ErrCode.InvalidNetworkConfig, "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
  return {
    name: c.name, cniVersion: c.cniVersion, rawVersion: typeof raw.cniVersion === 'string' ? raw.cniVersion : undefined,
    subnetFile: c.subnetFile ?? DEFAULT_SUBNET_FILE, dataDir: c.dataDir ?? DEFAULT_DATA_DIR, delegate,
    ipam: c.ipam, runtimeConfig: c.runtimeConfig, prevResult: raw.prevResult,
  };
}

/** A route of the user's ipam block, re-marshalled as Go's types.Route (field order, omitempty). */
function goRoute(r: unknown, i: number): unknown {
  const bad = (why: string) => new CniError(ErrCode.InvalidNetworkConfig, `failed to read IPAM routes: ipam.routes[${i}]: ${why}`);
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad('not an object');
  const o = r as Record<string, unknown>;
  if (typeof o.dst !== 'string') throw bad('dst must be a CIDR string');
  let dst: string;
  try {
    const n = parsePrefix(o.dst);
    dst = formatPrefix(n); // host bits kept, as types.ParseCIDR
  } catch {
    throw bad(`invalid dst "${o.dst.slice(0, 64)}"`);
  }
  const out: Record<string, unknown> = { dst };
  if (o.gw !== undefined && o.gw !== null && o.gw !== '') {
    if (typeof o.gw !== 'string') throw bad('gw must be an address string');
    try { out.gw = formatIP(toAddr(o.gw)); } catch { throw bad(`invalid gw "${o.gw.slice(0, 64)}"`); }
  }
  for (const k of ['mtu', 'advmss', 'priority']) {
    if (o[k] === undefined || o[k] === null) continue;
    if (!Number.isInteger(o[k])) throw bad(`${k} must be an integer`);
    if (o[k] !== 0) out[k] = o[k];
  }
  for (const k of ['table', 'scope']) {
    if (o[k] === undefined || o[k] === null) continue;
    if (!Number.isInteger(o[k])) throw bad(`${k} must be an integer`);
    out[k] = o[k];
  }
  return ordered(out);
}

/** The delegate config (a Go map: serialise with `delegateBytes`). */
export function renderDelegate(n: FlannelConf, env: SubnetEnv): Record<string, unknown> {
  const d: Record<string, unknown> = { ...n.delegate };
  if (n.runtimeConfig) d.runtimeConfig = n.runtimeConfig;
  d.name = n.name;
  if (!('type' in d)) d.type = 'bridge';
  if (!('ipMasq' in d)) d.ipMasq = !env.ipmasq; // flannel masquerades → the delegate must not
  if (!('mtu' in d)) d.mtu = env.mtu;
  if (d.type === 'bridge' && !('isGateway' in d)) d.isGateway = true;
  if (n.rawVersion) d.cniVersion = n.rawVersion;
  const ipam: Record<string, unknown> = { ...(n.ipam ?? {}) };
  if (!('type' in ipam)) ipam.type = 'host-local';
  const ranges: unknown[] = [];
  if (env.subnet) ranges.push([{ subnet: env.subnet }]);
  if (env.ip6Subnet) ranges.push([{ subnet: env.ip6Subnet }]);
  ipam.ranges = ranges;
  const userRoutes = n.ipam && 'routes' in n.ipam ? n.ipam.routes : [];
  if (userRoutes !== null && !Array.isArray(userRoutes)) throw new CniError(ErrCode.InvalidNetworkConfig, 'failed to read IPAM routes: ipam.routes must be a list');
  ipam.routes = [...(userRoutes ?? []).map(goRoute), ...[...env.networks, ...env.ip6Networks].map((dst) => ordered({ dst }))];
  d.ipam = ipam;
  return d;
}

/** The delegate config's bytes, as the reference writes them to `<dataDir>/<containerID>`. */
export const delegateBytes = (d: Record<string, unknown>): string => goMarshal(d);
