/**
 * The runtime side of CNI (libcni's CNIConfig): runs a network list's
 * plugins for ADD / DEL / CHECK / GC / STATUS and keeps the attachment
 * cache.
 *
 * Design note. Behaviour follows libcni v1.2+ so that runtimes and tools
 * built on either can share a node:
 * - ADD runs the plugins in order, each one's result is the next one's
 *   `prevResult`; the first error stops the chain; the final result is
 *   cached (cniCacheV1) and returned.
 * - DEL runs in reverse, every plugin receiving the cached final result
 *   (converted to the list's version) as `prevResult` (cniVersion ≥ 0.4.0);
 *   an unreadable cache entry is dropped and DEL proceeds without it.
 * - CHECK (≥ 0.4.0) runs forward with the cached result; `disableCheck`
 *   makes it a no-op.
 * - GC DELs every cached attachment of the list that is not in the valid
 *   list, then (≥ 1.1.0) sends GC to each plugin with
 *   `cni.dev/valid-attachments` and `cni.dev/attachments`; errors are
 *   collected, never stop it. `disableGC` skips it all.
 * - STATUS (≥ 1.1.0) asks each plugin, stopping at the first error.
 * - Each plugin's stdin is its config with `name` and `cniVersion` from the
 *   list, `prevResult`, and `runtimeConfig` holding only the capability
 *   args the plugin declares in `capabilities` — serialised like Go does.
 * Differences (documented, deliberate): the cache entry is also removed
 *   after a successful DEL of a pre-0.4.0 list (libcni leaks it), and plugin
 *   executions have a timeout.
 */
import { CniError, ErrCode, errorText } from '../cni/errors';
import { CURRENT_VERSION, compareVersions, isSupportedVersion, parseSemver } from '../cni/version';
import { validateContainerId, validateIfName, validateNetworkName } from '../cni/validate';
import { DEFAULT_CACHE_DIR, deleteCache, listAttachments, readCache, writeCache, type Attachment } from './cache';
import type { NetworkConfigList, PluginConfig } from './conf';
import { RawExec, argsAsEnv, type Exec, type InvokeArgs } from './plugin-exec';
import { goMarshal, ordered } from './gojson';
import { type RawResult, type RuntimeConf, buildOneConfig, normaliseResult, resultAsVersion } from './result';

/** A still-valid attachment for GC (the JSON field names are the spec's). */
export interface GcAttachment {
  containerID: string;
  ifname: string;
}

export interface CniConfigOptions {
  /** CNI_PATH: directories searched for plugins, in order */
  path: string[];
  /** cache root; results go to `<cacheDir>/results` (default /var/lib/cni) */
  cacheDir?: string;
  /** how plugins are run (default: spawn them) */
  exec?: Exec;
  /** per-plugin execution timeout in ms (default 120000; 0 = none) */
  timeoutMs?: number;
  /** where plugins' stderr is copied (default process.stderr; null = only captured) */
  stderr?: NodeJS.WritableStream | null;
  /** environment the plugins inherit (default process.env) */
  env?: NodeJS.ProcessEnv;
}

/** A chain step failed: which plugin, which verb, and the plugin's error. */
export class ChainError extends Error {
  constructor(
    public readonly verb: string,
    public readonly pluginType: string,
    public override readonly cause: Error,
  ) {
    super(`plugin type="${pluginType}" failed (${verb.toLowerCase()}): ${errorText(cause)}`);
    this.name = 'ChainError';
  }
  /** the CNI error code (999 when the plugin gave none) */
  get code(): number {
    const c = this.cause as Partial<CniError>;
    return typeof c.code === 'number' ? c.code : 999;
  }
}

export interface GcReport {
  /** stale attachments that were DELeted */
  deleted: Attachment[];
  /** plugins that received GC */
  gcSent: string[];
  errors: Error[];
}
export class GcError extends Error {
  constructor(public readonly report: GcReport) {
    super(report.errors.map((e) => e.message).join('; '));
    this.name = 'GcError';
  }
}

