import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLANNEL_CONFLIST } from './overlay-demo';

describe('the demo\'s flannel conflist', () => {
  it('is conf/10-flannel.conflist (kube-flannel\'s)', () => {
    const shipped = JSON.parse(readFileSync(path.resolve(__dirname, '../../../conf/10-flannel.conflist'), 'utf8'));
    expect(FLANNEL_CONFLIST).toEqual(shipped);
  });
});
