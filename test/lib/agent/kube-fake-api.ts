/**
 * A fake Kubernetes API server for tests (node:http on 127.0.0.1, no TLS):
 * recorded Node objects; GET /api/v1/nodes (list), ?watch=true (a chunked
 * stream of JSON events), GET /api/v1/nodes/<name>, PATCH of a node and of
 * nodes/<name>/status (merge patch; status conditions merged by type, as a
 * strategic merge patch does) — every PATCH recorded. addNode/updateNode/
 * deleteNode send watch events. kubeconfig() writes a kubeconfig pointing at
 * it (insecure-skip-tls-verify, which client-node needs for plain http).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { type AddressInfo } from 'node:net';

export interface FakeNode {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; annotations?: Record<string, string>; resourceVersion?: string; [k: string]: unknown };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { conditions?: Array<Record<string, unknown>>; [k: string]: unknown };
}

export interface RecordedPatch {
  path: string;
  contentType: string;
  body: unknown;
}

const isObj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** RFC 7386 merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return patch;
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class FakeKubeApi {
  nodes = new Map<string, FakeNode>();
  patches: RecordedPatch[] = [];
  requests: string[] = [];
  #rv = 100;
  #watchers = new Set<http.ServerResponse>();
  #server = http.createServer((req, res) => void this.#handle(req, res));
  #dir: string | undefined;

  #host = '127.0.0.1';

  async start(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    return this.url;
  }

  /**
   * Listens on every address of the netns the caller is in when this runs
   * (the socket is created synchronously: call it inside withNetns to serve
   * a namespace), reached as `host`.
   */
  listenAll(port: number, host: string): void {
    this.#host = host;
    this.#server.listen(port);
  }

  get url(): string {
    return `http://${this.#host}:${(this.#server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig file for this server (in a temp dir removed by stop()). */
  kubeconfig(): string {
    this.#dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'flax-kube-'));
    const f = path.join(this.#dir, 'kubeconfig');
    fs.writeFileSync(f, [
      'apiVersion: v1', 'kind: Config', 'current-context: fake',
      'clusters:', '- name: fake', '  cluster:', `    server: ${this.url}`, '    insecure-skip-tls-verify: true',
      'users:', '- name: fake', '  user:', '    token: fake-token',
      'contexts:', '- name: fake', '  context:', '    cluster: fake', '    user: fake', '',
    ].join('\n'));
    return f;
  }

  async stop(): Promise<void> {
    for (const w of this.#watchers) w.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
    if (this.#dir) fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  #bump(n: FakeNode): FakeNode {
    n.apiVersion = 'v1';
    n.kind = 'Node';
    n.metadata.resourceVersion = String(++this.#rv);
    return n;
  }

  #send(type: string, n: FakeNode): void {
    const line = JSON.stringify({ type, object: n }) + '\n';
    for (const w of this.#watchers) w.write(line);
  }

  addNode(n: FakeNode): void {
    this.nodes.set(n.metadata.name, this.#bump(structuredClone(n)));
    this.#send('ADDED', this.nodes.get(n.metadata.name)!);
  }

  updateNode(name: string, f: (n: FakeNode) => void): void {
    const n = this.nodes.get(name)!;
    f(n);
    this.#send('MODIFIED', this.#bump(n));
  }

  deleteNode(name: string): void {
    const n = this.nodes.get(name)!;
    this.nodes.delete(name);
    this.#send('DELETED', this.#bump(n));
  }

  /** Ends every open watch stream (the client is expected to re-list and watch again). */
  closeWatches(): void {
    for (const w of this.#watchers) w.end();
    this.#watchers.clear();
  }

  get watchers(): number {
    return this.#watchers.size;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${u.pathname}${u.search}`);
    let body = '';
    for await (const c of req) body += c;
    const json = (code: number, o: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(o));
    };
    const notFound = (name: string) => json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `nodes "${name}" not found` });
    const m = /^\/api\/v1\/nodes(?:\/([^/]+)(\/status)?)?$/.exec(u.pathname);
    if (!m) return json(404, { kind: 'Status', code: 404, message: 'not found' });
    const [, name, status] = m;
    if (req.method === 'GET' && !name) {
      if (u.searchParams.get('watch') === 'true' || u.searchParams.get('watch') === '1') {
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        res.flushHeaders();
        this.#watchers.add(res);
        res.on('close', () => this.#watchers.delete(res));
        return;
      }
      return json(200, { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv) }, items: [...this.nodes.values()] });
    }
    const n = name ? this.nodes.get(name) : undefined;
    if (!n) return notFound(name ?? '');
    if (req.method === 'GET') return json(200, n);
    if (req.method === 'PATCH') {
      const contentType = req.headers['content-type'] ?? '';
      const p = JSON.parse(body) as Record<string, unknown>;
      this.patches.push({ path: u.pathname, contentType, body: p });
      if (status) {
        const conds = (isObj(p.status) && Array.isArray(p.status.conditions) ? p.status.conditions : []) as Array<Record<string, unknown>>;
        n.status ??= {};
        const cur = n.status.conditions ?? [];
        for (const c of conds) {
          const i = cur.findIndex((x) => x.type === c.type);
          if (i >= 0) cur[i] = { ...cur[i], ...c };
          else cur.push(c);
        }
        n.status.conditions = cur;
        // the status subresource takes metadata too (flannel writes its annotations there)
        if (isObj(p.metadata)) this.nodes.set(n.metadata.name, mergePatch(n, { metadata: p.metadata }) as FakeNode);
      } else {
        const merged = mergePatch(n, p) as FakeNode;
        this.nodes.set(n.metadata.name, merged);
      }
      const after = this.#bump(this.nodes.get(n.metadata.name)!);
      this.#send('MODIFIED', after);
      return json(200, after);
    }
    return json(405, { kind: 'Status', code: 405, message: 'method not allowed' });
  }
}
