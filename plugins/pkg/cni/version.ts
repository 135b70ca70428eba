/** CNI spec versions this suite speaks, oldest first, and comparisons. */
export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';
/** The version a config without `cniVersion` is taken to have (SPEC: absent = 0.1.0). */
export const IMPLICIT_VERSION = '0.1.0';

export function parseSemver(v: string): [number, number, number] | null {
  const m = /^(\d{1,6})\.(\d{1,6})\.(\d{1,6})$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** Compares two x.y.z versions; throws on malformed input. */
export function compareVersions(a: string, b: string): number {
  const pa = parseSemver(a);
  const pb = parseSemver(b);
  if (!pa || !pb) throw new Error(`invalid version "${pa ? b : a}"`);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}
export const isSupportedVersion = (v: string): boolean => (SUPPORTED_VERSIONS as readonly string[]).includes(v);

/** Output of the VERSION command. */
export function versionInfo(supported: readonly string[] = SUPPORTED_VERSIONS): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...supported] };
}
