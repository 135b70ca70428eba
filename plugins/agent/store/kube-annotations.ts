/**
 * flannel's Node annotation names under a prefix (flanneld
 * --kube-annotation-prefix; flannel pkg/subnet/kube/annotations.go): a
 * prefix without "/" gets one appended ("example.com" → "example.com/…"), one
 * with a "/" that ends in neither "/" nor "-" gets a "-" ("example.com/x" →
 * "example.com/x-…"); more than one "/" or a prefix that is not
 * `fqdn/[a-z0-9_-]*` is refused. Pure: no I/O.
 */
export const DEFAULT_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';

export interface AnnotationNames {
  backendData: string;
  backendType: string;
  subnetManager: string;
  publicIP: string;
  publicIPv6: string;
  backendV6Data: string;
  /** inputs set by the cluster's operator: the address flaxd uses as its own (flanneld's GetStoredPublicIP) */
  nodePublicIP: string;
  nodePublicIPv6: string;
  /** inputs: what to publish in public-ip(v6) instead of our address (NAT) */
  publicIPOverwrite: string;
  publicIPv6Overwrite: string;
}

/** The full prefix the names start with ("flannel.alpha.coreos.com/"), or an error text. */
function normalisePrefix(prefix: string): { full: string } | { error: string } {
  const slashes = prefix.split('/').length - 1;
  if (slashes > 1) return { error: 'a prefix can contain at most one "/"' };
  let p = slashes === 0 ? `${prefix}/` : prefix;
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  // flannel's regexp, anchored at the start as well (Go's MatchString finds it anywhere: "a.b/c" passes, "A.b/" too)
  if (!/^(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/.test(p)) return { error: 'a prefix must be fqdn/[a-z0-9_-]* (lower case)' };
  return { full: p };
}

/** null when the prefix is valid, else why not (for the flag's error). */
export function annotationPrefixError(prefix: string): string | null {
  const r = normalisePrefix(prefix);
  return 'error' in r ? r.error : null;
}

/** The annotation names under the prefix. Throws on an invalid prefix (flags.ts refuses those first). */
export function annotationNames(prefix: string = DEFAULT_ANNOTATION_PREFIX): AnnotationNames {
  const r = normalisePrefix(prefix);
  if ('error' in r) throw new Error(`--kube-annotation-prefix ${JSON.stringify(prefix)}: ${r.error}`);
  const p = r.full;
  return {
    backendData: `${p}backend-data`,
    backendType: `${p}backend-type`,
    subnetManager: `${p}kube-subnet-manager`,
    publicIP: `${p}public-ip`,
    publicIPv6: `${p}public-ipv6`,
    backendV6Data: `${p}backend-v6-data`,
    nodePublicIP: `${p}node-public-ip`,
    nodePublicIPv6: `${p}node-public-ipv6`,
    publicIPOverwrite: `${p}public-ip-overwrite`,
    publicIPv6Overwrite: `${p}public-ipv6-overwrite`,
  };
}
