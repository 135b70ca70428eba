import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serverMode } from '../../pkg/cniserver/probe';
import { applyServer, type ServerPaths, serverUnits, SERVICE_UNIT, SOCKET_UNIT } from './server';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-install-server-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function paths(name: string): ServerPaths {
  const d = path.join(tmp, name);
  mkdirSync(d);
  // no systemd runs in a unit test: systemctl is never called
  return { configDir: path.join(d, 'etc/flax'), unitDir: path.join(d, 'systemd'), socket: '/run/flax/cni.sock', systemdRunning: path.join(d, 'no-systemd') };
}

describe('flax install --server: the units', () => {
  const u = serverUnits('/opt/cni/bin', '/run/flax/cni.sock');
  const section = (text: string, name: string) => {
    const m = new RegExp(`^\\[${name}\\]\\n([\\s\\S]*?)(?=^\\[|(?![\\s\\S]))`, 'm').exec(text);
    return Object.fromEntries((m?.[1] ?? '').split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  };
  it('flax-cni.socket: systemd binds the clients\' socket root-only, one service for all connections', () => {
    expect(section(u[SOCKET_UNIT], 'Socket')).toEqual({
      ListenStream: '/run/flax/cni.sock', SocketUser: 'root', SocketGroup: 'root', SocketMode: '0600', DirectoryMode: '0755', RemoveOnStop: 'yes', Accept: 'no',
    });
    expect(section(u[SOCKET_UNIT], 'Install')).toEqual({ WantedBy: 'sockets.target' });
  });
  it('flax-cni.service: flaxd --no-overlay on that same socket (taken from LISTEN_FDS), exiting idle', () => {
    const svc = section(u[SERVICE_UNIT], 'Service');
    expect(svc.ExecStart).toBe('/opt/cni/bin/flaxd --no-overlay --cni-socket /run/flax/cni.sock --idle-exit 10m --gc-interval 0');
    expect(svc.Type).toBe('simple');
    expect(section(u[SERVICE_UNIT], 'Unit')).toMatchObject({ Requires: SOCKET_UNIT, After: SOCKET_UNIT });
    expect(u[SERVICE_UNIT]).not.toMatch(/^\[Install\]/m); // started by the socket only
  });
});

describe('flax install --server: what is written and removed', () => {
  it('auto writes "auto" into <config dir>/cni-server; a re-run writes nothing; off removes it', () => {
    const p = paths('auto');
    const lines: string[] = [];
    const rec = applyServer('auto', '/opt/cni/bin', undefined, p, (l) => lines.push(l));
    const file = path.join(p.configDir, 'cni-server');
    expect(readFileSync(file, 'utf8')).toBe('auto\n');
    expect(rec).toEqual({ mode: 'auto', files: { [file]: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect(existsSync(p.unitDir)).toBe(false);
    // read back as the clients (and flax status) read it; $FLAX_CNI_SERVER overrides
    expect(serverMode({ FLAX_CONFIG_DIR: p.configDir })).toBe('auto');
    expect(serverMode({ FLAX_CONFIG_DIR: p.configDir, FLAX_CNI_SERVER: 'off' })).toBe('off');
    lines.length = 0;
    expect(applyServer('auto', '/opt/cni/bin', rec, p, (l) => lines.push(l))).toEqual(rec);
    expect(lines).toEqual([`unchanged ${file}`]);
    expect(applyServer('off', '/opt/cni/bin', rec, p, () => {})).toBeUndefined();
    expect(existsSync(file)).toBe(false);
    expect(serverMode({ FLAX_CONFIG_DIR: p.configDir })).toBe('off');
  });

  it('systemd writes both units and the mode; switching to auto removes the units', () => {
    const p = paths('systemd');
    const lines: string[] = [];
    const rec = applyServer('systemd', '/opt/cni/bin', undefined, p, (l) => lines.push(l));
    expect(readFileSync(path.join(p.unitDir, SOCKET_UNIT), 'utf8')).toBe(serverUnits('/opt/cni/bin', p.socket)[SOCKET_UNIT]);
    expect(readFileSync(path.join(p.unitDir, SERVICE_UNIT), 'utf8')).toBe(serverUnits('/opt/cni/bin', p.socket)[SERVICE_UNIT]);
    expect(readFileSync(path.join(p.configDir, 'cni-server'), 'utf8')).toBe('systemd\n');
    expect(lines.at(-1)).toMatch(/systemd is not running here: enable the server with systemctl enable --now flax-cni.socket/);
    const rec2 = applyServer('auto', '/opt/cni/bin', rec, p, () => {});
    expect(existsSync(path.join(p.unitDir, SOCKET_UNIT))).toBe(false);
    expect(existsSync(path.join(p.unitDir, SERVICE_UNIT))).toBe(false);
    expect(readFileSync(path.join(p.configDir, 'cni-server'), 'utf8')).toBe('auto\n');
    expect(rec2?.mode).toBe('auto');
  });

  it('a unit changed since is kept when the mode goes', () => {
    const p = paths('changed');
    const rec = applyServer('systemd', '/opt/cni/bin', undefined, p, () => {});
    writeFileSync(path.join(p.unitDir, SERVICE_UNIT), '# mine\n');
    const lines: string[] = [];
    applyServer('off', '/opt/cni/bin', rec, p, (l) => lines.push(l));
    expect(readFileSync(path.join(p.unitDir, SERVICE_UNIT), 'utf8')).toBe('# mine\n');
    expect(lines).toContain(`kept ${path.join(p.unitDir, SERVICE_UNIT)} (changed since flax installed it)`);
    expect(existsSync(path.join(p.unitDir, SOCKET_UNIT))).toBe(false);
  });
});
