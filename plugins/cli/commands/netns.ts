/** `flax netns add|del|list` — pinned network namespaces for debugging. */
import { addNetns, delNetns, listNetns } from '../netns-util';
import type { CliIo } from './cni';

export function runNetns(verb: string, names: string[], io: CliIo): number {
  switch (verb) {
    case 'add':
      for (const n of names) io.stdout(addNetns(n) + '\n');
      return 0;
    case 'del':
      for (const n of names) delNetns(n);
      return 0;
    case 'list':
      for (const n of listNetns()) io.stdout(n + '\n');
      return 0;
  }
  throw new Error(`unknown netns command ${verb}`);
}
