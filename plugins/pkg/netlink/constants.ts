/** rtnetlink constants (from linux/rtnetlink.h, if_link.h, if_bridge.h, neighbour.h). */

export const NETLINK_ROUTE = 0;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_BRIDGE = 7;
export const AF_UNSPEC = 0;

export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWNEIGH: 28, DELNEIGH: 29, GETNEIGH: 30,
} as const;

export const IFLA = {
  ADDRESS: 1, BROADCAST: 2, IFNAME: 3, MTU: 4, LINK: 5, QDISC: 6, STATS: 7, MASTER: 10, PROTINFO: 12,
  TXQLEN: 13, OPERSTATE: 16, LINKMODE: 17, LINKINFO: 18, NET_NS_PID: 19, IFALIAS: 20, AF_SPEC: 26,
  GROUP: 27, NET_NS_FD: 28, EXT_MASK: 29, PROMISCUITY: 30, LINK_NETNSID: 37, TARGET_NETNSID: 46,
  NEW_IFINDEX: 49, MIN_MTU: 50, MAX_MTU: 51, PERM_ADDRESS: 54,
} as const;

export const IFLA_INFO = { KIND: 1, DATA: 2, XSTATS: 3, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;
export const VETH_INFO_PEER = 1;

export const IFLA_BR = {
  FORWARD_DELAY: 1, HELLO_TIME: 2, MAX_AGE: 3, AGEING_TIME: 4, STP_STATE: 5, PRIORITY: 6,
  VLAN_FILTERING: 7, VLAN_PROTOCOL: 8, MCAST_SNOOPING: 23, VLAN_DEFAULT_PVID: 39,
} as const;

export const IFLA_BRPORT = {
  STATE: 1, PRIORITY: 2, COST: 3, MODE: 4, GUARD: 5, PROTECT: 6, FAST_LEAVE: 7, LEARNING: 8,
  UNICAST_FLOOD: 9, PROXYARP: 10, NEIGH_SUPPRESS: 32, ISOLATED: 33,
} as const;

export const IFLA_VXLAN = {
  ID: 1, GROUP: 2, LINK: 3, LOCAL: 4, TTL: 5, TOS: 6, LEARNING: 7, AGEING: 8, LIMIT: 9, PORT_RANGE: 10,
  PROXY: 11, RSC: 12, L2MISS: 13, L3MISS: 14, PORT: 15, GROUP6: 16, LOCAL6: 17, UDP_CSUM: 18,
  UDP_ZERO_CSUM6_TX: 19, UDP_ZERO_CSUM6_RX: 20, GBP: 23, DF: 29,
} as const;

export const IFLA_MACVLAN = { MODE: 1, FLAGS: 2 } as const;
export const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 } as const;
export type MacvlanMode = keyof typeof MACVLAN_MODE;

export const IFLA_VLAN = { ID: 1, FLAGS: 2, PROTOCOL: 5 } as const;

export const IFLA_BRIDGE = { FLAGS: 0, MODE: 1, VLAN_INFO: 2 } as const;
export const BRIDGE_FLAGS_MASTER = 1;
export const BRIDGE_FLAGS_SELF = 2;
export const BRIDGE_VLAN_INFO = { MASTER: 1, PVID: 2, UNTAGGED: 4, RANGE_BEGIN: 8, RANGE_END: 16, BRENTRY: 32 } as const;

export const IFF = { UP: 0x1, BROADCAST: 0x2, LOOPBACK: 0x8, POINTOPOINT: 0x10, RUNNING: 0x40, NOARP: 0x80, PROMISC: 0x100, MULTICAST: 0x1000, LOWER_UP: 0x10000 } as const;

export const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'] as const;
export type OperState = (typeof OPERSTATES)[number];

export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, ANYCAST: 5, CACHEINFO: 6, MULTICAST: 7, FLAGS: 8 } as const;
export const IFA_F = {
  SECONDARY: 0x1, NODAD: 0x2, OPTIMISTIC: 0x4, DADFAILED: 0x8, HOMEADDRESS: 0x10, DEPRECATED: 0x20,
  TENTATIVE: 0x40, PERMANENT: 0x80, MANAGETEMPADDR: 0x100, NOPREFIXROUTE: 0x200,
} as const;

export const RTA = {
  DST: 1, SRC: 2, IIF: 3, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, MULTIPATH: 9,
  FLOW: 11, CACHEINFO: 12, TABLE: 15, MARK: 16, PREF: 20,
} as const;
export const RTAX = { LOCK: 1, MTU: 2, WINDOW: 3, RTT: 4, ADVMSS: 8, HOPLIMIT: 10, INITCWND: 11 } as const;
export const RTNH_F_ONLINK = 4;
export const RTM_F_CLONED = 0x200;

export const RT_TABLE = { UNSPEC: 0, DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;
export const RT_SCOPE = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
export type RouteScopeName = keyof typeof RT_SCOPE;
export const RTN = { unspec: 0, unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6, unreachable: 7, prohibit: 8, throw: 9 } as const;
export type RouteTypeName = keyof typeof RTN;
export const RTPROT = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4, ra: 9, dhcp: 16 } as const;

export const NDA = { DST: 1, LLADDR: 2, CACHEINFO: 3, PROBES: 4, VLAN: 5, PORT: 6, VNI: 7, IFINDEX: 8, MASTER: 9 } as const;
export const NUD = { INCOMPLETE: 0x1, REACHABLE: 0x2, STALE: 0x4, DELAY: 0x8, PROBE: 0x10, FAILED: 0x20, NOARP: 0x40, PERMANENT: 0x80 } as const;
export const NTF = { USE: 0x1, SELF: 0x2, MASTER: 0x4, PROXY: 0x8, EXT_LEARNED: 0x10, OFFLOADED: 0x20, ROUTER: 0x80 } as const;

export const RTEXT_FILTER_VF = 1;
export const RTEXT_FILTER_BRVLAN = 2;
