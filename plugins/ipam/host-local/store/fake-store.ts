/** In-memory Store for unit tests (host-local's testing/fake_store.go). */
import { type Owner, type Store, legacyOwnerText, ownerText } from './store';

export class FakeStore implements Store {
  /** ip → file content */
  readonly files = new Map<string, string>();
  /** set index → last reserved ip */
  readonly last = new Map<number, string>();
  /** number of reserve() calls (probes), for cost assertions */
  probes = 0;

  constructor(init: Record<string, string> = {}, last: Record<number, string> = {}) {
    for (const [ip, c] of Object.entries(init)) this.files.set(ip, c);
    for (const [k, v] of Object.entries(last)) this.last.set(Number(k), v);
  }

  reserve(owner: Owner, ip: string, setIndex: number): boolean {
    this.probes++;
    if (this.files.has(ip)) return false;
    this.files.set(ip, ownerText(owner));
    this.last.set(setIndex, ip);
    return true;
  }

  release(owner: Owner, ip: string): void {
    const c = this.files.get(ip);
    if (c !== undefined && c.trim() === ownerText(owner)) this.files.delete(ip);
  }

  lastReservedIP(setIndex: number): string | null {
    return this.last.get(setIndex) ?? null;
  }

  getByOwner(owner: Owner): string[] {
    const m = ownerText(owner);
    const old = legacyOwnerText(owner);
    return [...this.files].filter(([, c]) => c.trim() === m || c.trim() === old).map(([ip]) => ip);
  }

  releaseByOwner(owner: Owner): string[] {
    for (const match of [ownerText(owner), legacyOwnerText(owner)]) {
      const hit = [...this.files].filter(([, c]) => c.trim() === match).map(([ip]) => ip);
      if (hit.length) {
        for (const ip of hit) this.files.delete(ip);
        return hit;
      }
    }
    return [];
  }
}
