import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PATHS, deepestExisting, execdTypes, netnsForExec, pathsOfCall, sameFileAsFd, sameView, viewDifference, type Found } from './view';

const conf = (o: object) => Buffer.from(JSON.stringify(o));
const tmp = mkdtempSync(path.join(tmpdir(), 'flax-view-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the paths a call may resolve', () => {
  it('CNI_PATH entries, absolute strings anywhere in the config (normalized), then the plugins\' defaults; nothing relative or CIDR-like', () => {
    const p = pathsOfCall({ CNI_PATH: '/opt/cni/bin:/usr/lib/cni/:rel/dir:' }, conf({
      cniVersion: '1.0.0', name: 'n', type: 'flannel', subnetFile: '/run/x//subnet.env',
      delegate: { ipam: { dataDir: '/data/../var/ipam', ranges: [[{ subnet: '10.0.0.0/24' }]], resolvConf: '/etc/resolv.conf' } },
    }));
    expect(p).toEqual(['/opt/cni/bin', '/usr/lib/cni/', '/run/x/subnet.env', '/var/ipam', '/etc/resolv.conf', ...DEFAULT_PATHS]);
  });

  it('a config that is not JSON: only CNI_PATH and the defaults', () => {
    expect(pathsOfCall({ CNI_PATH: '/a' }, Buffer.from('{"x":'))).toEqual(['/a', ...DEFAULT_PATHS]);
    expect(pathsOfCall({}, new Uint8Array())).toEqual(DEFAULT_PATHS);
  });

  it('at most 64 paths', () => {
    expect(pathsOfCall({}, conf({ list: Array.from({ length: 100 }, (_, i) => `/p${i}`) }))).toHaveLength(64);
  });
});

describe('view comparison', () => {
  it('the deepest existing component: the path itself, or an ancestor of a path not made yet', () => {
    mkdirSync(path.join(tmp, 'a/b'), { recursive: true });
    writeFileSync(path.join(tmp, 'a/b/f'), '');
    const depth = tmp.split('/').filter(Boolean).length;
    expect(deepestExisting('', path.join(tmp, 'a/b/f'))?.depth).toBe(depth + 3);
    expect(deepestExisting('', path.join(tmp, 'a/missing/deeper'))?.depth).toBe(depth + 1);
  });

  it('the caller\'s root fd: same view for its own root, the first differing path otherwise', () => {
    const root = openSync('/', 'r');
    const sub = openSync(tmp, 'r'); // a "caller" whose / is our tmp dir: nothing matches
    try {
      expect(viewDifference(root, ['/proc', path.join(tmp, 'a/b/f'), '/nonexistent/x'])).toBeNull();
      expect(viewDifference(sub, ['/proc', '/etc'])).toBe('/proc');
    } finally {
      closeSync(root);
      closeSync(sub);
    }
  });

  it('differs on depth, device or inode', () => {
    const at = (mine: Found, theirs: Found) => viewDifference(3, ['/x'], (root) => (root ? theirs : mine));
    const f = { depth: 2, dev: 1, ino: 5 };
    expect(at(f, { ...f })).toBeNull();
    expect(at(f, { ...f, depth: 1 })).toBe('/x');
    expect(at(f, { ...f, dev: 2 })).toBe('/x');
    expect(at(f, { ...f, ino: 6 })).toBe('/x');
  });
});

describe('calls that would exec a delegate with the CNI_NETNS path', () => {
  const ours = ['bridge', 'host-local', 'loopback', 'flannel', 'portmap'];
  it('the delegate types a config may exec that are not run in process', () => {
    expect(execdTypes(conf({ type: 'bridge', ipam: { type: 'host-local' } }), ours)).toEqual([]);
    expect(execdTypes(conf({ type: 'bridge', ipam: { type: 'dhcp' } }), ours)).toEqual(['dhcp']);
    expect(execdTypes(conf({ type: 'flannel', delegate: { type: 'macvlan', ipam: { type: 'static' } } }), ours)).toEqual(['macvlan', 'static']);
    expect(execdTypes(conf({ type: 'flannel' }), ours)).toEqual([]);
    expect(execdTypes(Buffer.from('nope'), ours)).toEqual([]);
  });

  it('hands such a call back only when the path is not, in this view, the file the client sent', () => {
    const f = path.join(tmp, 'netns-like');
    writeFileSync(f, '');
    const fd = openSync(f, 'r');
    const other = openSync('/proc/self/ns/net', 'r');
    try {
      const dhcp = conf({ type: 'bridge', ipam: { type: 'dhcp' } });
      expect(sameFileAsFd(f, fd)).toBe(true);
      expect(netnsForExec(f, fd, dhcp, ours)).toBeNull();
      expect(netnsForExec(f, other, dhcp, ours)).toBe(`CNI_NETNS ${f} is not the caller's netns in this server's view and the call may exec dhcp`);
      expect(netnsForExec('/nonexistent/ns', other, dhcp, ours)).toMatch(/may exec dhcp$/);
      expect(netnsForExec(f, other, conf({ type: 'bridge', ipam: { type: 'host-local' } }), ours)).toBeNull(); // nothing exec'd
      expect(netnsForExec('', other, dhcp, ours)).toBeNull();
      expect(netnsForExec(f, undefined, dhcp, ours)).toBeNull(); // the client could not open it: the plugin reports that
    } finally {
      closeSync(fd);
      closeSync(other);
    }
  });
});

describe('sameView', () => {
  it('a caller in this mount namespace with this root: yes; another mount as root, or no pid: no', () => {
    const root = openSync('/', 'r');
    const proc = openSync('/proc', 'r');
    try {
      expect(sameView(process.pid, root)).toBe(true);
      expect(sameView(0, root)).toBe(false);
      expect(sameView(process.pid, proc)).toBe(false); // another mount (procfs), whatever its inode
      expect(sameView(2 ** 22 + 7, root)).toBe(false); // no such process
    } finally {
      closeSync(root);
      closeSync(proc);
    }
  });
});
