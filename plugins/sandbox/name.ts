/** Sandbox names: one path component, CNI container-id characters (the name is part of CNI_CONTAINERID). */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Why `name` is not a valid sandbox name, or null when it is. */
export function sandboxNameProblem(name: string): string | null {
  return NAME_RE.test(name) ? null : `invalid sandbox name ${JSON.stringify(name)}: 1-63 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit`;
}
