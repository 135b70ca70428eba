import { describe, expect, it } from 'vitest';
import { checkBrNetfilter } from './agent';
import { ConfigError } from './config';

const only = (...files: string[]) => (p: string) => files.includes(p);
const V4 = '/proc/sys/net/bridge/bridge-nf-call-iptables';
const V6 = '/proc/sys/net/bridge/bridge-nf-call-ip6tables';

describe('br_netfilter check (flanneld main.go)', () => {
  it('refuses to start without bridge-nf-call-iptables, saying modprobe br_netfilter', () => {
    const c = { enableIPv4: true, enableIPv6: false, enableNFTables: false };
    expect(() => checkBrNetfilter(c, only())).toThrow(ConfigError);
    expect(() => checkBrNetfilter(c, only())).toThrow(`${V4} does not exist: the br_netfilter kernel module is not loaded (run \`modprobe br_netfilter\``);
    expect(() => checkBrNetfilter(c, only(V4))).not.toThrow();
  });

  it('IPv6 networks need bridge-nf-call-ip6tables; nftables mode needs neither (as flanneld)', () => {
    expect(() => checkBrNetfilter({ enableIPv4: true, enableIPv6: true, enableNFTables: false }, only(V4))).toThrow(V6);
    expect(() => checkBrNetfilter({ enableIPv4: false, enableIPv6: true, enableNFTables: false }, only(V6))).not.toThrow();
    expect(() => checkBrNetfilter({ enableIPv4: true, enableIPv6: true, enableNFTables: true }, only())).not.toThrow();
  });
});
