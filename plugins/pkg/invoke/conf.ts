/**
 * Network configuration loading, with libcni's semantics:
 *
 * - a directory holds `*.conflist` files (network lists) and legacy
 *   single-plugin `*.conf` / `*.json` files; names are sorted bytewise, all
 *   conflists come first, then the legacy files, each converted to a
 *   one-plugin list (libcni's ConfListFromConf: the list bytes are the
 *   Go-marshalled `{cniVersion,name,plugins:[conf]}`);
 * - list fields `disableCheck`, `disableGC`, `loadOnlyInlinedPlugins` (bool or
 *   "true"/"false" strings), `cniVersions` (the highest one not newer than
 *   what we implement wins, `cniVersion` included in the candidates);
 * - unless `loadOnlyInlinedPlugins`, plugin configs in `<dir>/<net>/*.conf`
 *   are appended to the list's plugins (sorted);
 * - each plugin config is re-marshalled from the parsed list (keys sorted),
 *   as libcni does, and must have a `type`.
 *
 * Unlike libcni, a broken file never hides the good ones: `loadConfigs`
 * returns every list it could load plus one error per bad file.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { CURRENT_VERSION, compareVersions, parseSemver } from '../cni/version';
import { goMarshal } from './gojson';

/** One plugin entry of a list (libcni PluginConfig). */
export interface PluginConfig {
  /** the decoded fields libcni's types.PluginConf reads */
  network: { type: string; name?: string; cniVersion?: string; capabilities: Record<string, boolean> };
  /** the plugin's JSON as libcni holds it (Go-marshalled, keys sorted) */
  bytes: Buffer;
  /** the parsed JSON */
  raw: Record<string, unknown>;
}

/** A network configuration list (libcni NetworkConfigList). */
export interface NetworkConfigList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  plugins: PluginConfig[];
  /** the list's bytes: what the cache stores (base64) as `config` */
  bytes: Buffer;
  /** the file it came from, when loaded from disk */
  file?: string;
}

/** Where in a file a JSON syntax error is (1-based). */
export interface TextPos { line: number; column: number }

/**
 * A configuration that cannot be used. With a file (and, for JSON syntax
 * errors, a position) the message reads `file:line:column: …`, one line.
 */
export class ConfError extends Error {
  constructor(public readonly detail: string, public readonly file?: string, public readonly pos?: TextPos) {
    super(file ? `${file}${pos ? `:${pos.line}:${pos.column}` : ''}: ${detail}` : pos ? `${detail} (line ${pos.line}, column ${pos.column})` : detail);
    this.name = 'ConfError';
  }
  /** The same error, said of `file`. */
  static inFile(e: unknown, file: string): ConfError {
    return e instanceof ConfError ? new ConfError(e.detail, file, e.pos) : new ConfError((e as Error).message, file);
  }
}

/**
 * JSON.parse's message without its position, and the position as line and
 * column (node 20 says "at position N", newer nodes "(line L column C)").
 */
export function jsonSyntaxError(text: string, e: Error): { message: string; pos?: TextPos } {
  const lc = /\s*\(line (\d+) column (\d+)\)/.exec(e.message);
  if (lc) return { message: e.message.replace(lc[0], '').replace(/ in JSON at position \d+/, ''), pos: { line: Number(lc[1]), column: Number(lc[2]) } };
  const at = / in JSON at position (\d+)/.exec(e.message);
  const end = /^Unexpected end of JSON input/.test(e.message) ? text.length : undefined;
  const offset = at ? Number(at[1]) : end;
  if (offset === undefined) return { message: e.message };
  const before = text.slice(0, offset).split('\n');
  return { message: e.message.replace(at?.[0] ?? '', ''), pos: { line: before.length, column: before[before.length - 1].length + 1 } };
}

