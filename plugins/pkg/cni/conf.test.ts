import { describe, expect, it } from 'vitest';
import { CniError } from './errors';
import { BridgeConfSchema } from '../../main/bridge/config';
import { HostLocalConfSchema } from '../../ipam/host-local/config';
import { loadNetConf, parseWithoutJit } from './conf';

const good = { cniVersion: '1.0.0', name: 'n', type: 'bridge', bridge: 'b0', isGateway: true, ipMasq: true, mtu: 1400, ipam: { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/16', gateway: '10.1.0.1' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/x' } };
const bad = [{ ...good, mtu: 'big' }, { ...good, ipam: { ...good.ipam, ranges: [[{ subnet: 7 }]] } }, { ...good, isGateway: 'yes', bridge: 3 }];
const outcome = (schema: typeof BridgeConfSchema | typeof HostLocalConfSchema, v: unknown) => {
  try {
    return { ok: loadNetConf(JSON.stringify(v), schema) };
  } catch (e) {
    return { code: (e as CniError).code, msg: (e as CniError).message };
  }
};

describe('parsing without zod\'s compiled fast path (one-shot plugin processes)', () => {
  it('gives the same configs and the same errors', () => {
    const cases = [good, ...bad].flatMap((v) => [outcome(BridgeConfSchema, v), outcome(HostLocalConfSchema, v)]);
    parseWithoutJit();
    const again = [good, ...bad].flatMap((v) => [outcome(BridgeConfSchema, v), outcome(HostLocalConfSchema, v)]);
    expect(again).toEqual(cases);
    expect(cases.filter((c) => 'code' in c).length).toBeGreaterThanOrEqual(3);
  });
});
