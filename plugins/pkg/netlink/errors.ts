/**
 * Kernel errors as classes, mapped from the errno in NLMSG_ERROR (never from
 * message text). Note: the `netlink` npm package's own request() rejects with
 * a plain Error('Request rejected: EEXIST') that carries no errno; that is why
 * flax frames requests itself on top of its RawNetlinkSocket (see conn.ts).
 */
import { getSystemErrorName } from 'node:util';

export class NetlinkError extends Error {
  /** positive errno (e.g. 17) */
  readonly errno: number;
  /** symbolic errno ('EEXIST') */
  readonly code: string;
  /** the operation that failed ('linkAdd veth0') */
  readonly op: string;
  constructor(errno: number, op: string, message?: string) {
    const code = errnoName(errno);
    super(message ?? `${op}: ${code}`);
    this.name = new.target.name;
    this.errno = errno;
    this.code = code;
    this.op = op;
  }
}

/** Object not found: ESRCH (route), ENOENT (neighbour/fdb), EADDRNOTAVAIL (address). */
export class NotFoundError extends NetlinkError {}
/** ENODEV, or a lookup by name/index that found nothing. */
export class LinkNotFoundError extends NotFoundError {}
/** EEXIST */
export class ExistsError extends NetlinkError {}
/** EOPNOTSUPP: unknown link kind ("Unknown device type"), unsupported feature. */
export class NotSupportedError extends NetlinkError {}
/** A dump kept being interrupted (NLM_F_DUMP_INTR) after all retries. */
export class DumpInterruptedError extends NetlinkError {}

export const ERRNO = { ENOENT: 2, ESRCH: 3, EINTR: 4, EEXIST: 17, ENODEV: 19, EINVAL: 22, EBUSY: 16, EOPNOTSUPP: 95, EADDRNOTAVAIL: 99, ENETUNREACH: 101 } as const;

export function errnoName(errno: number): string {
  // Linux: ENOTSUP == EOPNOTSUPP (95); Node names it ENOTSUP, the kernel/iproute2 say EOPNOTSUPP
  if (Math.abs(errno) === ERRNO.EOPNOTSUPP) return 'EOPNOTSUPP';
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `E${errno}`;
  }
}

/** Maps a positive errno from the kernel to the matching error class. */
export function errorFromErrno(errno: number, op: string, message?: string): NetlinkError {
  switch (errno) {
    case ERRNO.ENODEV: return new LinkNotFoundError(errno, op, message);
    case ERRNO.ESRCH:
    case ERRNO.ENOENT:
    case ERRNO.EADDRNOTAVAIL: return new NotFoundError(errno, op, message);
    case ERRNO.EEXIST: return new ExistsError(errno, op, message);
    case ERRNO.EOPNOTSUPP: return new NotSupportedError(errno, op, message);
    default: return new NetlinkError(errno, op, message);
  }
}

/** True for any "it is not there" error (link, route, address, neighbour). */
export function isNotFound(e: unknown): e is NotFoundError {
  return e instanceof NotFoundError;
}
export function isExists(e: unknown): e is ExistsError {
  return e instanceof ExistsError;
}
