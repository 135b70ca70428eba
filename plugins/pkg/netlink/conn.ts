/**
 * Request/response framing over the `netlink` package's RawNetlinkSocket.
 * One Conn = one NETLINK_ROUTE socket (or another netlink family, e.g.
 * NETLINK_NETFILTER for conntrack), bound to the netns that was current
 * on the calling thread when it was constructed (see openHandleAt).
 *  - every request gets its own sequence number; replies are matched by seq;
 *  - non-dump requests carry NLM_F_ACK and finish on NLMSG_ERROR (0 = ack);
 *  - dumps finish on NLMSG_DONE; a dump flagged NLM_F_DUMP_INTR (the table
 *    changed while it was read) is retried (cf. vishvananda/netlink's
 *    netlinksafe) and fails with DumpInterruptedError after the last try;
 *  - dumps are serialised per socket (the kernel allows one at a time);
 *  - batch() sends many requests per datagram (one sendmsg; the kernel
 *    handles them in order and acks each), a bounded number at a time so
 *    the acks fit the receive buffer;
 *  - a receive buffer overrun (recvmsg ENOBUFS: replies were dropped) fails
 *    every pending request with NetlinkError ENOBUFS, which callers retry
 *    (a dump is re-run; a set/replace/delete is idempotent);
 *  - the socket is referenced only while requests are pending, so an open
 *    handle never keeps a process alive.
 */
import { RawNetlinkSocket } from 'netlink/dist/raw';
import {
  decodeMsgs, encodeMsg, NlMsg, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP,
  NLM_F_DUMP_INTR, NLM_F_REQUEST,
} from './attrs';
import { NETLINK_ROUTE } from './constants';
import { DumpInterruptedError, errorFromErrno, NetlinkError, ERRNO } from './errors';

interface Pending {
  dump: boolean;
  op: string;
  msgs: NlMsg[];
  intr: boolean;
  resolve(r: { msgs: NlMsg[]; intr: boolean }): void;
  reject(e: Error): void;
}

export const DUMP_RETRIES = 5;
/** Requests per datagram in batch(): their acks (one skb each) must fit the receive buffer. */
export const BATCH_MAX_MSGS = 128;
const BATCH_MAX_BYTES = 64 * 1024;
/** errno of a receive buffer overrun (replies or notifications dropped) */
export const ENOBUFS = 105;

/** One request of a batch: what request() takes. */
export interface BatchItem {
  type: number;
  flags: number;
  parts: Uint8Array[];
  op: string;
}

export class Conn {
  readonly socket: RawNetlinkSocket;
  #seq = Math.floor(Math.random() * 0x7fffffff);
  #pending = new Map<number, Pending>();
  #closed = false;

  constructor(protocol: number = NETLINK_ROUTE) {
    this.socket = new RawNetlinkSocket(protocol, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 18 });
    this.socket.unref();
    this.socket.on('message', (buf) => this.#onData(buf));
    this.socket.on('error', (err) => this.#failAll(err));
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.close();
    this.#failAll(new Error('netlink handle closed'));
  }

  #failAll(err: Error & { errno?: number }): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    if (!this.#closed) this.socket.unref();
    // ENOBUFS: the kernel dropped replies (receive buffer full); the socket stays usable
    const overrun = err.errno !== undefined && Math.abs(err.errno) === ENOBUFS;
    for (const p of all) p.reject(overrun ? new NetlinkError(ENOBUFS, p.op, `${p.op}: ENOBUFS (netlink receive buffer overrun; replies lost)`) : err);
  }

