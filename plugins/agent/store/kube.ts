/**
 * The Kubernetes lease store (`--kube-subnet-mgr`), flanneld's kube subnet
 * manager (flannel pkg/subnet/kube) over npm `@kubernetes/client-node` 1.x:
 *  - our subnet is our Node's spec.podCIDRs (first IPv4, first IPv6 when
 *    EnableIPv6) / spec.podCIDR, assigned by the controller manager; none →
 *    "pod cidr not assigned";
 *  - acquire(): flannel's annotations written on our Node with a merge patch
 *    (flannel.alpha.coreos.com/{backend-data, backend-type,
 *    kube-subnet-manager=true, public-ip[, public-ipv6, backend-v6-data]}), then the
 *    condition NetworkUnavailable=False on nodes/status (strategic merge);
 *  - list: every Node with kube-subnet-manager=true and a podCIDR is a lease
 *    (attrs from its annotations, no expiry); other nodes are ignored;
 *  - watch: a Node watch from the list's resourceVersion; every event makes
 *    the agent re-list (it diffs); a closed watch is restarted with backoff;
 *  - a flannel-managed Node with a pod CIDR whose public-ip(v6) or
 *    backend(-v6)-data annotation is missing or cannot be parsed is
 *    unreadable (listed and watched as such, naming the Node), never a
 *    removal: only a deleted Node (or one no longer flannel-managed) is.
 * An API outage never stops the agent: list() answers the last nodes it read.
 * The client module is loaded on first use (kube-api.ts), so other modes never load it.
 */
import { ConfigError, type Families, type NetConfig } from '../config';
import { type Lease, type LeaseAttrs, type LeaseListing, type LeaseStore, listing, type StoreEvent, type UnreadableLease } from './lease';
import { type Logger } from '../log';
import { Closers, restartingWatch } from './watch-life';
import { type Prefix, bigIntToIp, EMPTY_V4, formatPrefix, parseNetwork, prefixContainsPrefix, toAddr } from '../../pkg/ip';
import { errText, type KubeApi, type KubeConnectOptions, type KubeNode, openKubeApi } from './kube-api';
import { type AnnotationNames, annotationNames, DEFAULT_ANNOTATION_PREFIX } from './kube-annotations';

export const ANN_PREFIX = DEFAULT_ANNOTATION_PREFIX;
/** flannel's annotation names under the default prefix (--kube-annotation-prefix: annotationNames()) */
export const ANN: AnnotationNames = annotationNames(ANN_PREFIX);
const ANN_DEFAULT = ANN;

export interface KubeStoreOptions {
  nodeName: string;
  log: Logger;
  /** --kube-annotation-prefix (default flannel.alpha.coreos.com) */
  annotationPrefix?: string;
  /** --set-node-network-unavailable (default true): set NetworkUnavailable=False once acquired, as flanneld */
  setNodeNetworkUnavailable?: boolean;
}

/** The node's pod CIDR of one family (spec.podCIDRs first, then spec.podCIDR); undefined when none. */
export function nodePodCidr(n: KubeNode, v6 = false): Prefix | undefined {
  const all = [...(n.spec?.podCIDRs ?? []), ...(n.spec?.podCIDR ? [n.spec.podCIDR] : [])];
  for (const c of all) {
    try {
      const net = parseNetwork(c);
      if (net.v6 === v6) return net;
    } catch { /* malformed: skip */ }
  }
  return undefined;
}

/**
 * flannel's annotations for our lease attributes, as flanneld's
 * AcquireLease writes them: backend-data and public-ip unless a vxlan lease
 * has no BackendData (IPv6-only); backend-v6-data and public-ipv6 for a
 * vxlan lease with BackendV6Data or a host-gw lease with a PublicIPv6.
 */
export function leaseAnnotations(a: LeaseAttrs, ANN: AnnotationNames = ANN_DEFAULT): Record<string, string> {
  const bd = JSON.stringify(a.backendData ?? null);
  const bd6 = JSON.stringify(a.backendV6Data ?? null);
  const ann: Record<string, string> = { [ANN.backendType]: a.backendType };
  if (a.backendType !== 'vxlan' || bd !== 'null') Object.assign(ann, { [ANN.backendData]: bd, [ANN.publicIP]: a.publicIP });
  if (a.publicIPv6 && ((a.backendType === 'vxlan' && bd6 !== 'null') || a.backendType === 'host-gw')) {
    Object.assign(ann, { [ANN.backendV6Data]: bd6, [ANN.publicIPv6]: a.publicIPv6 });
  }
  ann[ANN.subnetManager] = 'true';
  return ann;
}

