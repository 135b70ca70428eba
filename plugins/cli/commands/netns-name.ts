/** Names `flax netns` accepts (as `ip netns`): apart from netns.ts, so that the CLI table checks them without loading the addon. */

/** Why `name` is neither a netns name nor an absolute pin path, or null when it is one. */
export function netnsNameProblem(name: string): string | null {
  if (name.startsWith('/')) return name.includes('\0') ? `invalid netns path ${JSON.stringify(name)}` : null;
  if (name.length > 0 && name.length < 256 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0')) return null;
  return `invalid netns name ${JSON.stringify(name)}: a name in /run/netns (no "/", not "." or "..") or an absolute pin path`;
}
