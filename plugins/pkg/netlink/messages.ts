/**
 * Pure rtnetlink message encoders and parsers (no sockets), one module per
 * object — link.ts, addr.ts, route.ts, neigh.ts (as vishvananda/netlink's
 * link/addr/route/neigh files) — re-exported here. The handle (handle.ts)
 * only sends what these build.
 */
export type { NetnsRef } from './msg-util';
export * from './link';
export * from './addr';
export * from './route';
export * from './neigh';
