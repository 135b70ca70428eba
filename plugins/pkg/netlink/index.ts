export * from './errors';
export * from './messages';
export * from './handle';
export { AF_INET, AF_INET6, AF_BRIDGE, AF_UNSPEC } from './constants';
export { RT_SCOPE, RT_TABLE, RTN, RTPROT, NUD, NTF, IFF, MACVLAN_MODE } from './constants';
export type { MacvlanMode, OperState, RouteScopeName, RouteTypeName } from './constants';
export { DUMP_RETRIES } from './conn';
export { RTMGRP, decodeEvents, subscribeEvents, type NetlinkEvent, type Subscription } from './monitor';
