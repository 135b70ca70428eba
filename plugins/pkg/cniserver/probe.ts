/**
 * Who answers the plugin clients' calls (`flax status`): connects to the CNI
 * socket as the client does and asks the server for its CniServerInfo (a
 * request named STATUS_NAME, no fds: wire format in native/addon/cniserver.cc).
 * The outcomes mirror the client's choice: `served` = a server answers and
 * the clients use it; anything else = the clients run the standalone plugins.
 */
import type { CniServerInfo } from './server';
import { DEFAULT_CNI_SOCKET, STATUS_NAME } from './wire';

export type CniServingState =
  | { served: true; socket: string; info: CniServerInfo }
  | { served: false; socket: string; why: string };

/** The socket the clients use in this environment ('' = never a server), as native/cniclient picks it. */
export function clientSocket(env: NodeJS.ProcessEnv): string {
  return env.FLAX_CNI_SOCKET ?? DEFAULT_CNI_SOCKET;
}

/**
 * The server mode the clients act on (native/cniclient's auto_mode):
 * $FLAX_CNI_SERVER, else the first word of <$FLAX_CONFIG_DIR or /etc/flax>/cni-server
 * (what `flax install --server` records), else off.
 */
export function serverMode(env: NodeJS.ProcessEnv): string {
  if (env.FLAX_CNI_SERVER !== undefined) return env.FLAX_CNI_SERVER || 'off';
  try {
    const file = `${env.FLAX_CONFIG_DIR || '/etc/flax'}/cni-server`;
    return process.getBuiltinModule('node:fs').readFileSync(file, 'utf8').trim().split(/\s/)[0] || 'off';
  } catch {
    return 'off';
  }
}

/** The request: header (40 bytes, native byte order) + name; no env, no stdin, no fds. */
export function statusRequest(): Buffer {
  const name = Buffer.from(STATUS_NAME);
  const h = Buffer.alloc(40);
  h.write('FLAXCNI1', 0, 'latin1');
  h.writeUInt32LE(name.length, 8);
  return Buffer.concat([h, name]);
}

/** Splits a reply (header 32 bytes + stdout + stderr); null when cut or malformed. */
export function parseReply(buf: Buffer): { exitCode: number; stdout: string; stderr: string } | null {
  if (buf.length < 32 || buf.toString('latin1', 0, 8) !== 'FLAXCNR1') return null;
  const out = Number(buf.readBigUInt64LE(16));
  const err = Number(buf.readBigUInt64LE(24));
  if (buf.length !== 32 + out + err) return null;
  return { exitCode: buf.readInt32LE(8), stdout: buf.toString('utf8', 32, 32 + out), stderr: buf.toString('utf8', 32 + out) };
}

export function probeCniServer(socket: string, timeoutMs = 3000): Promise<CniServingState> {
  if (!socket) return Promise.resolve({ served: false, socket, why: 'FLAX_CNI_SOCKET is empty: the clients never use a server' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let connected = false;
    let done = false;
    const finish = (r: CniServingState) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      resolve(r);
    };
    // loaded when used: node:net is not for the CLI's V8 startup snapshot
    const c = process.getBuiltinModule('node:net').connect(socket);
    const timer = setTimeout(() => finish({ served: false, socket, why: `no answer within ${timeoutMs} ms${connected ? ' (the clients connect, then wait: check flaxd)' : ''}` }), timeoutMs);
    c.on('connect', () => {
      connected = true;
      c.end(statusRequest());
    });
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'ENOENT' ? `no socket at ${socket} (no flaxd with --cni-socket there)`
        : e.code === 'ECONNREFUSED' ? `${socket} is stale (nobody listens on it)`
          : e.code === 'EACCES' ? `${socket}: permission denied (only root is served)`
            : `${socket}: ${e.message}`;
      finish({ served: false, socket, why });
    });
    c.on('close', () => {
      const r = parseReply(Buffer.concat(chunks));
      if (!r) return finish({ served: false, socket, why: `${socket}: the server closed the connection without a complete reply` });
      if (r.exitCode !== 0) {
        let msg = r.stdout.trim();
        try { msg = (JSON.parse(r.stdout) as { msg: string }).msg; } catch { /* not JSON */ }
        // a refusal (not root) still means a server answers: the clients of root use it
        return finish({ served: false, socket, why: msg });
      }
      try {
        finish({ served: true, socket, info: JSON.parse(r.stdout) as CniServerInfo });
      } catch {
        finish({ served: false, socket, why: `${socket}: an answer that is not a flax CNI server's` });
      }
    });
  });
}
