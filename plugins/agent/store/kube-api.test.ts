import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { liteConnection } from './kube-api';

const dir = mkdtempSync(path.join(tmpdir(), 'flax-kube-api-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const kubeconfig = (user: string, cluster = '    server: https://10.0.0.1:6443\n    certificate-authority-data: Q0EK\n') => {
  const f = path.join(dir, `kc-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, `apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n${cluster}users:\n- name: u\n  user:\n${user}contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n`);
  return f;
};
type AgentLike = { options: Record<string, unknown> };

describe('kube-api: the connection without client-node', () => {
  it('a kubeconfig with a token and a CA: the server, a bearer header, the CA on the agent', async () => {
    const c = (await liteConnection({ kubeconfigFile: kubeconfig('    token: abc\n') }))!;
    expect(c.server).toBe('https://10.0.0.1:6443');
    const o = await c.prepare();
    expect(o.headers).toEqual({ Authorization: 'Bearer abc' });
    expect(String((o.agent as unknown as AgentLike).options.ca)).toBe('CA\n');
  });

  it('client certificate files relative to the kubeconfig; --kube-api-url replaces the server', async () => {
    writeFileSync(path.join(dir, 'c.crt'), 'CERT');
    writeFileSync(path.join(dir, 'c.key'), 'KEY');
    const c = (await liteConnection({ kubeconfigFile: kubeconfig('    client-certificate: c.crt\n    client-key: c.key\n'), kubeApiUrl: 'https://api:443' }))!;
    expect(c.server).toBe('https://api:443');
    const a = (await c.prepare()).agent as unknown as AgentLike;
    expect([String(a.options.cert), String(a.options.key)]).toEqual(['CERT', 'KEY']);
  });

  it('exec credentials, auth providers and proxies go to client-node (undefined)', async () => {
    expect(await liteConnection({ kubeconfigFile: kubeconfig('    exec:\n      command: aws\n') })).toBeUndefined();
    expect(await liteConnection({ kubeconfigFile: kubeconfig('    auth-provider:\n      name: gcp\n') })).toBeUndefined();
    expect(await liteConnection({ kubeconfigFile: kubeconfig('    token: x\n', '    server: https://a:1\n    proxy-url: http://p:3128\n') })).toBeUndefined();
  });

  it('plain http only with insecure-skip-tls-verify, as client-node', async () => {
    await expect(liteConnection({ kubeconfigFile: kubeconfig('    token: x\n', '    server: http://a:1\n') })).rejects.toThrow(/HTTP is not allowed/);
    expect((await liteConnection({ kubeconfigFile: kubeconfig('    token: x\n', '    server: http://a:1\n    insecure-skip-tls-verify: true\n') }))!.server).toBe('http://a:1');
  });

  it('in cluster: the service variables (IPv6 in brackets), the token read at each request', async () => {
    const sa = path.join(dir, 'sa');
    rmSync(sa, { recursive: true, force: true });
    await import('node:fs').then((fs) => fs.mkdirSync(sa));
    writeFileSync(path.join(sa, 'ca.crt'), 'CA');
    writeFileSync(path.join(sa, 'token'), 't1\n');
    const c = (await liteConnection({}, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa))!;
    expect(c.server).toBe('https://[fd00::1]:443');
    expect((await c.prepare()).headers).toEqual({ Authorization: 'Bearer t1' });
    writeFileSync(path.join(sa, 'token'), 't2\n');
    expect((await c.prepare()).headers).toEqual({ Authorization: 'Bearer t2' });
    expect(await liteConnection({}, {}, sa)).toBeUndefined();
  });
});
