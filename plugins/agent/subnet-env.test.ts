import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseNetConfig } from './config';
import { formatPrefix, parseNetwork } from '../pkg/ip';
import { readSubnetFileCidr, renderSubnetEnv, writeFileAtomic } from './subnet-env';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flaxd-env-'));
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('subnet.env', () => {
  it('renders byte for byte as flanneld writes it', () => {
    const c = parseNetConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    expect(renderSubnetEnv(c, true, parseNetwork('10.244.1.0/24'), undefined, 1450))
      .toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const d = parseNetConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48"}');
    expect(renderSubnetEnv(d, false, parseNetwork('10.244.9.0/24'), parseNetwork('fc00:0:0:9::/64'), 8950))
      .toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\nFLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00:0:0:9::1/64\nFLANNEL_MTU=8950\nFLANNEL_IPMASQ=false\n');
  });

  it('is written atomically with mode 0644 whatever the umask, and its subnet read back', () => {
    const f = path.join(tmp, 'run/flannel/subnet.env');
    const old = process.umask(0o077);
    try {
      writeFileAtomic(f, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\n');
      writeFileAtomic(f, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.6.1/24\n');
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(f).mode & 0o777).toBe(0o644);
    expect(fs.readdirSync(path.dirname(f))).toEqual(['subnet.env']); // no temporary left
    expect(formatPrefix(readSubnetFileCidr(f, 'FLANNEL_SUBNET')!)).toBe('10.244.6.0/24');
    expect(readSubnetFileCidr(f, 'FLANNEL_IPV6_SUBNET')).toBeUndefined();
    expect(readSubnetFileCidr(path.join(tmp, 'absent'), 'FLANNEL_SUBNET')).toBeUndefined();
    fs.writeFileSync(f, 'FLANNEL_SUBNET=garbage\n');
    expect(readSubnetFileCidr(f, 'FLANNEL_SUBNET')).toBeUndefined();
  });
});
