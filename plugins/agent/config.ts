/**
 * net-conf.json as flanneld reads it (flannel pkg/subnet/config.go):
 * ParseConfig (EnableIPv4 defaults to true, keys matched case-insensitively
 * as Go's encoding/json does, unknown keys ignored, null = absent), then
 * CheckNetworkConfig (SubnetLen / SubnetMin / SubnetMax defaults and
 * bounds). The Backend block is parsed in two stages: `Type` here, the rest
 * by the backend (parseVxlanConfig). Every error names the field.
 */
import { z } from 'zod';
import { type Prefix, bigIntToIp, formatPrefix, maskOf, parseNetwork, prefixContains, prefixSize, toAddr } from '../pkg/ip';

export class ConfigError extends Error {}

export interface NetConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  enableNFTables: boolean;
  network?: Prefix;
  subnetLen: number;
  subnetMin: bigint;
  subnetMax: bigint;
  ipv6Network?: Prefix;
  ipv6SubnetLen: number;
  ipv6SubnetMin: bigint;
  ipv6SubnetMax: bigint;
  /** Backend.Type; "udp" when there is no Backend block (flanneld's default) */
  backendType: string;
  /** the raw Backend block, for the backend to parse */
  backend: Record<string, unknown>;
}

/** Keeps the keys of `o` that Go would bind to `names`: exact match preferred, else case-insensitive; null dropped. */
function foldKeys(o: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const exact = new Set<string>();
  for (const [k, v] of Object.entries(o)) {
    const name = names.includes(k) ? k : names.find((n) => n.toLowerCase() === k.toLowerCase());
    if (!name || v === null || (exact.has(name) && k !== name)) continue;
    if (k === name) exact.add(name);
    out[name] = v;
  }
  return out;
}

