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

  #failAll(err: Error): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    if (!this.#closed) this.socket.unref();
    for (const p of all) p.reject(err);
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

  #send(type: number, flags: number, parts: Uint8Array[], op: string, dump: boolean): Promise<{ msgs: NlMsg[]; intr: boolean }> {
    if (this.#closed) return Promise.reject(new Error(`${op}: netlink handle closed`));
    this.#seq = (this.#seq + 1) >>> 0 || 1;
    const seq = this.#seq;
    const msg = encodeMsg(type, flags, seq, parts);
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { dump, op, msgs: [], intr: false, resolve, reject });
      this.socket.ref();
      this.socket.send(msg, {}, (err) => {
        if (err && this.#pending.has(seq)) {
          this.#finish(seq);
          reject(err.errno ? errorFromErrno(Math.abs(err.errno), op) : err);
        }
      });
    });
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
