/**
 * The cluster's PKI, made with openssl in a scratch dir: one CA; the
 * apiserver's serving cert (its underlay IP, the `kubernetes` Service IP,
 * 127.0.0.1 and the kubernetes.default names); client certs for admin
 * (system:masters), the controller-manager, the scheduler, the apiserver's
 * kubelet client, and one per kubelet (system:node:<name>, system:nodes:
 * the Node authorizer); the ServiceAccount signing key pair.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../lib/e2e';

export interface Pki { dir: string; ca: string; caKey: string; saKey: string; saPub: string }

const ossl = (args: string[], cwd: string) => run('openssl', args, { cwd, timeoutMs: 60_000 });

export function makeCa(dir: string): Pki {
  ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3', '-subj', '/CN=flax-cluster-test-ca'], dir);
  ossl(['genrsa', '-out', 'sa.key', '2048'], dir);
  ossl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return { dir, ca: path.join(dir, 'ca.crt'), caKey: path.join(dir, 'ca.key'), saKey: path.join(dir, 'sa.key'), saPub: path.join(dir, 'sa.pub') };
}

/** A leaf cert signed by the CA: name.crt/name.key. subject like /CN=x/O=y; sans like ['IP:1.2.3.4','DNS:a']. */
export function issue(pki: Pki, name: string, subject: string, usage: 'server' | 'client' | 'both', sans: string[] = []): { cert: string; key: string } {
  const d = pki.dir;
  ossl(['genrsa', '-out', `${name}.key`, '2048'], d);
  ossl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], d);
  const eku = usage === 'server' ? 'serverAuth' : usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth';
  const ext = [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${eku}`,
    ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
  ].join('\n');
  writeFileSync(path.join(d, `${name}.ext`), ext + '\n');
  ossl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '3', '-extfile', `${name}.ext`], d);
  return { cert: path.join(d, `${name}.crt`), key: path.join(d, `${name}.key`) };
}

/** A kubeconfig with a client cert (embedded paths). */
export function kubeconfig(file: string, server: string, ca: string, cert: { cert: string; key: string }, user = 'user'): string {
  writeFileSync(file, [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: flax-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${ca}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate: ${cert.cert}`,
    `    client-key: ${cert.key}`,
    'contexts:',
    '- name: flax-test',
    '  context:',
    '    cluster: flax-test',
    `    user: ${user}`,
    'current-context: flax-test',
    '',
  ].join('\n'));
  return file;
}
