/**
 * What goes into a plugin and what comes out (libcni's RuntimeConf,
 * buildOneConfig and result handling): an attachment's runtime arguments,
 * one plugin's stdin from its list, a plugin's ADD output normalised as
 * libcni holds it, a cached result in another version.
 */
import { CniError, ErrCode } from '../cni/errors';
import { convertResult, parseResult } from '../cni/convert';
import { isSupportedVersion } from '../cni/version';
import type { Result } from '../cni/types';
import type { PluginConfig } from './conf';
import { goMarshal, ordered } from './gojson';

/** One attachment's runtime arguments (libcni RuntimeConf). */
export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS pairs */
  args?: [string, string][];
  /** capability args, injected into `runtimeConfig` of plugins that declare them */
  capabilityArgs?: Record<string, unknown>;
}

/** A result as a plugin printed it (version-specific JSON shape). */
export type RawResult = Record<string, unknown>;

/**
 * Builds one plugin's stdin the way libcni's buildOneConfig does: `name`,
 * `cniVersion` and `prevResult` injected, then `runtimeConfig` replaced by
 * the declared capabilities' args (only when there is at least one).
 * Go re-marshals the config as a map (sorted keys); the injected
 * prevResult keeps its struct field order unless the runtimeConfig pass
 * re-marshals it too.
 */
export function buildOneConfig(name: string, cniVersion: string, plugin: PluginConfig, prevResult: RawResult | null, rt: RuntimeConf | null): Buffer {
  const conf = JSON.parse(plugin.bytes.toString('utf8')) as Record<string, unknown>;
  conf.name = name;
  conf.cniVersion = cniVersion;
  if (prevResult) conf.prevResult = ordered(prevResult);
  const rc: Record<string, unknown> = {};
  if (rt?.capabilityArgs) {
    for (const [cap, on] of Object.entries(plugin.network.capabilities)) {
      if (on && Object.prototype.hasOwnProperty.call(rt.capabilityArgs, cap)) rc[cap] = rt.capabilityArgs[cap];
    }
  }
  if (Object.keys(rc).length) {
    conf.runtimeConfig = rc;
    if (prevResult) conf.prevResult = prevResult; // second InjectConf pass: now a map
  }
  return Buffer.from(goMarshal(conf));
}

/**
 * Normalises a plugin's output into the result libcni would hold: parsed in
 * its own cniVersion (the config's when it has none) and re-rendered, which
 * drops unknown fields and orders keys as Go's result structs do.
 */
export function normaliseResult(stdout: Buffer, confVersion: string, plugin: string): RawResult {
  const text = stdout.toString('utf8').trim();
  if (text === '') throw new CniError(ErrCode.DecodingFailure, `plugin ${plugin} returned no result on ADD`, '', { plugin: plugin });
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    const clip = text.length > 200 ? text.slice(0, 200) + '…' : text;
    throw new CniError(ErrCode.DecodingFailure, `plugin ${plugin} printed invalid JSON: ${(e as Error).message}`, `output: ${JSON.stringify(clip)}`, { plugin: plugin });
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new CniError(ErrCode.DecodingFailure, `plugin ${plugin} printed a non-object result`, '', { plugin: plugin });
  const o = obj as Record<string, unknown>;
  const version = typeof o.cniVersion === 'string' && o.cniVersion !== '' ? o.cniVersion : confVersion;
  if (!isSupportedVersion(version)) throw new CniError(ErrCode.IncompatibleVersion, `plugin ${plugin} returned unsupported result version "${version}"`, '', { plugin: plugin });
  let r: Result;
  try {
    r = parseResult(o, version);
  } catch (e) {
    throw new CniError(ErrCode.DecodingFailure, `plugin ${plugin} returned an invalid result: ${(e as Error).message}`, '', { plugin: plugin });
  }
  try {
    return convertResult(r, version);
  } catch {
    return { ...o, cniVersion: version };
  }
}

/** Converts a cached / previous result to `version` (libcni GetAsVersion). */
export function resultAsVersion(raw: RawResult, version: string): RawResult {
  const from = typeof raw.cniVersion === 'string' && raw.cniVersion ? raw.cniVersion : version;
  if (!isSupportedVersion(from)) throw new Error(`unsupported cached result version "${from}"`);
  return convertResult(parseResult(raw, from), version);
}

/** Version info a plugin reports (VERSION). */
