/** `flax netns add|del|list` — pinned network namespaces for debugging (as `ip netns`). */
import { existsSync } from 'node:fs';
import { NETNS_RUN_DIR, netnsPath } from '../../pkg/ns/ns';
import { addNetns, delNetns, listNetns } from '../netns-util';
import { UsageError } from '../usage';
import { netnsNameProblem } from './netns-name';
import type { CliIo } from '../command';

/**
 * Runs one netns verb; returns the exit code. `dir` is where names are
 * pinned (tests pass a scratch dir for `list`). A missing name is a usage
 * error; deleting a namespace that does not exist fails like `ip netns del`.
 */
export function runNetns(verb: string, names: string[], io: CliIo, dir = NETNS_RUN_DIR): number {
  if (verb !== 'list' && !names.length) throw new UsageError(`netns ${verb} needs a <name>`);
  for (const n of names) {
    const problem = netnsNameProblem(n);
    if (problem) throw new UsageError(problem);
  }
  switch (verb) {
    case 'add':
      for (const n of names) io.stdout(addNetns(n, dir) + '\n');
      return 0;
    case 'del': {
      let code = 0;
      for (const n of names) {
        const p = netnsPath(n, dir);
        if (!existsSync(p)) {
          io.stderr(`flax: netns "${n}" does not exist (${p})\n`);
          code = 1;
          continue;
        }
        delNetns(p);
      }
      return code;
    }
    case 'list': {
      const all = listNetns(dir);
      if (!all.length) io.stderr(`no network namespaces in ${dir}\n`);
      for (const n of all) io.stdout(n + '\n');
      return 0;
    }
  }
  throw new UsageError(`unknown netns verb "${verb}" (add, del, list)`);
}