/** flanneld's public-ip-overwrite / public-ipv6-overwrite: a set one replaces the published address of its family. */
export function withOverwrites(want: Record<string, string>, have: Record<string, string>, ANN: AnnotationNames = ANN_DEFAULT): Record<string, string> {
  const out = { ...want };
  if (out[ANN.publicIP] !== undefined && have[ANN.publicIPOverwrite]) out[ANN.publicIP] = have[ANN.publicIPOverwrite];
  if (out[ANN.publicIPv6] !== undefined && have[ANN.publicIPv6Overwrite]) out[ANN.publicIPv6] = have[ANN.publicIPv6Overwrite];
  return out;
}

const annJson = (s: string | undefined): unknown => {
  if (s === undefined || s === '') return undefined;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return undefined;
  }
};
const annIp = (s: string | undefined, v6: boolean): string | undefined => {
  try {
    const x = s ? toAddr(s) : undefined;
    return x && x.v6 === v6 ? bigIntToIp(x.n, v6) : undefined;
  } catch {
    return undefined;
  }
};

/**
 * A Node as a lease (flannel's nodeToLease for the enabled families); null
 * when it is not managed by flannel (no kube-subnet-manager=true), or lacks
 * the pod CIDR or public IP of an enabled family.
 */
export function nodeToLease(n: KubeNode, fam: Families = { v4: true, v6: false }, ANN: AnnotationNames = ANN_DEFAULT): Lease | null {
  const r = nodeLease(n, fam, ANN);
  return r && 'lease' in r ? r.lease : null;
}

/**
 * A Node as a lease; `bad` when it is flannel-managed with the pod CIDR(s)
 * of the enabled families but an annotation of its lease (public-ip(v6),
 * backend(-v6)-data) is missing or cannot be parsed; null when it is no
 * lease (not flannel-managed, no pod CIDR).
 */
export function nodeLease(n: KubeNode, fam: Families = { v4: true, v6: false }, ANN: AnnotationNames = ANN_DEFAULT): { lease: Lease } | { bad: UnreadableLease } | null {
  const ann = n.metadata?.annotations ?? {};
  if (ann[ANN.subnetManager] !== 'true') return null;
  const attrs: LeaseAttrs = { publicIP: '0.0.0.0', publicIPv6: null, backendType: ann[ANN.backendType] ?? '' };
  const subnet = fam.v4 ? nodePodCidr(n) : EMPTY_V4;
  const ipv6Subnet = fam.v6 ? nodePodCidr(n, true) : undefined;
  if (!subnet || (fam.v6 && !ipv6Subnet)) return null;
  const problems: string[] = [];
  const ip = (key: string, v6: boolean): string | undefined => {
    const v = annIp(ann[key], v6);
    if (v === undefined) problems.push(ann[key] === undefined ? `${key} missing` : `${key} is not an IPv${v6 ? 6 : 4} address: ${JSON.stringify(ann[key].slice(0, 64))}`);
    return v;
  };
  const json = (key: string): unknown => {
    const v = annJson(ann[key]);
    if (v === undefined && ann[key]) problems.push(`${key} is not JSON: ${JSON.stringify(ann[key].slice(0, 64))}`);
    return v;
  };
  if (fam.v4) {
    attrs.publicIP = ip(ANN.publicIP, false) ?? '0.0.0.0';
    const bd = json(ANN.backendData);
    if (bd !== undefined && bd !== null) attrs.backendData = bd;
  }
  if (fam.v6) {
    attrs.publicIPv6 = ip(ANN.publicIPv6, true) ?? null;
    const bd6 = json(ANN.backendV6Data);
    if (bd6 !== undefined && bd6 !== null) attrs.backendV6Data = bd6;
  } else {
    // read, as flanneld's lease attributes carry it whatever the config
    attrs.publicIPv6 = annIp(ann[ANN.publicIPv6], true) ?? null;
  }
  if (problems.length) {
    const bad: UnreadableLease = { subnet, where: `node ${n.metadata?.name ?? '?'}`, why: problems.join('; ') };
    if (ipv6Subnet) bad.ipv6Subnet = ipv6Subnet;
    return { bad };
  }
  return { lease: ipv6Subnet ? { subnet, ipv6Subnet, attrs, expiration: null } : { subnet, attrs, expiration: null } };
}

