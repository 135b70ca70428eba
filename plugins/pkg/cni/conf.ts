/**
 * Network configuration decoding: JSON → a zod-validated object. The base
 * schema holds the fields every plugin shares; plugins extend it.
 *
 * Errors: invalid JSON → 6; schema failure → 7 naming the field; bad name
 * → 7; cniVersion not supported → 1; a field the plugin does not support → 2.
 */
import v8 from 'node:v8';
import * as z from 'zod/mini';
import { CniError, ErrCode } from './errors';
import { parseResult } from './convert';
import type { Result } from './types';
import { IMPLICIT_VERSION, SUPPORTED_VERSIONS, isSupportedVersion } from './version';
import { validateNetworkName } from './validate';

/** Largest stdin we read (a real conflist entry is a few KiB). */
export const MAX_STDIN = 4 << 20;

// zod's mini API (functions, not methods: a schema object carries no
// per-instance methods), so a plugin's V8 snapshot is ~0.75 MB smaller and
// each start ~5 ms shorter; error messages are the same core's, in English.
z.config(z.locales.en());

export const DnsSchema = z.object({
  nameservers: z.optional(z.array(z.string())),
  domain: z.optional(z.string()),
  search: z.optional(z.array(z.string())),
  options: z.optional(z.array(z.string())),
});

export const IpamSchema = z.looseObject({ type: z.optional(z.string()) });

/**
 * Declares a plugin's config schema. While a V8 startup snapshot is built
 * (scripts/build.mjs) the schema is parsed once, without zod's compiled
 * fast path as pluginMain parses, so that zod's lazy first-parse work (the
 * recursion walk over the schema graph, normalized shapes) is in the
 * snapshot instead of in every one-shot plugin process (a first parse of
 * bridge's config: 4.4 ms → ~1 ms here). Plugins' warm-ups (pluginMain)
 * go deeper, with realistic configs.
 */
export function confSchema<S extends z.ZodMiniType>(schema: S): S {
  if (v8.startupSnapshot?.isBuildingSnapshot()) schema.safeParse({}, { jitless: true });
  return schema;
}

// zod compiles each object schema into a `new Function` on its first parse:
// a gain where the same schemas parse again and again (the CNI server's
// workers, flaxd), a loss in a one-shot plugin process, which parses each
// schema once (pluginMain turns it off there).
let jitless = false;
/** For one-shot processes (pluginMain): parse without zod's compiled fast path. */
export function parseWithoutJit(): void {
  jitless = true;
}

export const NetConfSchema = confSchema(z.looseObject({
  cniVersion: z.optional(z.string()),
  name: z.string(),
  type: z.optional(z.string()),
  capabilities: z.optional(z.record(z.string(), z.boolean())),
  ipam: z.optional(IpamSchema),
  dns: z.optional(DnsSchema),
  runtimeConfig: z.optional(z.looseObject({})),
  args: z.optional(z.looseObject({})),
  prevResult: z.optional(z.unknown()),
}));

/** Parses JSON; anything else than an object is a decode error (6). */
export function parseJsonObject(stdin: string | Buffer, what = 'network config'): Record<string, unknown> {
  const text = typeof stdin === 'string' ? stdin : stdin.toString('utf8');
  if (text.length > MAX_STDIN) throw new CniError(ErrCode.DecodingFailure, `${what} is too large (${text.length} bytes, limit ${MAX_STDIN})`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrCode.DecodingFailure, `error parsing ${what}: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CniError(ErrCode.DecodingFailure, `error parsing ${what}: not a JSON object`);
  return v as Record<string, unknown>;
}

/** Formats a zod error as "field `a.b[0]`: message; …". */
export function zodMessage(err: z.core.$ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => {
      const p = i.path.map((s) => (typeof s === 'number' ? `[${s}]` : `.${String(s)}`)).join('').replace(/^\./, '');
      return p ? `field \`${p}\`: ${i.message}` : i.message;
    })
    .join('; ');
}

/** Validates `obj` against `schema`; failure → CniError(7) naming the field. */
export function parseWith<S extends z.ZodMiniType>(schema: S, obj: unknown, what = 'invalid network config'): z.infer<S> {
  const r = schema.safeParse(obj, jitless ? { jitless } : undefined);
  if (!r.success) throw new CniError(ErrCode.InvalidNetworkConfig, `${what}: ${zodMessage(r.error)}`);
  return r.data;
}

/** The config's version (absent → 0.1.0), checked against what the plugin supports. */
export function confVersion(raw: Record<string, unknown>, supported: readonly string[] = SUPPORTED_VERSIONS): string {
  const v = raw.cniVersion ?? IMPLICIT_VERSION;
  if (typeof v !== 'string') throw new CniError(ErrCode.InvalidNetworkConfig, 'invalid network config: field `cniVersion`: expected string');
  if (!supported.includes(v) || !isSupportedVersion(v)) {
    throw new CniError(ErrCode.IncompatibleVersion, 'incompatible CNI versions', `config is "${v.slice(0, 32)}", plugin supports [${supported.map((s) => `"${s}"`).join(' ')}]`);
  }
  return v;
}

export interface DecodeOptions {
  supportedVersions?: readonly string[];
  /** top-level fields this plugin cannot honour (→ code 2) */
  unsupportedFields?: readonly string[];
}

/**
 * Decodes stdin with a plugin schema (which should extend NetConfSchema).
 * Returns the parsed config with `cniVersion` filled and `prevResult`
 * (if any) parsed into the canonical result (`prevResultParsed`).
 */
export function loadNetConf<S extends z.ZodMiniType>(
  stdin: string | Buffer,
  schema: S,
  opts: DecodeOptions = {},
): z.infer<S> & { cniVersion: string; name: string; prevResultParsed?: Result } {
  const raw = parseJsonObject(stdin);
  validateNetworkName(raw.name);
  const version = confVersion(raw, opts.supportedVersions);
  for (const f of opts.unsupportedFields ?? []) {
    if (raw[f] !== undefined) throw new CniError(ErrCode.UnsupportedField, `unsupported field "${f}"`, `this plugin does not support "${f}"`);
  }
  const conf = parseWith(schema, raw) as z.infer<S> & { cniVersion: string; name: string; prevResultParsed?: Result };
  (conf as { cniVersion: string }).cniVersion = version;
  if (raw.prevResult !== undefined && raw.prevResult !== null) {
    try {
      conf.prevResultParsed = parseResult(raw.prevResult, version);
    } catch (e) {
      if (e instanceof CniError) throw new CniError(ErrCode.DecodingFailure, `could not parse prevResult: ${e.message}`);
      throw e;
    }
  }
  return conf;
}
