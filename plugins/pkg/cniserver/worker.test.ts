import { describe, expect, it } from 'vitest';
import { envObject } from './worker';

describe('envObject (the caller environment a worker runs a call with)', () => {
  it('splits at the first "=", keeps empty values and the first of duplicates, drops malformed entries', () => {
    expect(envObject(['CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=a', 'CNI_NETNS=', 'PATH=/bin', 'PATH=/other', 'junk', '=x']))
      .toEqual({ CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=a', CNI_NETNS: '', PATH: '/bin' });
  });
});
