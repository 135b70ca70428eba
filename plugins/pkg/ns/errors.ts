/** Typed errors of the ns package (mapped from errno, never from messages). */

export class NetnsError extends Error {
  constructor(message: string, readonly path: string, readonly code?: string, readonly errno?: number) {
    super(message);
    this.name = new.target.name;
  }
}

/** The path does not exist (ENOENT/ENOTDIR): the netns is gone. */
export class NetnsNotFoundError extends NetnsError {}

/** The path exists but is not a network namespace (regular file, other ns type, unpinned file). */
export class NotNetnsError extends NetnsError {}

/** createNetns: a pin with that name already exists. */
export class NetnsExistsError extends NetnsError {}

/** Switching back to the original netns failed: the thread is stranded; the process must exit. */
export class NetnsRestoreError extends NetnsError {}
