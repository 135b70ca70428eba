/**
 * The Kubernetes API calls of the kube store (kube.ts's): four
 * Node calls and a Node watch, as JSON over node:https (for memory: no
 * client library).
 *  - the connection comes from --kubeconfig-file (current context: server,
 *    certificate-authority(-data), insecure-skip-tls-verify, tls-server-name;
 *    client-certificate(-data) + client-key(-data), token, tokenFile,
 *    username/password), else --kube-api-url (no credentials), else the pod's
 *    service account (KUBERNETES_SERVICE_HOST/PORT, its CA, its token read
 *    at each request: bound tokens rotate); --kube-api-url also replaces a
 *    kubeconfig's server;
 *  - a kubeconfig that needs more (an exec credential plugin, an
 *    auth-provider, a proxy-url), or no service account variables, goes
 *    through npm `@kubernetes/client-node`'s KubeConfig (its auth, TLS and
 *    proxy agent), loaded only then: its module graph alone is ~24 MiB of
 *    RSS, and its generated CoreV1Api (all the API models) ~40 MiB more;
 *  - the watch is the API's stream of JSON lines (?watch=true, with
 *    bookmarks), each event handed on as client-node's Watch does.
 */
import fs from 'node:fs';
import type http from 'node:http';
import type https from 'node:https';
import { isIPv6 } from 'node:net';
import path from 'node:path';
import { ConfigError } from '../config';

/** The part of a v1 Node the store reads. */
export interface KubeNode {
  metadata?: { name?: string; annotations?: Record<string, string>; resourceVersion?: string };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
}

/** The API calls the store makes (openKubeApi implements them). */
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