  #onData(buf: Buffer): void {
    for (const m of decodeMsgs(buf)) {
      const p = this.#pending.get(m.seq);
      if (!p) continue; // stale reply of an abandoned request
      if (m.flags & NLM_F_DUMP_INTR) p.intr = true;
      if (m.type === NLMSG_ERROR) {
        const errno = m.data.length >= 4 ? -m.data.readInt32LE(0) : ERRNO.EINVAL;
        this.#finish(m.seq);
        if (errno === 0) p.resolve({ msgs: p.msgs, intr: p.intr });
        else p.reject(errorFromErrno(errno, p.op));
      } else if (m.type === NLMSG_DONE) {
        // a failed dump reports its errno in the DONE payload
        const errno = m.data.length >= 4 ? -m.data.readInt32LE(0) : 0;
        this.#finish(m.seq);
        if (errno > 0) p.reject(errorFromErrno(errno, p.op));
        else p.resolve({ msgs: p.msgs, intr: p.intr });
      } else if (m.type === NLMSG_OVERRUN) {
        this.#finish(m.seq);
        p.reject(new NetlinkError(ERRNO.EINVAL, p.op, `${p.op}: netlink overrun`));
      } else {
        p.msgs.push(m);
        // a non-dump reply without ack would be single; we always ask for ack
      }
    }
  }

  #finish(seq: number): void {
    this.#pending.delete(seq);
    if (this.#pending.size === 0 && !this.#closed) this.socket.unref();
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) >>> 0 || 1;
    return this.#seq;
  }

  #expect(seq: number, op: string, dump: boolean): Promise<{ msgs: NlMsg[]; intr: boolean }> {
    return new Promise((resolve, reject) => this.#pending.set(seq, { dump, op, msgs: [], intr: false, resolve, reject }));
  }

  /** Sends one datagram; a send error fails the requests it carried. */
  #transmit(data: Buffer | Buffer[], seqs: Array<{ seq: number; op: string }>): void {
    this.socket.ref();
    this.socket.send(data, {}, (err) => {
      if (!err) return;
      for (const { seq, op } of seqs) {
        const p = this.#pending.get(seq);
        if (!p) continue;
        this.#finish(seq);
        p.reject(err.errno ? errorFromErrno(Math.abs(err.errno), op) : err);
      }
    });
  }

  #send(type: number, flags: number, parts: Uint8Array[], op: string, dump: boolean): Promise<{ msgs: NlMsg[]; intr: boolean }> {
    if (this.#closed) return Promise.reject(new Error(`${op}: netlink handle closed`));
    const seq = this.#nextSeq();
    const r = this.#expect(seq, op, dump);
    this.#transmit(encodeMsg(type, flags, seq, parts), [{ seq, op }]);
    return r;
  }

  /**
   * Many requests (each with NLM_F_ACK) sent BATCH_MAX_MSGS per datagram:
   * the kernel handles a datagram's messages in order and acks each; acks
   * are matched by seq. One entry per item, in order: null (acked) or its
   * error. Never rejects for an item's error.
   */
  async batch(items: readonly BatchItem[]): Promise<Array<Error | null>> {
    const out: Array<Error | null> = new Array(items.length).fill(null);
    for (let i = 0; i < items.length;) {
      if (this.#closed) {
        for (let k = i; k < items.length; k++) out[k] = new Error(`${items[k].op}: netlink handle closed`);
        break;
      }
      const msgs: Buffer[] = [];
      const sent: Array<{ seq: number; op: string }> = [];
      const waits: Array<Promise<void>> = [];
      let bytes = 0;
      for (; i < items.length && msgs.length < BATCH_MAX_MSGS; i++) {
        const it = items[i];
        const seq = this.#nextSeq();
        const m = encodeMsg(it.type, NLM_F_REQUEST | NLM_F_ACK | it.flags, seq, it.parts);
        if (msgs.length && bytes + m.length > BATCH_MAX_BYTES) break;
        bytes += m.length;
        msgs.push(m);
        sent.push({ seq, op: it.op });
        const k = i;
        waits.push(this.#expect(seq, it.op, false).then(() => undefined, (e: Error) => { out[k] = e; }));
      }
      this.#transmit(msgs.length === 1 ? msgs[0] : Buffer.concat(msgs), sent);
      await Promise.all(waits);
    }
    return out;
  }

  /** A request with NLM_F_ACK; resolves with the reply messages (often none). */
  async request(type: number, extraFlags: number, parts: Uint8Array[], op: string): Promise<NlMsg[]> {
    const r = await this.#send(type, NLM_F_REQUEST | NLM_F_ACK | extraFlags, parts, op, false);
    return r.msgs;
  }

  /**
   * A dump (NLM_F_DUMP), retried while the kernel flags it interrupted.
   * Dumps are serialised: the kernel runs one dump per socket at a time and
   * answers a second concurrent one with EBUSY.
   */
  dump(type: number, parts: Uint8Array[], op: string, retries = DUMP_RETRIES): Promise<NlMsg[]> {
    const run = this.#dumpChain.then(() => this.#dumpNow(type, parts, op, retries));
    this.#dumpChain = run.then(() => undefined, () => undefined);
    return run;
  }

  #dumpChain: Promise<void> = Promise.resolve();

  async #dumpNow(type: number, parts: Uint8Array[], op: string, retries: number): Promise<NlMsg[]> {
    for (let i = 0; ; i++) {
      const r = await this.#send(type, NLM_F_REQUEST | NLM_F_DUMP, parts, op, true);
      if (!r.intr) return r.msgs;
      if (i + 1 >= retries) {
        throw new DumpInterruptedError(ERRNO.EINTR, op, `${op}: dump interrupted ${retries} times`);
      }
    }
  }
}