function parseObject(bytes: Buffer | string, what: string): Record<string, unknown> {
  let v: unknown;
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  try {
    v = JSON.parse(text);
  } catch (e) {
    const { message, pos } = jsonSyntaxError(text, e as Error);
    throw new ConfError(`error parsing ${what}: ${message}`, undefined, pos);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfError(`error parsing ${what}: not a JSON object`);
  return v as Record<string, unknown>;
}

function decodePlugin(raw: Record<string, unknown>, what: string): PluginConfig['network'] {
  const type = raw.type;
  if (type !== undefined && typeof type !== 'string') throw new ConfError(`error parsing ${what}: field "type" must be a string`);
  if (!type) throw new ConfError(`error parsing ${what}: missing 'type'`);
  for (const k of ['name', 'cniVersion'] as const) {
    if (raw[k] !== undefined && raw[k] !== null && typeof raw[k] !== 'string') throw new ConfError(`error parsing ${what}: field "${k}" must be a string`);
  }
  const capabilities: Record<string, boolean> = {};
  if (raw.capabilities !== undefined && raw.capabilities !== null) {
    const c = raw.capabilities;
    if (typeof c !== 'object' || Array.isArray(c)) throw new ConfError(`error parsing ${what}: field "capabilities" must be an object of booleans`);
    for (const [k, v] of Object.entries(c as Record<string, unknown>)) {
      if (typeof v !== 'boolean') throw new ConfError(`error parsing ${what}: capabilities.${k} must be a boolean`);
      capabilities[k] = v;
    }
  }
  return { type, name: (raw.name as string | undefined) ?? undefined, cniVersion: (raw.cniVersion as string | undefined) ?? undefined, capabilities };
}

/** Parses one plugin config (libcni NetworkPluginConfFromBytes); keeps `bytes` as given. */
export function pluginConfFromBytes(bytes: Buffer | string, what = 'configuration'): PluginConfig {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const raw = parseObject(buf, what);
  return { network: decodePlugin(raw, what), bytes: buf, raw };
}

function readBool(raw: Record<string, unknown>, key: string): boolean {
  const v = raw[key];
  if (v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const s = v.toLowerCase();
    if (s === 'true') return true;
    if (s === 'false') return false;
    throw new ConfError(`error parsing configuration list: invalid value "${s}" for ${key}`);
  }
  throw new ConfError(`error parsing configuration list: invalid type ${v === null ? 'null' : typeof v} for ${key}`);
}

/** Versions above this are ignored in `cniVersions` (what our protocol code implements). */
export const IMPLEMENTED_VERSION = CURRENT_VERSION;

/**
 * Parses a network list (libcni NetworkConfFromBytes). Plugins from a
 * `<dir>/<net>/` directory are not loaded here (see `confListFromFile`).
 */
export function confListFromBytes(bytes: Buffer | string): NetworkConfigList {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const raw = parseObject(buf, 'configuration list');
  if (!('name' in raw)) throw new ConfError('error parsing configuration list: no name');
  if (typeof raw.name !== 'string') throw new ConfError(`error parsing configuration list: invalid name type ${typeof raw.name}`);
  let cniVersion = '';
  if ('cniVersion' in raw) {
    if (typeof raw.cniVersion !== 'string') throw new ConfError(`error parsing configuration list: invalid cniVersion type ${typeof raw.cniVersion}`);
    cniVersion = raw.cniVersion;
  }
  if ('cniVersions' in raw) {
    const rvs = raw.cniVersions;
    if (!Array.isArray(rvs)) throw new ConfError('error parsing configuration list: invalid type for cniVersions (want a list of strings)');
    const vs: string[] = [];
    rvs.forEach((v, i) => {
      if (typeof v !== 'string') throw new ConfError(`error parsing configuration list: invalid type for cniVersions index ${i}`);
      if (!parseSemver(v)) throw new ConfError(`error parsing configuration list: invalid cniVersions entry ${v} at index ${i}`);
      if (compareVersions(v, IMPLEMENTED_VERSION) <= 0) vs.push(v);
    });
    if (cniVersion !== '') {
      if (!parseSemver(cniVersion)) throw new ConfError(`error parsing configuration list: invalid cniVersion ${cniVersion}`);
      if (compareVersions(cniVersion, IMPLEMENTED_VERSION) <= 0) vs.push(cniVersion);
    }
    vs.sort(compareVersions);
    if (vs.length) cniVersion = vs[vs.length - 1];
  }
  const list: NetworkConfigList = {
    name: raw.name,
    cniVersion,
    disableCheck: readBool(raw, 'disableCheck'),
    disableGC: readBool(raw, 'disableGC'),
    loadOnlyInlinedPlugins: readBool(raw, 'loadOnlyInlinedPlugins'),
    plugins: [],
    bytes: buf,
  };
  if (!('plugins' in raw)) {
    if (list.loadOnlyInlinedPlugins) throw new ConfError("error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key");
    return list;
  }
  if (!Array.isArray(raw.plugins)) throw new ConfError("error parsing configuration list: invalid 'plugins' type (want a list)");
  if (raw.plugins.length === 0) throw new ConfError('error parsing configuration list: no plugins in list');
  raw.plugins.forEach((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new ConfError(`failed to parse plugin config ${i}: not a JSON object`);
    const what = `plugin config ${i}`;
    list.plugins.push({ network: decodePlugin(p as Record<string, unknown>, what), bytes: Buffer.from(goMarshal(p)), raw: p as Record<string, unknown> });
  });
  return list;
}

/** Plugin configs in `<confDir>/<net>/*.conf`, sorted (libcni NetworkPluginConfsFromFiles). */
export function pluginConfsFromDir(confDir: string, netName: string): PluginConfig[] {
  const dir = path.join(confDir, netName);
  return confFiles(dir, ['.conf']).map((f) => {
    try {
      return pluginConfFromBytes(readFileSync(f), 'configuration');
    } catch (e) {
      throw ConfError.inFile(e, f);
    }
  });
}

/** Reads a conflist file, appending `<dir>/<net>/*.conf` plugins unless loadOnlyInlinedPlugins. */
export function confListFromFile(file: string): NetworkConfigList {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new ConfError(`error reading: ${(e as Error).message}`, file);
  }
  let list: NetworkConfigList;
  try {
    list = confListFromBytes(bytes);
  } catch (e) {
    throw ConfError.inFile(e, file);
  }
  list.file = file;
  if (!list.loadOnlyInlinedPlugins) list.plugins.push(...pluginConfsFromDir(path.dirname(file), list.name));
  if (list.plugins.length === 0) throw new ConfError('no plugin configs found', file);
  return list;
}

