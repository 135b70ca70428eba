import { describe, expect, it } from 'vitest';
import { Conn } from './conn';
import { RTM } from './constants';
import { NetlinkError } from './errors';

describe('Conn', () => {
  it('a receive buffer overrun (recvmsg ENOBUFS) fails the pending requests with a retryable NetlinkError ENOBUFS; the socket stays usable', async () => {
    const c = new Conn();
    try {
      // a request whose reply has not been read yet when the overrun is reported
      const pending = c.request(RTM.GETLINK, 0, [Buffer.alloc(16)], 'linkList');
      c.socket.emit('error', Object.assign(new Error('Error when receiving Netlink message'), { name: 'ErrnoException' as const, errno: 105, code: 'ENOBUFS', syscall: 'recvmsg' }));
      const e = await pending.then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(NetlinkError);
      expect((e as NetlinkError).code).toBe('ENOBUFS');
      expect((e as NetlinkError).op).toBe('linkList');
      // the same socket answers the next request
      expect((await c.dump(RTM.GETLINK, [Buffer.alloc(16)], 'linkList')).length).toBeGreaterThan(0);
    } finally {
      c.close();
    }
  });

  it('batch() on a closed handle answers an error per request, never throws', async () => {
    const c = new Conn();
    c.close();
    const r = await c.batch([{ type: RTM.GETLINK, flags: 0, parts: [Buffer.alloc(16)], op: 'a' }, { type: RTM.GETLINK, flags: 0, parts: [Buffer.alloc(16)], op: 'b' }]);
    expect(r.map((e) => e?.message)).toEqual(['a: netlink handle closed', 'b: netlink handle closed']);
  });
});
