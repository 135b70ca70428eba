import { describe, it, expect } from 'vitest';
import {
  DumpInterruptedError, errnoName, errorFromErrno, ExistsError, isNotFound, LinkNotFoundError, NetlinkError, NotFoundError,
  NotSupportedError,
} from './errors';
import { Conn } from './conn';
import { encodeMsg, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP_INTR, NLM_F_MULTI } from './attrs';

describe('errno mapping', () => {
  it('maps errnos to classes', () => {
    expect(errorFromErrno(19, 'x')).toBeInstanceOf(LinkNotFoundError);
    expect(errorFromErrno(19, 'x')).toBeInstanceOf(NotFoundError);
    expect(errorFromErrno(3, 'x')).toBeInstanceOf(NotFoundError);
    expect(errorFromErrno(2, 'x')).toBeInstanceOf(NotFoundError);
    expect(errorFromErrno(99, 'x')).toBeInstanceOf(NotFoundError);
    expect(errorFromErrno(17, 'x')).toBeInstanceOf(ExistsError);
    expect(errorFromErrno(95, 'x')).toBeInstanceOf(NotSupportedError);
    const e = errorFromErrno(22, 'linkAdd foo');
    expect(e.constructor).toBe(NetlinkError);
    expect(e).toMatchObject({ errno: 22, code: 'EINVAL', op: 'linkAdd foo', name: 'NetlinkError', message: 'linkAdd foo: EINVAL' });
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoName(17)).toBe('EEXIST');
    expect(isNotFound(errorFromErrno(19, 'x'))).toBe(true);
    expect(isNotFound(errorFromErrno(17, 'x'))).toBe(false);
  });
});

/** A Conn whose socket answers from a script instead of the kernel. */
function fakeConn(reply: (seq: number, call: number) => Buffer[]): Conn {
  const c = new Conn();
  let calls = 0;
  (c.socket as unknown as { send: unknown }).send = (msg: Buffer, _o: unknown, cb: (e?: Error) => void) => {
    const seq = msg.readUInt32LE(8);
    const call = calls++;
    cb();
    setImmediate(() => { for (const d of reply(seq, call)) c.socket.emit('message', d, { port: 0, groups: 0 }); });
  };
  return c;
}
const errMsg = (seq: number, errno: number): Buffer => {
  const p = Buffer.alloc(4);
  p.writeInt32LE(-errno);
  return encodeMsg(NLMSG_ERROR, 0, seq, [p]);
};
const done = (seq: number, flags = 0, errno = 0): Buffer => {
  const p = Buffer.alloc(4);
  p.writeInt32LE(-errno);
  return encodeMsg(NLMSG_DONE, NLM_F_MULTI | flags, seq, [p]);
};

describe('request framing', () => {
  it('resolves on ack, rejects with a typed error from NLMSG_ERROR', async () => {
    const c = fakeConn((seq, call) => [call === 0 ? errMsg(seq, 0) : errMsg(seq, 17)]);
    try {
      await expect(c.request(16, 0, [], 'op1')).resolves.toEqual([]);
      await expect(c.request(16, 0, [], 'op2')).rejects.toMatchObject({ constructor: ExistsError, op: 'op2', errno: 17 });
    } finally {
      c.close();
    }
  });

  it('collects multipart replies and retries interrupted dumps', async () => {
    const c = fakeConn((seq, call) => {
      const m = encodeMsg(16, NLM_F_MULTI | (call < 2 ? NLM_F_DUMP_INTR : 0), seq, [Buffer.from([call, 0, 0, 0])]);
      return [Buffer.concat([m, m]), done(seq, call < 2 ? NLM_F_DUMP_INTR : 0)];
    });
    try {
      const msgs = await c.dump(18, [], 'linkList');
      expect(msgs).toHaveLength(2);
      expect(msgs[0].data[0]).toBe(2); // third attempt
    } finally {
      c.close();
    }
  });

  it('gives up with DumpInterruptedError after the retries', async () => {
    const c = fakeConn((seq) => [done(seq, NLM_F_DUMP_INTR)]);
    try {
      await expect(c.dump(18, [], 'linkList', 3)).rejects.toBeInstanceOf(DumpInterruptedError);
    } finally {
      c.close();
    }
  });

  it('reports a dump error carried in NLMSG_DONE', async () => {
    const c = fakeConn((seq) => [done(seq, 0, 95)]);
    try {
      await expect(c.dump(18, [], 'x')).rejects.toBeInstanceOf(NotSupportedError);
    } finally {
      c.close();
    }
  });
});
