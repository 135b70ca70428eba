/**
 * The Kubernetes API calls of the kube store (kube-store.ts's KubeApi) over
 * npm `@kubernetes/client-node`, loaded on first use. Only its KubeConfig
 * (kubeconfig file, in-cluster service account, auth, TLS, proxy) and Watch
 * are loaded: the four Node calls are plain JSON requests made with
 * KubeConfig's options and agent, as its Watch makes its own. Its generated
 * CoreV1Api would bring every API model: 13 MB of source, ~40 MiB of
 * flaxd's RSS (issue 24).
 */
import { ConfigError } from './config';
import type { KubeApi, KubeNode } from './kube-store';

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0];

export interface KubeConnectOptions {
  kubeconfigFile?: string;
  kubeApiUrl?: string;
}

/** The KubeApi: kubeconfig file, else --kube-api-url, else in-cluster. */
export async function openKubeApi(o: KubeConnectOptions): Promise<KubeApi> {
  const [{ KubeConfig }, { Watch }] = await Promise.all([import('@kubernetes/client-node/dist/config.js'), import('@kubernetes/client-node/dist/watch.js')]);
  const kc = new KubeConfig();
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
  const call = kubeRequester(kc);
  const watch = new Watch(kc);
  const node = (name: string) => `/api/v1/nodes/${encodeURIComponent(name)}`;
  return {
    readNode: async (name) => (await call('GET', node(name))) as KubeNode,
    listNodes: async () => {
      const r = (await call('GET', '/api/v1/nodes')) as { items?: KubeNode[]; metadata?: { resourceVersion?: string } };
      return { items: r.items ?? [], resourceVersion: r.metadata?.resourceVersion };
    },
    // through nodes/status, as flanneld does: its ClusterRole (and conf/flax.yml's) grants
    // patch on nodes/status only, and the status subresource takes metadata changes too
    patchNode: async (name, body) => {
      await call('PATCH', `${node(name)}/status`, body, 'application/merge-patch+json');
    },
    patchNodeStatus: async (name, body) => {
      await call('PATCH', `${node(name)}/status`, body, 'application/strategic-merge-patch+json');
    },
    watchNodes: async (rv, onEvent, done) => {
      const ac = await watch.watch('/api/v1/nodes', rv ? { resourceVersion: rv, allowWatchBookmarks: true } : { allowWatchBookmarks: true },
        (type, obj) => onEvent(type, obj as KubeNode), done);
      return { abort: () => ac.abort() };
    },
  };
}

type KubeConfigLike = {
  getCurrentCluster(): { server: string } | null;
  applyToHTTPSOptions(opts: import('node:https').RequestOptions): Promise<void>;
};

/** One JSON request to the API server with the kube config's auth, TLS and proxy (its agent); a status other than 2xx rejects, naming it. */
function kubeRequester(kc: KubeConfigLike) {
  return async (method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kube config: no current cluster');
    const opts: import('node:https').RequestOptions = { method, headers: { Accept: 'application/json', ...(contentType ? { 'Content-Type': contentType } : {}) } };
    await kc.applyToHTTPSOptions(opts);
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    const mod = process.getBuiltinModule(url.protocol === 'http:' ? 'node:http' : 'node:https') as typeof import('node:https');
    const text = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = mod.request(url, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    let json: unknown;
    try { json = text.text ? JSON.parse(text.text) : {}; } catch { json = undefined; }
    if (text.status < 200 || text.status > 299) {
      const msg = (json as { message?: string } | undefined)?.message ?? text.text.slice(0, 200);
      throw new Error(`HTTP ${text.status} from ${method} ${path}: ${msg}`);
    }
    if (json === undefined) throw new Error(`${method} ${path}: the API server's answer is not JSON`);
    return json;
  };
}