const describe = (p: PluginConfig) => p.network.type;

export interface PluginVersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

export class CniConfig {
  readonly path: string[];
  readonly cacheDir: string;
  readonly exec: Exec;
  private readonly timeoutMs: number;
  private readonly stderr: NodeJS.WritableStream | null;
  private readonly env: NodeJS.ProcessEnv;
  private readonly versionCache = new Map<string, PluginVersionInfo>();

  constructor(opts: CniConfigOptions) {
    this.path = opts.path;
    this.cacheDir = opts.cacheDir || DEFAULT_CACHE_DIR;
    this.exec = opts.exec ?? new RawExec();
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.stderr = opts.stderr === undefined ? process.stderr : opts.stderr;
    this.env = opts.env ?? process.env;
  }

  private async run(plugin: PluginConfig, a: Omit<InvokeArgs, 'path'>, stdin: Buffer): Promise<Buffer> {
    const pluginPath = this.exec.findInPath(plugin.network.type, this.path);
    return this.exec.execPlugin(pluginPath, argsAsEnv({ ...a, path: this.path }, this.env), stdin, { timeoutMs: this.timeoutMs, stderr: this.stderr });
  }

  private rtArgs(command: string, rt: RuntimeConf): Omit<InvokeArgs, 'path'> {
    return { command, containerId: rt.containerId, netns: rt.netns, ifname: rt.ifName, pluginArgs: rt.args };
  }

  /** ADD one plugin (no caching); returns its normalised result. */
  async addNetwork(name: string, cniVersion: string, plugin: PluginConfig, prevResult: RawResult | null, rt: RuntimeConf): Promise<RawResult> {
    this.exec.findInPath(plugin.network.type, this.path);
    validateContainerId(rt.containerId);
    validateNetworkName(name);
    validateIfName(rt.ifName);
    const stdin = buildOneConfig(name, cniVersion, plugin, prevResult, rt);
    const out = await this.run(plugin, this.rtArgs('ADD', rt), stdin);
    return normaliseResult(out, cniVersion, plugin.network.type);
  }

  /** ADD the whole list; caches and returns the final result. */
  async addNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<RawResult> {
    let result: RawResult | null = null;
    for (const p of list.plugins) {
      try {
        result = await this.addNetwork(list.name, list.cniVersion, p, result, rt);
      } catch (e) {
        throw new ChainError('ADD', describe(p), e as Error);
      }
    }
    const final = result ?? { cniVersion: list.cniVersion };
    try {
      writeCache(this.cacheDir, {
        kind: 'cniCacheV1', containerId: rt.containerId, config: list.bytes, ifName: rt.ifName, networkName: list.name,
        netns: rt.netns, cniArgs: rt.args, capabilityArgs: rt.capabilityArgs, result: final,
      });
    } catch (e) {
      throw new Error(`failed to set network "${list.name}" cached result: ${(e as Error).message}`);
    }
    return final;
  }

  /**
   * The cached final result of an attachment, converted to the list's
   * version; null when there is none. Throws on a corrupt entry.
   */
  getCachedResult(list: NetworkConfigList, rt: Pick<RuntimeConf, 'containerId' | 'ifName'>): RawResult | null {
    const c = readCache(this.cacheDir, list.name, rt.containerId, rt.ifName);
    if (c.kind === 'none') return null;
    if (c.kind === 'corrupt') throw new Error(`failed to get network "${list.name}" cached result: ${c.error}`);
    const raw = c.kind === 'v1' ? c.info.result : c.result;
    if (!raw) return null;
    try {
      return resultAsVersion(raw, list.cniVersion);
    } catch (e) {
      throw new Error(`failed to convert cached result to config version "${list.name}": ${(e as Error).message}`);
    }
  }

