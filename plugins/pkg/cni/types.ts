/**
 * Result types. Internally every result is held in the 1.1.0 shape
 * (`Result`); `convertResult` renders it in any supported version and
 * `parseResult` reads any version back into it.
 */
export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}
export interface IPConfig {
  /** index into `interfaces` */
  interface?: number;
  /** CIDR, e.g. 10.1.2.3/24 */
  address: string;
  gateway?: string;
}
export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}
export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}
