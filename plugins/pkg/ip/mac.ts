/** MAC addresses: text ↔ bytes, the zero MAC, random local ones. */
import { randomBytes } from 'node:crypto';

export const ZERO_MAC = '00:00:00:00:00:00';

/** "aa:bb:cc:dd:ee:ff" (or '-' separated, any case) → 6 bytes. */
export function macToBuffer(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new TypeError(`invalid MAC address ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** bytes → lower-case "aa:bb:..". */
export function bufferToMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A random locally administered unicast MAC (02:xx:…, as the kernel's eth_random_addr). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return bufferToMac(b);
}