function addrOf(v6: boolean) {
  return z.string().transform((s, ctx) => {
    try {
      const a = toAddr(s);
      if (a.v6 === v6) return a.n;
    } catch { /* reported below */ }
    ctx.addIssue({ code: 'custom', message: `invalid IPv${v6 ? 6 : 4} address "${s.slice(0, 64)}"` });
    return z.NEVER;
  });
}
function cidrOf(v6: boolean) {
  return z.string().transform((s, ctx) => {
    try {
      const n = parseNetwork(s);
      if (n.v6 === v6) return n;
      ctx.addIssue({ code: 'custom', message: `invalid IPv${v6 ? 6 : 4} CIDR format "${s.slice(0, 64)}"` });
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
    return z.NEVER;
  });
}
const uint = z.number().int().min(0);

const FIELDS = [
  'EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'Network', 'IPv6Network', 'SubnetMin', 'SubnetMax',
  'IPv6SubnetMin', 'IPv6SubnetMax', 'SubnetLen', 'IPv6SubnetLen', 'Backend',
] as const;

const Schema = z.object({
  EnableIPv4: z.boolean().default(true),
  EnableIPv6: z.boolean().default(false),
  EnableNFTables: z.boolean().default(false),
  Network: cidrOf(false).optional(),
  IPv6Network: cidrOf(true).optional(),
  SubnetMin: addrOf(false).optional(),
  SubnetMax: addrOf(false).optional(),
  IPv6SubnetMin: addrOf(true).optional(),
  IPv6SubnetMax: addrOf(true).optional(),
  SubnetLen: uint.max(32).optional(),
  IPv6SubnetLen: uint.max(128).optional(),
  Backend: z.record(z.string(), z.unknown()).optional(),
});

/** "Field: message" for the first zod issue. */
export function zodMessage(e: z.ZodError, prefix = ''): string {
  const i = e.issues[0];
  const field = i.path.map(String).join('.');
  return `${prefix}${field || 'config'}: ${i.message}`;
}

function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${what} must be a JSON object`);
  return raw as Record<string, unknown>;
}

/** ParseConfig + CheckNetworkConfig. Throws ConfigError naming the field. */
export function parseNetConfig(text: string): NetConfig {
  const obj = parseJsonObject(text, 'network config');
  const r = Schema.safeParse(foldKeys(obj, FIELDS));
  if (!r.success) throw new ConfigError(zodMessage(r.error));
  const c = r.data;
  let backendType = 'udp';
  const backend = c.Backend ?? {};
  if (c.Backend) {
    const t = foldKeys(c.Backend, ['Type']).Type;
    if (t !== undefined && typeof t !== 'string') throw new ConfigError('Backend.Type: must be a string');
    backendType = t ?? '';
  }
  const cfg: NetConfig = {
    enableIPv4: c.EnableIPv4, enableIPv6: c.EnableIPv6, enableNFTables: c.EnableNFTables,
    network: c.Network, subnetLen: c.SubnetLen ?? 0, subnetMin: c.SubnetMin ?? 0n, subnetMax: c.SubnetMax ?? 0n,
    ipv6Network: c.IPv6Network, ipv6SubnetLen: c.IPv6SubnetLen ?? 0,
    ipv6SubnetMin: c.IPv6SubnetMin ?? 0n, ipv6SubnetMax: c.IPv6SubnetMax ?? 0n,
    backendType, backend,
  };
  // flanneld's GetIPFamily: "none defined stack"
  if (!cfg.enableIPv4 && !cfg.enableIPv6) throw new ConfigError('EnableIPv4: neither IPv4 nor IPv6 is enabled (EnableIPv4 and EnableIPv6 are both false)');
  checkFamily(cfg, false);
  checkFamily(cfg, true);
  return cfg;
}

/** flannel CheckNetworkConfig for one family (IPv4: /24 default, /28 minimum; IPv6: /64, /124). */
function checkFamily(cfg: NetConfig, v6: boolean): void {
  if (!(v6 ? cfg.enableIPv6 : cfg.enableIPv4)) return;
  const P = v6 ? 'IPv6' : '';
  const net = v6 ? cfg.ipv6Network : cfg.network;
  const bits = v6 ? 128 : 32;
  if (!net || (net.ip === 0n && net.prefixLen === 0)) {
    throw new ConfigError(`${P}Network: please define a correct ${P}Network parameter in the flannel config`);
  }
  let len = v6 ? cfg.ipv6SubnetLen : cfg.subnetLen;
  if (len > 0) {
    if (len > bits - 2) throw new ConfigError(`${P}SubnetLen: SubnetLen must be less than /${bits - 1}`);
    if (len < net.prefixLen + 2) throw new ConfigError(`${P}SubnetLen: network must be able to accommodate at least four subnets`);
  } else if (net.prefixLen > bits - 4) {
    throw new ConfigError(`${P}Network: ${P ? 'IPv6Network' : 'network'} is too small. Minimum useful network prefix is /${bits - 4}`);
  } else {
    const dflt = v6 ? 64 : 24;
    len = net.prefixLen <= dflt - 2 ? dflt : net.prefixLen + 2;
  }
  const size = 1n << BigInt(bits - len);
  let min = v6 ? cfg.ipv6SubnetMin : cfg.subnetMin;
  let max = v6 ? cfg.ipv6SubnetMax : cfg.subnetMax;
  if (min === 0n) min = net.ip + size;
  else if (!prefixContains(net, min)) throw new ConfigError(`${P}SubnetMin: ${P}SubnetMin is not in the range of the ${P}Network`);
  if (max === 0n) max = net.ip + prefixSize(net) - size;
  else if (!prefixContains(net, max)) throw new ConfigError(`${P}SubnetMax: ${P}SubnetMax is not in the range of the ${P}Network`);
  const mask = maskOf(len, v6);
  if ((min & mask) !== min) throw new ConfigError(`${P}SubnetMin: ${P}SubnetMin is not on a SubnetLen boundary: ${bigIntToIp(min, v6)}`);
  if ((max & mask) !== max) throw new ConfigError(`${P}SubnetMax: ${P}SubnetMax is not on a SubnetLen boundary: ${bigIntToIp(max, v6)}`);
  if (v6) Object.assign(cfg, { ipv6SubnetLen: len, ipv6SubnetMin: min, ipv6SubnetMax: max });
  else Object.assign(cfg, { subnetLen: len, subnetMin: min, subnetMax: max });
}

/** The vxlan backend's block (flannel backend/vxlan VXLANConfig). mtu 0 = the underlay's. */
export interface VxlanConfig {
  vni: number;
  port: number;
  mtu: number;
  gbp: boolean;
  learning: boolean;
  directRouting: boolean;
}

const VxlanSchema = z.object({
  VNI: uint.max(0xffffff).default(1),
  Port: uint.max(65535).default(0),
  MTU: uint.max(65535).default(0).refine((m) => m === 0 || m >= 118, 'must be 0 (the underlay MTU) or at least 118 (68 after the 50-byte VXLAN overhead)'),
  GBP: z.boolean().default(false),
  Learning: z.boolean().default(false),
  DirectRouting: z.boolean().default(false),
});

/** Parses Backend for Type "vxlan" (VNI 1, port 0 = the kernel's 8472). Throws ConfigError naming Backend.<field>. */
export function parseVxlanConfig(backend: Record<string, unknown>): VxlanConfig {
  const r = VxlanSchema.safeParse(foldKeys(backend, ['VNI', 'Port', 'MTU', 'GBP', 'Learning', 'DirectRouting']));
  if (!r.success) throw new ConfigError(zodMessage(r.error, 'Backend.'));
  const c = r.data;
  return { vni: c.VNI, port: c.Port, mtu: c.MTU, gbp: c.GBP, learning: c.Learning, directRouting: c.DirectRouting };
}

/** "network 10.244.0.0/16, subnet length /24; IPv6 network fc00::/48, subnet length /64" */
export function describeNetworks(c: NetConfig): string {
  const out: string[] = [];
  if (c.enableIPv4 && c.network) out.push(`network ${formatPrefix(c.network)}, subnet length /${c.subnetLen}`);
  if (c.enableIPv6 && c.ipv6Network) out.push(`IPv6 network ${formatPrefix(c.ipv6Network)}, subnet length /${c.ipv6SubnetLen}`);
  return out.join('; ');
}

/** The families the network config enables (EnableIPv4, EnableIPv6). */
export interface Families {
  v4: boolean;
  v6: boolean;
}
