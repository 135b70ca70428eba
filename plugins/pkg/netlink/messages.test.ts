import { describe, it, expect } from 'vitest';
import { Attrs, attrNested, attrStr, attrU32, decodeMsgs, encodeMsg, ifinfomsg } from './attrs';
import {
  encodeAddr, encodeBridgeVlan, encodeBrportSet, encodeFdb, encodeInfoData, encodeLinkAdd, encodeLinkInfo, encodeLinkSet,
  encodeNeigh, encodeRoute, parseAddr, parseLink, parseNeigh, parseRoute,
} from './messages';
import { bufferToIp } from '../ip/addr';
import { bufferToMac } from '../ip/mac';

const hex = (parts: Buffer | Buffer[]): string => Buffer.concat(Array.isArray(parts) ? parts : [parts]).toString('hex');
const h = (s: string): string => s.replace(/\s+/g, '');

describe('IFLA_LINKINFO encoding', () => {
  it('veth: VETH_INFO_PEER carries an ifinfomsg + IFLA_IFNAME + IFLA_NET_NS_FD', () => {
    const got = hex(encodeLinkInfo({ kind: 'veth', name: 'v0', peerName: 'p0', peerNetns: 7 }));
    expect(got).toBe(h(`
      3800 1200                      # IFLA_LINKINFO len 56
        0900 0100 76657468 00 000000  # IFLA_INFO_KIND "veth\\0" + pad
        2800 0200                    # IFLA_INFO_DATA len 40
          2400 0100                  # VETH_INFO_PEER len 36
            00000000 00000000 00000000 00000000   # ifinfomsg
            0700 0300 7030 00 00     # IFLA_IFNAME "p0\\0" + pad
            0800 1c00 07000000       # IFLA_NET_NS_FD 7
    `.replace(/#.*$/gm, '')));
  });

  it('veth peer gets mtu (defaulting to the link mtu) and mac; accepts a NetNS-like object', () => {
    const d = encodeInfoData({ kind: 'veth', name: 'a', peerName: 'b', mtu: 1400, peerMac: '02:00:00:00:00:02', peerNetns: { fd: 9 } });
    const peer = new Attrs(d[0]).get(1)!;
    const a = new Attrs(peer, 16);
    expect(a.str(3)).toBe('b');
    expect(a.u32(4)).toBe(1400);
    expect(bufferToMac(a.get(1)!)).toBe('02:00:00:00:00:02');
    expect(a.u32(28)).toBe(9);
  });

  it('veth txQueueLen: IFLA_TXQLEN on the link and, unless peerTxQueueLen says otherwise, on the peer (0 is sent, not omitted)', () => {
    const peerOf = (d: Buffer[]) => new Attrs(new Attrs(d[0]).get(1)!, 16);
    expect(peerOf(encodeInfoData({ kind: 'veth', name: 'a', peerName: 'b', txQueueLen: 0 })).u32(13)).toBe(0);
    expect(peerOf(encodeInfoData({ kind: 'veth', name: 'a', peerName: 'b', txQueueLen: 0, peerTxQueueLen: 5 })).u32(13)).toBe(5);
    expect(peerOf(encodeInfoData({ kind: 'veth', name: 'a', peerName: 'b' })).u32(13)).toBeUndefined();
    const top = new Attrs(Buffer.concat(encodeLinkAdd({ kind: 'veth', name: 'a', peerName: 'b', txQueueLen: 0 })), 16);
    expect(top.u32(13)).toBe(0);
  });

  it('vxlan: id, local, port (network order), learning, gbp flag', () => {
    const li = new Attrs(encodeLinkInfo({ kind: 'vxlan', name: 'x', vni: 1, port: 8472, local: '10.0.0.1', learning: false, gbp: true, srcLink: 3 }));
    const top = li.nested(18)!;
    expect(top.str(1)).toBe('vxlan');
    const d = top.nested(2)!;
    expect(d.u32(1)).toBe(1);
    expect(d.get(15)!.toString('hex')).toBe('2118'); // 8472 big-endian
    expect(d.get(4)!.toString('hex')).toBe('0a000001');
    expect(d.u8(7)).toBe(0);
    expect(d.get(23)!.length).toBe(0);
    expect(d.u32(3)).toBe(3);
    const d6 = new Attrs(Buffer.concat(encodeInfoData({ kind: 'vxlan', name: 'x', vni: 2, local: 'fd00::1', group: 'ff05::100' })));
    expect(bufferToIp(d6.get(17)!)).toBe('fd00::1');
    expect(bufferToIp(d6.get(16)!)).toBe('ff05::100');
  });

  it('bridge, macvlan, vlan, dummy', () => {
    expect(hex(encodeInfoData({ kind: 'bridge', name: 'b', vlanFiltering: true, vlanDefaultPvid: 1 }))).toBe(h('0500 0700 01 000000  0600 2700 0100 0000'));
    expect(hex(encodeInfoData({ kind: 'macvlan', name: 'm', parentIndex: 2, mode: 'bridge' }))).toBe(h('0800 0100 04000000'));
    expect(hex(encodeInfoData({ kind: 'vlan', name: 'v', parentIndex: 2, vlanId: 100, protocol: '802.1Q' }))).toBe(h('0600 0100 6400 0000  0600 0500 8100 0000'));
    expect(hex(encodeLinkInfo({ kind: 'dummy', name: 'd' }))).toBe(h('1000 1200 0a00 0100 64756d6d7900 0000'));
  });

  it('linkAdd: ifinfomsg, name/mtu/mac, IFLA_LINK for macvlan, then linkinfo', () => {
    const parts = encodeLinkAdd({ kind: 'macvlan', name: 'mv0', parentIndex: 5, mode: 'bridge', mtu: 1400, mac: 'AA:bb:cc:dd:ee:ff' });
    const buf = Buffer.concat(parts);
    expect(buf.subarray(0, 16).equals(Buffer.alloc(16))).toBe(true);
    const a = new Attrs(buf, 16);
    expect(a.list.map(([t]) => t)).toEqual([3, 4, 1, 5, 18]);
    expect(a.str(3)).toBe('mv0');
    expect(bufferToMac(a.get(1)!)).toBe('aa:bb:cc:dd:ee:ff');
    expect(a.u32(5)).toBe(5);
  });

  it('linkSet: up/promisc flags+change mask, master, netns fd', () => {
    const b = Buffer.concat(encodeLinkSet(4, { up: true, promisc: false, master: 0, netns: 11 }));
    expect(b.readInt32LE(4)).toBe(4);
    expect(b.readUInt32LE(8)).toBe(0x1); // flags
    expect(b.readUInt32LE(12)).toBe(0x101); // change
    const a = new Attrs(b, 16);
    expect(a.u32(10)).toBe(0);
    expect(a.u32(28)).toBe(11);
  });

  it('brport options: AF_BRIDGE + IFLA_PROTINFO with NLA_F_NESTED', () => {
    expect(hex(encodeBrportSet(3, { hairpin: true, isolated: false }))).toBe(h(`
      07000000 03000000 00000000 00000000
      1400 0c80  0500 0400 01 000000  0500 2100 00 000000`));
  });
});

describe('bridge vlan encoding', () => {
  it('bridge vlan add dev 5 vid 100 pvid untagged self', () => {
    expect(hex(encodeBridgeVlan(5, 100, { pvid: true, untagged: true, self: true }))).toBe(h(`
      07000000 05000000 00000000 00000000
      1400 1a00  0600 0000 0200 0000  0800 0200 0600 6400`));
  });
  it('no flags attribute when neither self nor master', () => {
    expect(hex(encodeBridgeVlan(2, 10))).toBe(h('07000000 02000000 00000000 00000000 0c00 1a00 0800 0200 0000 0a00'));
    expect(hex(encodeBridgeVlan(2, 10, { master: true }))).toContain(h('0600 0000 0100 0000'));
  });
  it('rejects invalid vids', () => {
    expect(() => encodeBridgeVlan(2, 0)).toThrow(RangeError);
    expect(() => encodeBridgeVlan(2, 4095)).toThrow(RangeError);
  });
});

describe('address / route / neighbour encoding', () => {
  it('v4 address: IFA_LOCAL + IFA_ADDRESS + computed broadcast', () => {
    const b = Buffer.concat(encodeAddr(3, '10.1.0.2/24'));
    expect(b.subarray(0, 8).toString('hex')).toBe('0218000003000000');
    const a = new Attrs(b, 8);
    expect(bufferToIp(a.get(2)!)).toBe('10.1.0.2');
    expect(bufferToIp(a.get(1)!)).toBe('10.1.0.2');
    expect(bufferToIp(a.get(4)!)).toBe('10.1.0.255');
    expect(new Attrs(Buffer.concat(encodeAddr(3, '10.1.0.2/31')), 8).has(4)).toBe(false);
    expect(new Attrs(Buffer.concat(encodeAddr(3, '10.1.0.2/24', {}, true)), 8).has(4)).toBe(false);
  });
  it('v6 address flags: NODAD in ifa_flags, NOPREFIXROUTE in IFA_FLAGS', () => {
    const b = Buffer.concat(encodeAddr(3, 'fd00::2/64', { noDad: true, noPrefixRoute: true }));
    expect(b[0]).toBe(10);
    expect(b[2]).toBe(0x02);
    expect(new Attrs(b, 8).u32(8)).toBe(0x202);
    const p = parseAddr(b);
    expect(p).toMatchObject({ address: 'fd00::2', prefixLen: 64, noDad: true, noPrefixRoute: true, tentative: false });
  });
  it('route: rtmsg defaults (main table, proto boot, scope link without gw), metrics nest', () => {
    const b = Buffer.concat(encodeRoute({ dst: '10.3.0.0/16', oif: 2, mtu: 1400, advmss: 1360 }));
    expect(b.subarray(0, 12).toString('hex')).toBe('02100000' + 'fe03fd01' + '00000000');
    const r = parseRoute(b);
    expect(r).toMatchObject({ dst: '10.3.0.0/16', oif: 2, table: 254, scope: 253, mtu: 1400, advmss: 1360, type: 'unicast', protocol: 3 });
    const g = parseRoute(Buffer.concat(encodeRoute({ dst: 'default', gw: 'fd00::1', onlink: true, table: 1000, metric: 7 })));
    expect(g).toMatchObject({ family: 10, dst: '::/0', gw: 'fd00::1', onlink: true, table: 1000, metric: 7, scope: 0 });
    const del = Buffer.concat(encodeRoute({ dst: '10.3.0.0/16' }, true));
    expect(del[5]).toBe(0); // protocol: any
    expect(del[6]).toBe(255); // scope nowhere: match any
    expect(() => encodeRoute({ dst: '10.0.0.0/8', gw: 'fd00::1' })).toThrow(/family/);
  });
  it('neighbour and FDB', () => {
    const n = Buffer.concat(encodeNeigh({ index: 4, ip: '10.6.0.9', mac: '02:aa:bb:cc:dd:09' }));
    expect(n.subarray(0, 12).toString('hex')).toBe('02000000' + '04000000' + '8000' + '00' + '00');
    expect(parseNeigh(n)).toMatchObject({ ip: '10.6.0.9', mac: '02:aa:bb:cc:dd:09', permanent: true, index: 4 });
    const f = Buffer.concat(encodeFdb(6, '0e:00:00:00:00:02', '10.7.0.4', { vni: 7, port: 4789 }));
    expect(f.subarray(0, 12).toString('hex')).toBe('07000000' + '06000000' + '8000' + '02' + '00');
    const p = parseNeigh(f);
    expect(p).toMatchObject({ family: 7, self: true, master: false, mac: '0e:00:00:00:00:02', ip: '10.7.0.4', vni: 7, port: 4789 });
  });
});

describe('link parsing', () => {
  it('parses a synthetic RTM_NEWLINK for a vxlan port of a bridge', () => {
    const data = Buffer.concat([
      ifinfomsg({ index: 7, flags: 0x1 | 0x10000 }),
      attrStr(3, 'vx0'), attrU32(4, 1450), attrU32(10, 3),
      attrNested(18, [attrStr(1, 'vxlan'), attrNested(2, [attrU32(1, 42)]), attrStr(4, 'bridge'), attrNested(5, [Buffer.from('05000400010000000500080000000000', 'hex')])]),
    ]);
    const l = parseLink(data);
    expect(l).toMatchObject({ index: 7, name: 'vx0', mtu: 1450, masterIndex: 3, up: true, lowerUp: true, kind: 'vxlan', vxlan: { vni: 42, gbp: false }, slaveKind: 'bridge', brport: { hairpin: true, learning: false } });
  });
});

describe('framing and addresses', () => {
  it('encodes and decodes nlmsghdr', () => {
    const m = encodeMsg(18, 0x5, 42, [Buffer.from([1, 2, 3, 4])]);
    expect(m.toString('hex')).toBe('14000000' + '1200' + '0500' + '2a000000' + '00000000' + '01020304');
    const [d] = decodeMsgs(Buffer.concat([m, m]));
    expect(d).toMatchObject({ type: 18, flags: 5, seq: 42 });
    expect(decodeMsgs(Buffer.concat([m, m]))).toHaveLength(2);
  });
});
