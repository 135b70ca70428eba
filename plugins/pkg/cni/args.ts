/**
 * CNI_ARGS: `K=V;K2=V2`. Keys are case-sensitive; unknown keys are an error
 * (code 4) unless `IgnoreUnknown` is `1` or `true` (any case), as libcni's
 * LoadArgs does.
 */
import { CniError, ErrCode } from './errors';

export interface CniArgs {
  /** every pair, in order */
  pairs: [string, string][];
  get(key: string): string | undefined;
}

/**
 * Parses CNI_ARGS and checks the keys against `known` (IgnoreUnknown is
 * always known). Pass `known = null` to accept everything.
 */
export function parseCniArgs(raw: string, known: readonly string[] | null = ['IP', 'MAC', 'K8S_POD_NAME', 'K8S_POD_NAMESPACE', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID']): CniArgs {
  const pairs: [string, string][] = [];
  if (raw !== '') {
    for (const part of raw.split(';')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      if (eq <= 0) throw new CniError(ErrCode.InvalidEnvironmentVariables, `CNI_ARGS: invalid pair "${part}" (want KEY=VALUE)`);
      pairs.push([part.slice(0, eq), part.slice(eq + 1)]);
    }
  }
  const map = new Map(pairs);
  const ign = map.get('IgnoreUnknown');
  const ignoreUnknown = ign !== undefined && /^(1|true)$/i.test(ign);
  if (ign !== undefined && !/^(0|1|true|false)$/i.test(ign)) {
    throw new CniError(ErrCode.InvalidEnvironmentVariables, `CNI_ARGS: IgnoreUnknown must be a boolean, got "${ign}"`);
  }
  if (known && !ignoreUnknown) {
    const unknown = pairs.map(([k]) => k).filter((k) => k !== 'IgnoreUnknown' && !known.includes(k));
    if (unknown.length) {
      throw new CniError(ErrCode.InvalidEnvironmentVariables, `CNI_ARGS: unknown args [${unknown.join(' ')}]`, 'set IgnoreUnknown=1 to ignore them');
    }
  }
  return { pairs, get: (k) => map.get(k) };
}
