/**
 * `flax cni add|del|check|gc|status <network> [netns]` — cnitool-compatible:
 * NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_ARGS, CAP_ARGS (JSON),
 * CNI_IFNAME (default eth0), container id `cnitool-` + hex(sha512(abs
 * netns path))[0:20]; ADD prints the result JSON (4-space indent, like
 * cnitool). Flags override the environment.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parseResult } from '../../pkg/cni/convert';
import { compareVersions } from '../../pkg/cni/version';
import { CniError } from '../../pkg/cni/errors';
import { loadConfList, type NetworkConfigList } from '../../pkg/invoke/conf';
import { readCache } from '../../pkg/invoke/cache';
import { CniConfig, ChainError, GcError, type GcAttachment } from '../../pkg/invoke/api';
import { goMarshalIndent } from '../../pkg/invoke/gojson';
import type { RawResult, RuntimeConf } from '../../pkg/invoke/result';
import { NETNS_RUN_DIR } from '../../pkg/ns/ns';
import { table } from '../table';
import { UsageError, confDirOf, confDirOption, parseDuration } from '../usage';
import type { CliIo } from '../command';

export const CNI_VERBS = ['add', 'del', 'check', 'gc', 'status'] as const;
export type CniVerb = (typeof CNI_VERBS)[number];

/** The options of `flax cni`, shared by the yargs definition and the fast path. */
export const CNI_OPTIONS = {
  'container-id': { type: 'string', describe: 'container id (default: cnitool-<hex of sha512(netns path)>[:20], as cnitool)' },
  ifname: { type: 'string', describe: 'interface name in the netns (default: $CNI_IFNAME or eth0)' },
  'cache-dir': { type: 'string', describe: 'libcni cache root; results in <dir>/results (default /var/lib/cni)' },
  'cni-path': { type: 'string', describe: 'plugin dirs, ":"-separated (default: $CNI_PATH)' },
  'cni-conf-dir': confDirOption('config dir (default: $NETCONFPATH or /etc/cni/net.d)'),
  args: { type: 'string', describe: 'CNI_ARGS "K=V;K2=V2" (default: $CNI_ARGS)' },
  'cap-args': { type: 'string', describe: 'capability args as JSON, e.g. {"portMappings":[…]} (default: $CAP_ARGS)' },
  output: { type: 'string', alias: 'o', describe: 'output format: json (cnitool) or table', choices: ['json', 'table'] },
  timeout: { type: 'string', describe: 'per-plugin timeout: a duration such as 30s, 500ms, 2m; a bare number is seconds (default 120s)' },
  valid: { type: 'string', array: true, describe: 'gc: a still-valid attachment <containerID>/<ifname> (repeatable); none = every cached attachment of the network is stale' },
  validate: { type: 'boolean', describe: 'add: run VERSION on every plugin first and fail if one does not support the list\'s version' },
} as const;

export interface CniCmdOptions {
  verb: CniVerb;
  network: string;
  netns?: string;
  containerId?: string;
  ifname?: string;
  cacheDir?: string;
  cniPath?: string;
  cniConfDir?: string;
  args?: string;
  capArgs?: string;
  output?: string;
  timeout?: string;
  valid?: string[];
  validate?: boolean;
}

/** cnitool's container id for a netns path. */
export function cnitoolContainerId(netns: string): string {
  const abs = path.resolve(netns);
  return 'cnitool-' + createHash('sha512').update(abs).digest().subarray(0, 10).toString('hex');
}

/**
 * The netns path of a `flax cni` argument. A path (with a "/") is taken as
 * given, as cnitool does. A bare name is `<runDir>/<name>` when that exists
 * (what `ip netns add` / `flax netns add` create), else `./<name>` when that
 * exists (cnitool's reading); otherwise ADD/CHECK fail naming both paths,
 * while DEL uses `<runDir>/<name>`: a gone netns is normal for DEL and the
 * container id is the one ADD derived from that path.
 */
export function resolveNetns(given: string, verb: CniVerb, runDir = NETNS_RUN_DIR, cwd = process.cwd()): string {
  if (given.includes('/')) return path.resolve(cwd, given);
  const pinned = path.join(runDir, given);
  const local = path.resolve(cwd, given);
  if (existsSync(pinned)) return pinned;
  if (existsSync(local)) return local;
  if (verb === 'del') return pinned;
  throw new Error(`netns "${given}" not found: tried ${pinned} and ${local}`);
}