/** How to reach the API server: its URL and, per request, the options (TLS agent, auth headers). */
export interface KubeConnection {
  server: string;
  prepare(): Promise<https.RequestOptions>;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

type Named<T> = { name?: string } & T;
interface KubeconfigDoc {
  'current-context'?: string;
  clusters?: Named<{ cluster?: Record<string, unknown> }>[];
  users?: Named<{ user?: Record<string, unknown> }>[];
  contexts?: Named<{ context?: { cluster?: string; user?: string } }>[];
}

/** The connection without client-node, or undefined when the config needs it. */
export async function liteConnection(o: KubeConnectOptions, env = process.env, saDir = SA_DIR): Promise<KubeConnection | undefined> {
  const readOpt = (f: string | undefined) => (f ? fs.readFileSync(f) : undefined);
  const connect = (server: string, tls: https.AgentOptions, auth: () => string | undefined): KubeConnection => {
    const url = new URL(server);
    const agent = url.protocol === 'https:' ? new (process.getBuiltinModule('node:https').Agent)({ keepAlive: true, ...tls }) : undefined;
    if (url.protocol === 'http:' && tls.rejectUnauthorized !== false) throw new ConfigError(`kube config: ${server}: HTTP is not allowed unless insecure-skip-tls-verify is set`);
    return { server, prepare: async () => { const a = auth(); return { agent, headers: a ? { Authorization: a } : {} }; } };
  };
  if (o.kubeconfigFile) {
    let doc: KubeconfigDoc;
    try {
      const { parse } = await import('yaml');
      doc = parse(fs.readFileSync(o.kubeconfigFile, 'utf8')) as KubeconfigDoc;
    } catch (e) {
      throw new ConfigError(`kube config: ${o.kubeconfigFile}: ${errText(e)}`);
    }
    const ctx = doc.contexts?.find((c) => c.name === doc['current-context'])?.context;
    const cluster = doc.clusters?.find((c) => c.name === ctx?.cluster)?.cluster;
    const user = doc.users?.find((u) => u.name === ctx?.user)?.user ?? {};
    if (!cluster || typeof cluster.server !== 'string') return undefined; // client-node names what is missing
    if (cluster['proxy-url'] || user.exec || user['auth-provider']) return undefined;
    const dir = path.dirname(o.kubeconfigFile);
    const file = (k: string) => (typeof k === 'string' && k ? path.resolve(dir, k) : undefined);
    const data = (v: unknown) => (typeof v === 'string' && v ? Buffer.from(v, 'base64') : undefined);
    try {
      const tls: https.AgentOptions = {
        ca: data(cluster['certificate-authority-data']) ?? readOpt(file(cluster['certificate-authority'] as string)),
        cert: data(user['client-certificate-data']) ?? readOpt(file(user['client-certificate'] as string)),
        key: data(user['client-key-data']) ?? readOpt(file(user['client-key'] as string)),
        ...(cluster['insecure-skip-tls-verify'] === true ? { rejectUnauthorized: false } : {}),
        ...(typeof cluster['tls-server-name'] === 'string' ? { servername: cluster['tls-server-name'] } : {}),
      };
      const tokenFile = file(user.tokenFile as string);
      const basic = typeof user.username === 'string' ? `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}` : undefined;
      return connect(o.kubeApiUrl || cluster.server, tls, () => {
        const token = typeof user.token === 'string' && user.token ? user.token : tokenFile ? fs.readFileSync(tokenFile, 'utf8').trim() : '';
        return token ? `Bearer ${token}` : basic;
      });
    } catch (e) {
      throw new ConfigError(`kube config: ${o.kubeconfigFile}: ${errText(e)}`);
    }
  }
  if (o.kubeApiUrl) return connect(o.kubeApiUrl, {}, () => undefined);
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
  let ca: Buffer | undefined;
  try {
    ca = fs.readFileSync(path.join(saDir, 'ca.crt'));
  } catch (e) {
    throw new ConfigError(`kube config: in-cluster: ${errText(e)}`);
  }
  return connect(`${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`, { ca }, () => {
    let token = '';
    try { token = fs.readFileSync(path.join(saDir, 'token'), 'utf8').trim(); } catch { /* none: the API server answers 401, named */ }
    return token ? `Bearer ${token}` : undefined;
  });
}

/** The connection through client-node's KubeConfig (exec plugins, auth providers, proxies). */
async function clientNodeConnection(o: KubeConnectOptions): Promise<KubeConnection> {
  const { KubeConfig } = await import('@kubernetes/client-node/dist/config.js');
  const kc = new KubeConfig();
  try {
    if (o.kubeconfigFile) kc.loadFromFile(o.kubeconfigFile);
    else if (o.kubeApiUrl) kc.loadFromClusterAndUser({ name: 'flax', server: o.kubeApiUrl, skipTLSVerify: false }, { name: 'flax' });
    else kc.loadFromCluster();
  } catch (e) {
    throw new ConfigError(`kube config: ${errText(e)}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('kube config: no current cluster');
  return {
    server: o.kubeApiUrl || cluster.server,
    async prepare() {
      const opts: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      return opts;
    },
  };
}

/** Sends one request; resolves with the response (its body unread) and the request (to abort). */
async function send(c: KubeConnection, method: string, p: string, body?: unknown, contentType?: string): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
  const opts = await c.prepare();
  opts.method = method;
  opts.headers = { Accept: 'application/json', ...(contentType ? { 'Content-Type': contentType } : {}), ...(opts.headers as Record<string, string> | undefined) };
  const url = new URL(c.server.replace(/\/+$/, '') + p);
  const mod = process.getBuiltinModule(url.protocol === 'http:' ? 'node:http' : 'node:https') as typeof https;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, opts, (res) => resolve({ req, res }));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const readAll = (res: http.IncomingMessage) => new Promise<string>((resolve, reject) => {
  const chunks: Buffer[] = [];
  res.on('data', (d: Buffer) => chunks.push(d));
  res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  res.on('error', reject);
});

/** An answer other than 2xx, named with the API server's message. */
function statusError(method: string, p: string, status: number, text: string): Error {
  let msg = text.slice(0, 200);
  try { msg = (JSON.parse(text) as { message?: string }).message ?? msg; } catch { /* not a Status */ }
  return new Error(`HTTP ${status} from ${method} ${p.split('?')[0]}: ${msg}`);
}

async function request(c: KubeConnection, method: string, p: string, body?: unknown, contentType?: string): Promise<unknown> {
  const { res } = await send(c, method, p, body, contentType);
  const text = await readAll(res);
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 299) throw statusError(method, p, status, text);
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new Error(`${method} ${p}: the API server's answer is not JSON`);
  }
}

/** The KubeApi: kubeconfig file, else --kube-api-url, else in-cluster. */
export async function openKubeApi(o: KubeConnectOptions): Promise<KubeApi> {
  const c = (await liteConnection(o)) ?? (await clientNodeConnection(o));
  const node = (name: string) => `/api/v1/nodes/${encodeURIComponent(name)}`;
  return {
    readNode: async (name) => (await request(c, 'GET', node(name))) as KubeNode,
    listNodes: async () => {
      const r = (await request(c, 'GET', '/api/v1/nodes')) as { items?: KubeNode[]; metadata?: { resourceVersion?: string } };
      return { items: r.items ?? [], resourceVersion: r.metadata?.resourceVersion };
    },
    // through nodes/status, as flanneld does: its ClusterRole (and conf/flax.yml's) grants
    // patch on nodes/status only, and the status subresource takes metadata changes too
    patchNode: async (name, body) => {
      await request(c, 'PATCH', `${node(name)}/status`, body, 'application/merge-patch+json');
    },
    patchNodeStatus: async (name, body) => {
      await request(c, 'PATCH', `${node(name)}/status`, body, 'application/strategic-merge-patch+json');
    },
    watchNodes: async (rv, onEvent, done) => {
      const q = new URLSearchParams({ watch: 'true', allowWatchBookmarks: 'true', ...(rv ? { resourceVersion: rv } : {}) });
      const p = `/api/v1/nodes?${q}`;
      const { req, res } = await send(c, 'GET', p);
      let aborted = false;
      let ended = false;
      const end = (err: unknown) => {
        if (ended || aborted) return;
        ended = true;
        done(err);
      };
      if (res.statusCode !== 200) {
        void readAll(res).then((text) => end(statusError('GET', p, res.statusCode ?? 0, text)), end);
        return { abort: () => { aborted = true; req.destroy(); } };
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let ev: { type?: string; object?: KubeNode };
          try { ev = JSON.parse(line); } catch { continue; /* as client-node's Watch: a line that is not JSON is skipped */ }
          if (ev.type && ev.object) onEvent(ev.type, ev.object);
        }
      });
      res.on('end', () => end(null));
      res.on('error', end);
      res.on('aborted', () => end(new Error('watch aborted')));
      req.on('error', end);
      return { abort: () => { aborted = true; req.destroy(); } };
    },
  };
}
