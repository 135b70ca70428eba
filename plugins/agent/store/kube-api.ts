/**
 * The Kubernetes API calls the kube store makes (kube.ts), and their
 * implementation over npm `@kubernetes/client-node` 1.x, loaded on first
 * use so that other modes never load it.
 */
import { ConfigError } from '../config';

/** The part of a v1 Node the store reads. */
export interface KubeNode {
  metadata?: { name?: string; annotations?: Record<string, string>; resourceVersion?: string };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
}

/** The API calls the store makes (openKubeApi implements them with @kubernetes/client-node). */
export interface KubeApi {
  readNode(name: string): Promise<KubeNode>;
  listNodes(): Promise<{ items: KubeNode[]; resourceVersion?: string }>;
  /** JSON merge patch of the Node's metadata (sent to nodes/status, as flanneld does) */
  patchNode(name: string, body: unknown): Promise<void>;
  /** strategic merge patch of nodes/status */
  patchNodeStatus(name: string, body: unknown): Promise<void>;
  /** a Node watch; done is called once when it ends (error or closed by the server) */
  watchNodes(resourceVersion: string | undefined, onEvent: (type: string, node: KubeNode) => void, done: (err: unknown) => void): Promise<{ abort(): void }>;
}

/** The first line of an error's message. */
export const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0];

export interface KubeConnectOptions {
  kubeconfigFile?: string;
  kubeApiUrl?: string;
}

/** The KubeApi over @kubernetes/client-node (loaded here, on first use): kubeconfig file, else --kube-api-url, else in-cluster. */
export async function openKubeApi(o: KubeConnectOptions): Promise<KubeApi> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (o.kubeconfigFile) kc.loadFromFile(o.kubeconfigFile);
    else if (o.kubeApiUrl) kc.loadFromClusterAndUser({ name: 'flax', server: o.kubeApiUrl, skipTLSVerify: false }, { name: 'flax' });
    else kc.loadFromCluster();
  } catch (e) {
    throw new ConfigError(`kube config: ${errText(e)}`);
  }
  if (o.kubeApiUrl && o.kubeconfigFile) {
    const c = kc.getCurrentCluster();
    if (c) kc.clusters = kc.clusters.map((x) => (x === c ? { ...c, server: o.kubeApiUrl! } : x));
  }
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  const strategic = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch);
  const watch = new k8s.Watch(kc);
  return {
    readNode: async (name) => (await core.readNode({ name })) as KubeNode,
    listNodes: async () => {
      const r = await core.listNode();
      return { items: r.items as KubeNode[], resourceVersion: r.metadata?.resourceVersion };
    },
    // through nodes/status, as flanneld does: its ClusterRole (and conf/flax.yml's) grants
    // patch on nodes/status only, and the status subresource takes metadata changes too
    patchNode: async (name, body) => {
      await core.patchNodeStatus({ name, body }, merge);
    },
    patchNodeStatus: async (name, body) => {
      await core.patchNodeStatus({ name, body }, strategic);
    },
    watchNodes: async (rv, onEvent, done) => {
      const ac = await watch.watch('/api/v1/nodes', rv ? { resourceVersion: rv, allowWatchBookmarks: true } : { allowWatchBookmarks: true },
        (type, obj) => onEvent(type, obj as KubeNode), done);
      return { abort: () => ac.abort() };
    },
  };
}