/** CNI_ARGS "K=V;K2=V2" → pairs (each pair needs a key and a value, as cnitool). */
export function parseArgsPairs(s: string): [string, string][] {
  if (s === '') return [];
  return s.split(';').map((pair) => {
    const eq = pair.indexOf('=');
    const k = eq < 0 ? '' : pair.slice(0, eq);
    const v = eq < 0 ? '' : pair.slice(eq + 1);
    if (!k || !v) throw new UsageError(`invalid CNI_ARGS pair ${JSON.stringify(pair)} (want K=V;K2=V2)`);
    return [k, v];
  });
}

function capArgs(s: string | undefined): Record<string, unknown> | undefined {
  if (!s) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new UsageError(`CAP_ARGS is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError('CAP_ARGS must be a JSON object');
  return v as Record<string, unknown>;
}

/** Renders an ADD result as tables (interfaces, IPs, routes, DNS). */
export function resultTable(raw: RawResult): string {
  const version = typeof raw.cniVersion === 'string' ? raw.cniVersion : '1.0.0';
  const r = parseResult(raw, version);
  const ifs = r.interfaces ?? [];
  let out = `cniVersion ${version}\n\n`;
  if (ifs.length) out += table(['#', 'INTERFACE', 'MAC', 'SANDBOX'], ifs.map((i, n) => [n, i.name, i.mac, i.sandbox])) + '\n';
  out += table(['ADDRESS', 'GATEWAY', 'INTERFACE'], (r.ips ?? []).map((ip) => [ip.address, ip.gateway, ip.interface === undefined ? undefined : ifs[ip.interface]?.name ?? String(ip.interface)]));
  if (r.routes?.length) out += '\n' + table(['ROUTE', 'VIA'], r.routes.map((x) => [x.dst, x.gw]));
  if (r.dns && Object.keys(r.dns).length) out += `\nDNS ${JSON.stringify(r.dns)}\n`;
  return out;
}

/** Runs one `flax cni` command; returns the exit code. */
export async function runCni(o: CniCmdOptions, io: CliIo): Promise<number> {
  const env = io.env;
  const netconfPath = confDirOf(o.cniConfDir, env);
  const cniPath = (o.cniPath ?? env.CNI_PATH ?? '').split(':').filter(Boolean);
  // Every value is checked before anything runs (usage errors exit 2).
  const timeoutMs = o.timeout !== undefined ? parseDuration(o.timeout) : undefined;
  if (o.output !== undefined && o.output !== 'json' && o.output !== 'table') throw new UsageError(`invalid --output "${o.output}": choose one of json, table`);
  const valid = o.valid?.length ? o.valid.map(parseValid) : undefined;
  const rtArgs = parseArgsPairs(o.args ?? env.CNI_ARGS ?? '');
  const rtCaps = capArgs(o.capArgs ?? env.CAP_ARGS);
  const list = loadConfList(netconfPath, o.network);
  // Plugins' stderr (their notes, e.g. a rollback's) is shown once, as it comes.
  const stderr = new Writable({ write: (chunk: Buffer, _enc, done) => { io.stderr(chunk.toString('utf8')); done(); } });
  const cni = new CniConfig({ path: cniPath, cacheDir: o.cacheDir, timeoutMs, env, stderr });

  if (o.verb === 'gc') {
    try {
      const rep = await cni.gcNetworkList(list, valid);
      if (o.output === 'table') {
        io.stdout(table(['DELETED CONTAINER', 'IFNAME', 'NETNS'], rep.deleted.map((a) => [a.containerId, a.ifName, a.netns])));
        io.stdout(`GC sent to: ${rep.gcSent.join(', ') || '(none: cniVersion < 1.1.0' + (list.disableGC ? ' or disableGC' : '') + ')'}\n`);
      }
      return 0;
    } catch (e) {
      if (e instanceof GcError) {
        for (const err of e.report.errors) io.stderr(`flax: ${err.message}\n`);
        return 1;
      }
      throw e;
    }
  }
  if (o.verb === 'status') {
    const asked = await cni.getStatusNetworkList(list);
    if (o.output === 'table') io.stdout(asked ? `network ${list.name}: ready\n` : `network ${list.name}: cniVersion ${list.cniVersion} has no STATUS (assumed ready)\n`);
    return 0;
  }

  if (!o.netns) throw new UsageError(`${o.verb} needs <netns>`);
  const netns = resolveNetns(o.netns, o.verb);
  const rt: RuntimeConf = {
    containerId: o.containerId || cnitoolContainerId(netns),
    netns,
    ifName: o.ifname || env.CNI_IFNAME || 'eth0',
    args: rtArgs,
    capabilityArgs: rtCaps,
  };
  if (rt.args && rt.args.length === 0) delete rt.args;
  switch (o.verb) {
    case 'add': {
      if (o.validate) await cni.validateNetworkList(list);
      const res = await cni.addNetworkList(list, rt);
      io.stdout(o.output === 'table' ? resultTable(res) : goMarshalIndent(res) + '\n');
      return 0;
    }
    case 'del': {
      // Better than cnitool: with no CNI_ARGS / CAP_ARGS given, DEL uses the
      // ones cached at ADD, so portmap & co. can find their rules (the
      // reference portmap's DEL is a no-op without portMappings).
      const argsGiven = (o.args ?? env.CNI_ARGS ?? '') !== '';
      const capsGiven = (o.capArgs ?? env.CAP_ARGS ?? '') !== '';
      if (!argsGiven || !capsGiven) {
        const cached = readCache(cni.cacheDir, list.name, rt.containerId, rt.ifName);
        if (cached.kind === 'v1') {
          if (!argsGiven && cached.info.cniArgs?.length) rt.args = cached.info.cniArgs;
          if (!capsGiven && cached.info.capabilityArgs) rt.capabilityArgs = cached.info.capabilityArgs;
        }
      }
      await cni.delNetworkList(list, rt);
      return 0;
    }
    case 'check':
      requireCachedAttachment(cni, list, rt);
      await cni.checkNetworkList(list, rt);
      if (o.output === 'table') io.stdout(`network ${list.name}, container ${rt.containerId}, ${rt.ifName}: OK\n`);
      return 0;
  }
  return 0;
}

/** `--valid <containerID>/<ifname>` */
function parseValid(v: string): GcAttachment {
  const i = v.lastIndexOf('/');
  if (i <= 0 || i === v.length - 1) throw new UsageError(`--valid wants <containerID>/<ifname>, got ${JSON.stringify(v)}`);
  return { containerID: v.slice(0, i), ifname: v.slice(i + 1) };
}

/**
 * CHECK compares the kernel with the result cached at ADD: without one
 * there is nothing to check (the plugins would report whatever they trip
 * over first, e.g. "loopback interface is down").
 */
function requireCachedAttachment(cni: CniConfig, list: NetworkConfigList, rt: RuntimeConf): void {
  if (list.disableCheck || compareVersions(list.cniVersion || '0.1.0', '0.4.0') < 0) return;
  if (readCache(cni.cacheDir, list.name, rt.containerId, rt.ifName).kind !== 'none') return;
  throw new Error(`no cached attachment of network "${list.name}" for container ${rt.containerId}, ${rt.ifName} (netns ${rt.netns}) in ${path.join(cni.cacheDir, 'results')}: nothing to check — was it added with this --cache-dir?`);
}

/**
 * Formats an error for the terminal, as one line; chain errors name the
 * plugin and code. The plugin's stderr was already shown as it came, so it
 * is not repeated — when it was the only message, the line points at it.
 */
export function formatError(e: unknown): string {
  if (e instanceof ChainError) {
    const c = e.cause;
    if (c instanceof CniError && c.stderr && c.msg === `netplugin failed: ${JSON.stringify(c.stderr)}`) {
      return `flax: plugin type="${e.pluginType}" failed (${e.verb.toLowerCase()}): see its stderr above (code ${e.code})`;
    }
    return `flax: ${e.message} (code ${e.code})`;
  }
  return `flax: ${e instanceof Error ? e.message : String(e)}`;
}
