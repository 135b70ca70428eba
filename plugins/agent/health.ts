/**
 * flaxd's HTTP endpoint on --healthz-ip:--healthz-port (0 = off), as
 * flanneld's: GET /healthz 200 while the agent runs; GET /readyz 200 only
 * once subnet.env is written (503 before); and GET /metrics, the
 * Prometheus exposition of AgentMetrics. Anything else is 404.
 */
import type http from 'node:http';
import { ConfigError } from './config';
import { type AgentMetrics } from './metrics';

export interface HealthServerOptions {
  ip: string;
  port: number;
  metrics: AgentMetrics;
  ready: () => boolean;
}

/** The response to one request, pure apart from rendering the metrics. */
export async function respond(o: Pick<HealthServerOptions, 'metrics' | 'ready'>, method: string, url: string): Promise<{ status: number; type: string; body: string }> {
  const text = (status: number, body: string) => ({ status, type: 'text/plain; charset=utf-8', body });
  const path = url.split('?')[0];
  if (method !== 'GET' && method !== 'HEAD') return text(405, 'method not allowed\n');
  switch (path) {
    case '/healthz': return text(200, 'ok\n');
    case '/readyz': return o.ready() ? text(200, 'ok\n') : text(503, 'not ready: subnet file not written yet\n');
    case '/metrics': {
      const m = await o.metrics.render();
      return { status: 200, type: m.contentType, body: m.body };
    }
    default: return text(404, 'not found\n');
  }
}

/** Listens; a port that cannot be bound is a ConfigError (exit 1). Close the returned server to stop. */
export async function startHealthServer(o: HealthServerOptions): Promise<http.Server> {
  // loaded when used (node:http cannot be part of a V8 startup snapshot, and
  // a dynamic import() does not work in one)
  const { createServer } = process.getBuiltinModule('node:http');
  const server = createServer((req, res) => {
    respond(o, req.method ?? 'GET', req.url ?? '/').then((r) => {
      res.writeHead(r.status, { 'content-type': r.type });
      res.end(req.method === 'HEAD' ? undefined : r.body);
    }, (e: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${e.message}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new ConfigError(`--healthz-port: cannot listen on ${o.ip}:${o.port}: ${e.message}`)));
    server.listen(o.port, o.ip, () => resolve(server));
  });
}