  /** DEL the list in reverse order with the cached result as prevResult; removes the cache entry. */
  async delNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    let cached: RawResult | null = null;
    if (compareVersions(list.cniVersion || '0.1.0', '0.4.0') >= 0) {
      try {
        cached = this.getCachedResult(list, rt);
      } catch {
        deleteCache(this.cacheDir, list.name, rt.containerId, rt.ifName);
        cached = null;
      }
    }
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      const p = list.plugins[i];
      try {
        const stdin = buildOneConfig(list.name, list.cniVersion, p, cached, rt);
        await this.run(p, this.rtArgs('DEL', rt), stdin);
      } catch (e) {
        throw new ChainError('DEL', describe(p), e as Error);
      }
    }
    if (rt.containerId && rt.ifName) deleteCache(this.cacheDir, list.name, rt.containerId, rt.ifName);
  }

  /** CHECK the list forward with the cached result. */
  async checkNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (compareVersions(list.cniVersion || '0.1.0', '0.4.0') < 0) {
      throw new CniError(ErrCode.IncompatibleVersion, `configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    const cached = this.getCachedResult(list, rt);
    for (const p of list.plugins) {
      try {
        const stdin = buildOneConfig(list.name, list.cniVersion, p, cached, rt);
        await this.run(p, this.rtArgs('CHECK', rt), stdin);
      } catch (e) {
        throw new ChainError('CHECK', describe(p), e as Error);
      }
    }
  }

  /**
   * GC: DEL stale cached attachments of this list (all of them when
   * `valid` is undefined), then send GC to every plugin (≥ 1.1.0).
   * Resolves with a report; rejects with GcError (carrying the report) if
   * anything failed.
   */
  async gcNetworkList(list: NetworkConfigList, valid?: GcAttachment[]): Promise<GcReport> {
    const report: GcReport = { deleted: [], gcSent: [], errors: [] };
    if (list.disableGC) return report;
    const keep = new Set((valid ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
    for (const a of listAttachments(this.cacheDir)) {
      if (a.network !== list.name || keep.has(`${a.containerId}\0${a.ifName}`)) continue;
      try {
        await this.delNetworkList(list, { containerId: a.containerId, netns: a.netns, ifName: a.ifName, args: a.cniArgs, capabilityArgs: a.capabilityArgs });
        report.deleted.push(a);
      } catch (e) {
        report.errors.push(new Error(`failed to delete stale attachment ${a.containerId} ${a.ifName}: ${errorText(e)}`));
      }
    }
    if (compareVersions(list.cniVersion || '0.1.0', '1.1.0') >= 0) {
      const inject: Record<string, unknown> = { name: list.name, cniVersion: list.cniVersion };
      if (valid) {
        const v = valid.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
        inject['cni.dev/valid-attachments'] = ordered(v);
        inject['cni.dev/attachments'] = ordered(v);
      }
      for (const p of list.plugins) {
        try {
          const conf = { ...(JSON.parse(p.bytes.toString('utf8')) as Record<string, unknown>), ...inject };
          await this.run(p, { command: 'GC' }, Buffer.from(goMarshal(conf)));
          report.gcSent.push(p.network.type);
        } catch (e) {
          report.errors.push(new Error(`failed to GC plugin ${p.network.type}: ${errorText(e)}`));
        }
      }
    }
    if (report.errors.length) throw new GcError(report);
    return report;
  }

  /**
   * STATUS (≥ 1.1.0): resolves when every plugin is ready; rejects with
   * the first plugin's error (code 50/51 tell why). Older lists: resolves
   * with `false` (not asked).
   */
  async getStatusNetworkList(list: NetworkConfigList): Promise<boolean> {
    if (compareVersions(list.cniVersion || '0.1.0', '1.1.0') < 0) return false;
    for (const p of list.plugins) {
      const conf = { ...(JSON.parse(p.bytes.toString('utf8')) as Record<string, unknown>), name: list.name, cniVersion: list.cniVersion };
      try {
        await this.run(p, { command: 'STATUS' }, Buffer.from(goMarshal(conf)));
      } catch (e) {
        throw new ChainError('STATUS', describe(p), e as Error);
      }
    }
    return true;
  }

  /** VERSION of one plugin (memoised per instance). */
  async getVersionInfo(pluginType: string): Promise<PluginVersionInfo> {
    const pluginPath = this.exec.findInPath(pluginType, this.path);
    const hit = this.versionCache.get(pluginPath);
    if (hit) return hit;
    const env = argsAsEnv({ command: 'VERSION', netns: 'dummy', ifname: 'dummy', path: ['dummy'] }, this.env);
    const out = await this.exec.execPlugin(pluginPath, env, Buffer.from(JSON.stringify({ cniVersion: CURRENT_VERSION })), { timeoutMs: this.timeoutMs, stderr: this.stderr });
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(out.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new CniError(ErrCode.DecodingFailure, `plugin ${pluginType}: invalid VERSION output: ${(e as Error).message}`, '', { plugin: pluginType });
    }
    const cv = typeof o.cniVersion === 'string' ? o.cniVersion : '';
    let sv: string[];
    if (cv === '' || cv === '0.1.0') sv = ['0.1.0'];
    else if (Array.isArray(o.supportedVersions) && o.supportedVersions.every((x) => typeof x === 'string')) sv = o.supportedVersions as string[];
    else throw new CniError(ErrCode.DecodingFailure, `plugin ${pluginType}: VERSION output lacks supportedVersions`, '', { plugin: pluginType });
    const info = { cniVersion: cv, supportedVersions: sv };
    this.versionCache.set(pluginPath, info);
    return info;
  }

  /**
   * libcni ValidateNetworkList: every plugin exists and supports the list's
   * version. Returns the capabilities the list declares; throws naming
   * every failing plugin.
   */
  async validateNetworkList(list: NetworkConfigList): Promise<string[]> {
    const want = list.cniVersion || '0.1.0';
    const errs: string[] = [];
    const caps = new Set<string>();
    for (const p of list.plugins) {
      try {
        const vi = await this.getVersionInfo(p.network.type);
        if (!vi.supportedVersions.includes(want)) errs.push(`plugin ${p.network.type} does not support config version "${want}" (supports ${vi.supportedVersions.join(', ')})`);
      } catch (e) {
        errs.push(errorText(e));
      }
      for (const [c, on] of Object.entries(p.network.capabilities)) if (on) caps.add(c);
    }
    if (errs.length) throw new CniError(ErrCode.IncompatibleVersion, errs.join('; '));
    return [...caps];
  }

  /**
   * Version negotiation: the highest version every plugin of the list
   * supports, among the list's `cniVersions` (raw) and `cniVersion`, not
   * newer than we implement. Returns a copy of the list using it.
   */
  async negotiateVersion(list: NetworkConfigList): Promise<NetworkConfigList> {
    const raw = JSON.parse(list.bytes.toString('utf8')) as Record<string, unknown>;
    const cands = new Set<string>();
    if (Array.isArray(raw.cniVersions)) for (const v of raw.cniVersions) if (typeof v === 'string' && parseSemver(v)) cands.add(v);
    if (list.cniVersion) cands.add(list.cniVersion);
    const sorted = [...cands].filter((v) => isSupportedVersion(v)).sort(compareVersions).reverse();
    const infos = await Promise.all(list.plugins.map((p) => this.getVersionInfo(p.network.type)));
    const pick = sorted.find((v) => infos.every((i) => i.supportedVersions.includes(v)));
    if (!pick) {
      throw new CniError(ErrCode.IncompatibleVersion, `no CNI version in [${sorted.join(' ')}] is supported by every plugin of "${list.name}"`,
        list.plugins.map((p, i) => `${p.network.type}: ${infos[i].supportedVersions.join(',')}`).join('; '));
    }
    return { ...list, cniVersion: pick };
  }

  /** Cached attachments (all networks), optionally for one container. */
  getCachedAttachments(containerId = ''): Attachment[] {
    return listAttachments(this.cacheDir, containerId);
  }
}