/** Up-converts a legacy single-plugin config into a one-plugin list (libcni ConfListFromConf). */
export function confListFromConf(conf: PluginConfig): NetworkConfigList {
  const bytes = Buffer.from(goMarshal({ name: conf.network.name ?? '', cniVersion: conf.network.cniVersion ?? '', plugins: [conf.raw] }));
  return confListFromBytes(bytes);
}

/** Reads a legacy `.conf`/`.json` file and converts it to a list. */
export function confListFromConfFile(file: string): NetworkConfigList {
  try {
    const conf = pluginConfFromBytes(readFileSync(file), 'configuration');
    if (!conf.network.name) throw new ConfError('error parsing configuration: missing network name');
    const list = confListFromConf(conf);
    list.file = file;
    return list;
  } catch (e) {
    if (e instanceof ConfError && e.file) throw e;
    throw ConfError.inFile(e, file);
  }
}

/** Files in `dir` (not directories) whose extension is one of `exts`, sorted; a missing dir is empty. */
export function confFiles(dir: string, exts: readonly string[]): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: string[] = [];
  for (const n of names) {
    if (!exts.includes(path.extname(n))) continue;
    const p = path.join(dir, n);
    try {
      if (statSync(p).isDirectory()) continue;
    } catch {
      continue;
    }
    out.push(p);
  }
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

export interface LoadedConfigs {
  /** every list loaded, in libcni's order (conflists by file name, then legacy files) */
  lists: NetworkConfigList[];
  /** one per file that could not be loaded */
  errors: ConfError[];
}

/** Loads every network configuration in `dir`; bad files are reported, never fatal. */
export function loadConfigs(dir: string): LoadedConfigs {
  const lists: NetworkConfigList[] = [];
  const errors: ConfError[] = [];
  let conflists: string[] = [];
  let confs: string[] = [];
  try {
    conflists = confFiles(dir, ['.conflist']);
    confs = confFiles(dir, ['.conf', '.json']);
  } catch (e) {
    errors.push(new ConfError(`cannot read directory: ${(e as Error).message}`, dir));
  }
  for (const f of conflists) {
    try { lists.push(confListFromFile(f)); } catch (e) { errors.push(e instanceof ConfError ? e : new ConfError(String(e), f)); }
  }
  for (const f of confs) {
    try { lists.push(confListFromConfFile(f)); } catch (e) { errors.push(e instanceof ConfError ? e : new ConfError(String(e), f)); }
  }
  return { lists, errors };
}

export class NotFoundError extends Error {
  constructor(public readonly dir: string, public readonly netName: string, public readonly fileErrors: ConfError[] = []) {
    super(`no net configuration with name "${netName}" in ${dir}` + (fileErrors.length ? ` (${fileErrors.length} file(s) could not be loaded: ${fileErrors.map((e) => e.message).join('; ')})` : ''));
    this.name = 'NotFoundError';
  }
}

/**
 * Finds the network `name` in `dir`: the first matching conflist in sort
 * order, else the first matching legacy config (libcni LoadConfList). A bad
 * file does not stop the search; it is named in the error if nothing matches.
 */
export function loadConfList(dir: string, name: string): NetworkConfigList {
  const { lists, errors } = loadConfigs(dir);
  const hit = lists.find((l) => l.name === name);
  if (hit) return hit;
  throw new NotFoundError(dir, name, errors);
}
