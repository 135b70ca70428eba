/**
 * portmap configuration: the reference's options (plugins/meta/portmap
 * main.go `PortMapConf`), validated before any side effect with code 7
 * (the reference returns 999 for all of these), and the container
 * addresses picked from prevResult as the reference picks them.
 */
import * as z from 'zod/mini';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { NetConfSchema, loadNetConf, confSchema } from '../../pkg/cni/conf';
import type { Result } from '../../pkg/cni/types';
import { type Prefix, formatIP, parsePrefix, toAddr } from '../../pkg/ip';
import type { PortMapping, PortProto } from '../../pkg/nft/portmap';
import { DEFAULT_MARK_BIT } from '../../pkg/nft/portmap-ipt';

const port = z.number().check(z.int(), z.minimum(1), z.maximum(65535));
const ENTRY_KEYS = ['hostPort', 'containerPort', 'protocol', 'hostIP'];
/**
 * Keys matched as Go's encoding/json matches them: exactly, else ignoring
 * case. containerd's CRI (go-cni's PortMapping has no json tags) sends
 * `{"HostPort":18080,"ContainerPort":8080,"Protocol":"tcp","HostIP":""}`,
 * which the reference portmap reads; so must we.
 */
export function goJsonKeys(v: unknown, keys: string[] = ENTRY_KEYS): unknown {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
  const src = v as Record<string, unknown>;
  const out: Record<string, unknown> = { ...src };
  for (const k of Object.keys(src)) {
    if (keys.includes(k)) continue;
    const canon = keys.find((c) => c.toLowerCase() === k.toLowerCase());
    if (canon && !Object.hasOwn(src, canon)) { out[canon] = src[k]; delete out[k]; }
  }
  return out;
}
const PortMapEntrySchema = z.pipe(z.transform((v: unknown) => goJsonKeys(v)), z.looseObject({
  hostPort: port,
  containerPort: port,
  protocol: z.optional(z.string()),
  hostIP: z.optional(z.string()),
}));

export const PortMapConfSchema = confSchema(z.extend(NetConfSchema, {
  backend: z.optional(z.enum(['iptables', 'nftables'])),
  snat: z.optional(z.boolean()),
  masqAll: z.optional(z.boolean()),
  markMasqBit: z.nullable(z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(31)))),
  externalSetMarkChain: z.nullable(z.optional(z.string().check(z.minLength(1), z.maxLength(28), z.regex(/^[A-Za-z0-9_.-]+$/, 'must be an iptables chain name')))),
  conditionsV4: z.nullable(z.optional(z.array(z.string()))),
  conditionsV6: z.nullable(z.optional(z.array(z.string()))),
  runtimeConfig: z.optional(z.looseObject({ portMappings: z.nullable(z.optional(z.array(PortMapEntrySchema))) })),
}));

export type Backend = 'iptables' | 'nftables';

export interface PortMapConf {
  cniVersion: string;
  name: string;
  /** undefined: pick at run time (nftables unless only iptables is installed) */
  backend?: Backend;
  snat: boolean;
  masqAll: boolean;
  markMasqBit: number;
  externalSetMarkChain?: string;
  conditionsV4: string[];
  conditionsV6: string[];
  mappings: PortMapping[];
  prevResult?: Result;
}

const invalid = (msg: string) => new CniError(ErrCode.InvalidNetworkConfig, `invalid portmap config: ${msg}`);

/**
 * Which backend conditions were written for: iptables arguments start with
 * `-` or `!`, nft expressions never do (the reference's rule).
 */
export function conditionsBackend(c: string[]): Backend | undefined {
  if (!c.length || c[0] === '') return undefined;
  return c[0][0] === '-' || c[0][0] === '!' ? 'iptables' : 'nftables';
}

function parseMapping(m: z.infer<typeof PortMapEntrySchema>, i: number): PortMapping {
  const proto = (m.protocol ?? 'tcp').toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw invalid(`runtimeConfig.portMappings[${i}].protocol: "${m.protocol}" is not tcp, udp or sctp`);
  let hostIP = '';
  if (m.hostIP) {
    try {
      hostIP = formatIP(toAddr(m.hostIP));
    } catch {
      throw invalid(`runtimeConfig.portMappings[${i}].hostIP: "${m.hostIP}" is not an IP address`);
    }
  }
  return { hostPort: m.hostPort, containerPort: m.containerPort, protocol: proto as PortProto, hostIP };
}

/** Decodes and validates stdin; `backend` left undefined when it depends on installed tools. */
export function loadPortMapConf(stdin: string | Buffer): PortMapConf {
  const c = loadNetConf(stdin, PortMapConfSchema);
  const ext = c.externalSetMarkChain ?? undefined;
  if (c.markMasqBit != null && ext !== undefined) throw invalid('cannot specify externalSetMarkChain and markMasqBit');
  const v4 = c.conditionsV4 ?? [];
  const v6 = c.conditionsV6 ?? [];
  // Options that only one backend understands (the reference's ensureBackend).
  const wants: Record<Backend, string[]> = { iptables: [], nftables: [] };
  if (ext !== undefined) wants.iptables.push('externalSetMarkChain');
  const b4 = conditionsBackend(v4);
  if (b4) wants[b4].push('conditionsV4');
  const b6 = conditionsBackend(v6);
  if (b6) wants[b6].push('conditionsV6');
  // Unset backend: a config written for the reference's iptables default
  // (iptables-only options) keeps working on iptables.
  let backend: Backend | undefined = c.backend;
  if (!backend && wants.iptables.length) backend = 'iptables';
  else if (!backend && wants.nftables.length) backend = 'nftables';
  if (backend) {
    const wrong: Backend = backend === 'iptables' ? 'nftables' : 'iptables';
    if (wants[wrong].length) throw invalid(`${backend} backend was requested but configuration contains ${wrong}-specific options [${wants[wrong].join(' ')}]`);
  }
  return {
    cniVersion: c.cniVersion,
    name: c.name,
    backend,
    snat: c.snat ?? true,
    masqAll: c.masqAll ?? false,
    markMasqBit: c.markMasqBit ?? DEFAULT_MARK_BIT,
    externalSetMarkChain: ext,
    conditionsV4: v4,
    conditionsV6: v6,
    mappings: (c.runtimeConfig?.portMappings ?? []).map(parseMapping),
    prevResult: c.prevResultParsed,
  };
}

/**
 * The container's first address of each family in prevResult: an address
 * whose `interface` points at another interface than CNI_IFNAME, or at one
 * without a sandbox (the host side), is skipped (the reference's rule).
 */
export function containerAddrs(r: Result, ifname: string): { v4?: Prefix; v6?: Prefix } {
  const out: { v4?: Prefix; v6?: Prefix } = {};
  for (const ip of r.ips ?? []) {
    let n: Prefix;
    try {
      n = parsePrefix(ip.address);
    } catch {
      continue;
    }
    if (n.v6 ? out.v6 : out.v4) continue;
    const idx = ip.interface;
    const ifs = r.interfaces ?? [];
    if (idx !== undefined && idx >= 0 && idx < ifs.length && (ifs[idx].name !== ifname || !ifs[idx].sandbox)) continue;
    if (n.v6) out.v6 = n;
    else out.v4 = n;
  }
  return out;
}