/** The NetworkUnavailable=False condition flanneld sets once it runs. */
export function networkAvailablePatch(now: Date): unknown {
  const t = now.toISOString().replace(/\.\d+Z$/, 'Z');
  return { status: { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp', message: 'Flannel is running on this node', lastTransitionTime: t, lastHeartbeatTime: t }] } };
}

export class KubeLeaseStore {
  #last: KubeNode[] | null = null;
  #rv: string | undefined;
  #outage = false;
  readonly #closers = new Closers();
  #fam: Families & { network?: Prefix; ipv6Network?: Prefix } = { v4: true, v6: false };
  /** the annotation names under --kube-annotation-prefix */
  readonly ann: AnnotationNames;

  constructor(readonly api: KubeApi, readonly opts: KubeStoreOptions) {
    if (!opts.nodeName) throw new ConfigError('--kube-subnet-mgr needs the node name: --node-name or $NODE_NAME');
    try {
      this.ann = annotationNames(opts.annotationPrefix);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }

  /**
   * Our Node's node-public-ip / node-public-ipv6 annotations (flanneld's
   * GetStoredPublicIP): set, they replace --public-ip / --public-ipv6.
   * One that is not an address of its family is a ConfigError.
   */
  async storedPublicIPs(): Promise<{ publicIp: string; publicIpv6: string }> {
    const { nodeName } = this.opts;
    let ann: Record<string, string>;
    try {
      ann = (await this.api.readNode(nodeName)).metadata?.annotations ?? {};
    } catch (e) {
      throw new ConfigError(`kube: cannot read node ${nodeName}: ${errText(e)}`);
    }
    const get = (key: string, v6: boolean): string => {
      const v = ann[key] ?? '';
      if (v && annIp(v, v6) === undefined) throw new ConfigError(`node ${nodeName}: annotation ${key} is not an IPv${v6 ? 6 : 4} address: ${JSON.stringify(v.slice(0, 64))}`);
      return v && annIp(v, v6)!;
    };
    return { publicIp: get(this.ann.nodePublicIP, false), publicIpv6: get(this.ann.nodePublicIPv6, true) };
  }

  /** The families of the network config (EnableIPv4, EnableIPv6): which pod CIDRs and annotations make a lease. */
  useConfig(c: Pick<NetConfig, 'enableIPv4' | 'enableIPv6' | 'network' | 'ipv6Network'>): void {
    this.#fam = { v4: c.enableIPv4, v6: c.enableIPv6, network: c.network, ipv6Network: c.ipv6Network };
  }

  /**
   * Our lease: the Node's pod CIDR(s) of the enabled families, with flannel's
   * annotations written and NetworkUnavailable=False. No pod CIDR (of an
   * enabled family) → ConfigError "pod cidr not assigned".
   */
  async acquire(attrs: LeaseAttrs): Promise<Lease> {
    const { nodeName, log } = this.opts;
    let node: KubeNode;
    try {
      node = await this.api.readNode(nodeName);
    } catch (e) {
      throw new ConfigError(`kube: cannot read node ${nodeName}: ${errText(e)}`);
    }
    const fam = this.#fam;
    const subnet = fam.v4 ? nodePodCidr(node) : EMPTY_V4;
    const ipv6Subnet = fam.v6 ? nodePodCidr(node, true) : undefined;
    if (!subnet) throw new ConfigError(`node ${nodeName}: pod cidr not assigned`);
    if (fam.v6 && !ipv6Subnet) throw new ConfigError(`node ${nodeName}: pod cidr not assigned (no IPv6 CIDR in spec.podCIDRs)`);
    // flanneld: the Network (IPv6Network) must contain the pod CIDR
    const outside = (net: Prefix | undefined, sn: Prefix, what: string) => {
      if (net && !prefixContainsPrefix(net, sn)) throw new ConfigError(`node ${nodeName}: the flannel net config's ${what} ${formatPrefix(net)} does not contain the node's pod CIDR ${formatPrefix(sn)}`);
    };
    if (fam.v4) outside(fam.network, subnet, 'Network');
    if (ipv6Subnet) outside(fam.ipv6Network, ipv6Subnet, 'IPv6Network');
    const have = node.metadata?.annotations ?? {};
    const ANN = this.ann;
    const want = withOverwrites(leaseAnnotations(attrs, ANN), have, ANN);
    if (Object.entries(want).some(([k, v]) => have[k] !== v)) {
      await this.api.patchNode(nodeName, { metadata: { annotations: want } });
      const pub = [want[ANN.publicIP] && `public-ip ${want[ANN.publicIP]}`, want[ANN.publicIPv6] && `public-ipv6 ${want[ANN.publicIPv6]}`].filter(Boolean).join(', ');
      log.info(`node ${nodeName}: flannel annotations written (${pub}, backend-type ${attrs.backendType})`);
    }
    // flanneld's CompleteLease: NetworkUnavailable=False, unless --set-node-network-unavailable=false (the condition is left alone)
    const setCondition = this.opts.setNodeNetworkUnavailable ?? true;
    if (setCondition) await this.api.patchNodeStatus(nodeName, networkAvailablePatch(new Date()));
    const cidrs = [fam.v4 ? formatPrefix(subnet) : '', ipv6Subnet ? formatPrefix(ipv6Subnet) : ''].filter(Boolean).join(', ');
    log.info(`node ${nodeName}: pod cidr ${cidrs}${setCondition ? ', NetworkUnavailable=False' : ' (NetworkUnavailable left as it is: --set-node-network-unavailable=false)'}`);
    return ipv6Subnet ? { subnet, ipv6Subnet, attrs, expiration: null } : { subnet, attrs, expiration: null };
  }

  async #read(): Promise<KubeNode[]> {
    const r = await this.api.listNodes();
    this.#rv = r.resourceVersion;
    this.#last = r.items;
    if (this.#outage) {
      this.#outage = false;
      this.opts.log.info(`kube API reachable again: ${r.items.length} nodes`);
    }
    return r.items;
  }

  async list(): Promise<LeaseListing> {
    let nodes: KubeNode[];
    try {
      nodes = await this.#read();
    } catch (e) {
      if (this.#last === null) throw e;
      if (!this.#outage) {
        this.#outage = true;
        this.opts.log.warn(`kube API unreachable (${errText(e)}); keeping the last known ${this.#last.length} nodes and the data plane as it is`);
      }
      nodes = this.#last;
    }
    const read = nodes.map((n) => nodeLease(n, this.#fam, this.ann));
    return listing(read.flatMap((r) => (r && 'lease' in r ? [r.lease] : [])), read.flatMap((r) => (r && 'bad' in r ? [r.bad] : [])));
  }

  /** Leases are Nodes: the agent never creates one (acquire() is how our Node gets annotated). */
  async create(): Promise<number | null> {
    throw new Error('kube store: leases are nodes; use acquire()');
  }

  /** Re-writes our Node's annotations (the subnet is the Node's, not ours to change), honouring its public-ip(v6)-overwrite. */
  async update(_sn: Prefix, _sn6: Prefix | undefined, attrs: LeaseAttrs): Promise<number | null> {
    const have = (await this.api.readNode(this.opts.nodeName)).metadata?.annotations ?? {};
    await this.api.patchNode(this.opts.nodeName, { metadata: { annotations: withOverwrites(leaseAnnotations(attrs, this.ann), have, this.ann) } });
    return null;
  }

  /** Nodes are deleted by Kubernetes, not by the agent (as flanneld). */
  async delete(): Promise<void> {}

  watch(onChange: (events?: StoreEvent[]) => void): { close(): void } {
    const { log } = this.opts;
    return restartingWatch(this.#closers, async (run) => {
      if (this.#rv === undefined) await this.#read();
      let ended = false;
      const w = await this.api.watchNodes(this.#rv, (type, node) => {
        run.backoff.reset();
        if (node.metadata?.resourceVersion) this.#rv = node.metadata.resourceVersion;
        if (type === 'BOOKMARK') return;
        if (this.#last) this.#last = [...this.#last.filter((x) => x.metadata?.name !== node.metadata?.name), ...(type === 'DELETED' ? [] : [node])];
        // the node's lease as an event (a status update changes nothing for the agent); a node that is no lease of ours: re-list;
        // one whose annotations cannot be read: unreadable (no removal), unless deleted
        const r = nodeLease(node, this.#fam, this.ann);
        if (r && 'lease' in r) onChange([{ type: type === 'DELETED' ? 'removed' : 'added', lease: r.lease }]);
        else if (r && type === 'DELETED') onChange([{ type: 'removed', lease: { subnet: r.bad.subnet, ...(r.bad.ipv6Subnet ? { ipv6Subnet: r.bad.ipv6Subnet } : {}), attrs: { publicIP: '0.0.0.0', publicIPv6: null, backendType: '' }, expiration: null } }]);
        else if (r) onChange([{ type: 'unreadable', ...r.bad }]);
        else onChange();
      }, (err) => {
        if (ended || run.closed) return;
        ended = true;
        log.debug(`kube node watch ended (${err ? errText(err) : 'closed by the server'}); re-listing and watching again in ${run.backoff.pause} ms`);
        this.#rv = undefined;
        onChange();
        run.restart();
      });
      return { stop: () => w.abort() };
    }, (e, pause) => log.warn(`kube node watch: ${errText(e)}; retrying in ${pause} ms`));
  }

  close(): void {
    this.#closers.closeAll();
  }
}

export async function openKubeLeaseStore(o: KubeConnectOptions & KubeStoreOptions): Promise<KubeLeaseStore> {
  const api = await openKubeApi(o);
  const store = new KubeLeaseStore(api, o);
  return store satisfies LeaseStore;
}
