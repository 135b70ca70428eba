/** Test helper: the message of the error `fn` throws, checking its class; fails when nothing is thrown. */
export function thrownMessage(fn: () => unknown, cls: new (...a: never[]) => Error): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof cls)) throw new Error(`expected a ${cls.name}, got ${String(e)}`);
    return e.message;
  }
  throw new Error(`expected a ${cls.name}, nothing was thrown`);
}
