/**
 * `flax sandbox run`: pause in new net, ipc and uts namespaces (and pid with
 * sharePid), the namespaces pinned under <root>/<name>/, lo up, each network
 * attached through CNI, the state written as it goes (see state.ts).
 *
 * Every input is checked before the first side effect (name, hostname, the
 * conflists, the helpers, that no sandbox has that name). After that each
 * step pushes its undo on a Rollback, so a failure at any step — or a fault
 * injected at a named step by a test — leaves nothing behind.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { loadConfList, type NetworkConfigList } from '../pkg/invoke/conf';
import { openHandleAt } from '../pkg/netlink/index';
import { native, nativeHelperPath } from '../pkg/native';
import { Rollback, type FaultHook } from '../pkg/rollback';
import { attachNetwork, detachNetwork } from './networks';
import { spawnDetached } from './nsexec';
import { readStartTime, terminate } from './proc';
import {
  NS_KINDS, SandboxError, containerIdOf, ensureRoot, inspectSandbox, lockSandbox, releaseAndUnlink, sandboxDir, validateSandboxName, writeState,
  type NetworkState, type NsKind, type SandboxState,
} from './state';

export interface RunOptions {
  name: string;
  root: string;
  /** network names, attached in order as eth0, eth1, … */
  nets: string[];
  /** default: the sandbox name */
  hostname?: string;
  sharePid?: boolean;
  args?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  confDir: string;
  cniPath: string[];
  cacheDir: string;
  /** plugins' stderr (default process.stderr) */
  stderr?: NodeJS.WritableStream | null;
  env?: NodeJS.ProcessEnv;
  /** test seam: throw at a named step (see RUN_STEPS) */
  fault?: FaultHook;
}

/** Named steps of run, in order (`attach:<network>` once per network). */
export const RUN_STEPS = ['mkdir', 'pause', 'state', 'pin', 'loopback', 'attach:<network>', 'ready'] as const;

const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$/;

/** Loads and checks everything run needs; throws before any side effect. */
function preflight(o: RunOptions): NetworkConfigList[] {
  validateSandboxName(o.name);
  const hostname = o.hostname ?? o.name;
  if (!HOSTNAME_RE.test(hostname)) throw new SandboxError(`invalid hostname ${JSON.stringify(hostname)}: 1-64 characters of A-Z a-z 0-9 . -, starting and ending with a letter or digit`);
  const dup = o.nets.find((n, i) => o.nets.indexOf(n) !== i);
  if (dup) throw new SandboxError(`network ${dup} given twice`);
  for (const h of ['nsexec', 'pause'] as const) {
    if (!existsSync(nativeHelperPath(h))) throw new SandboxError(`helper ${nativeHelperPath(h)} not found: run npm run build`);
  }
  const lists = o.nets.map((n) => loadConfList(o.confDir, n));
  if (o.nets.length && !o.cniPath.length) throw new SandboxError('no plugin directory: set CNI_PATH or --cni-path');
  const existing = inspectSandbox(o.root, o.name);
  if (existing) throw alreadyExists(o.name, existing.pausePid, existing.alive);
  return lists;
}

function alreadyExists(name: string, pid: number, alive: boolean): SandboxError {
  return new SandboxError(`sandbox ${name} already exists (pause pid ${pid || '?'}, ${alive ? 'alive' : 'dead'}): flax sandbox rm ${name} first`);
}

/** Starts pause through nsexec in new namespaces (stderr to <dir>/pause.log); resolves once it has exec'd. */
async function startPause(dir: string, sharePid: boolean, hostname: string): Promise<{ pid: number; startTime: string }> {
  const logFile = path.join(dir, 'pause.log');
  const pid = await spawnDetached([`--new=net,ipc,uts${sharePid ? ',pid' : ''}`, `--hostname=${hostname}`], [nativeHelperPath('pause')], logFile);
  const startTime = readStartTime(pid);
  if (!startTime) throw new SandboxError(`pause (pid ${pid}) exited at once: see ${logFile}`);
  return { pid, startTime };
}

async function loopbackUp(netns: string): Promise<void> {
  using h = openHandleAt(netns);
  await h.linkSetUp((await h.linkByName('lo')).index);
}

/** Creates the sandbox; resolves with its state (phase "ready"). On failure nothing is left. */
export async function runSandbox(o: RunOptions): Promise<SandboxState> {
  const lists = preflight(o);
  ensureRoot(o.root);
  using lock = await lockSandbox(o.root, o.name);
  const rb = new Rollback('sandbox', o.fault);
  const dir = sandboxDir(o.root, o.name);
  try {
    // re-checked under the lock: a concurrent run may have won
    const raced = inspectSandbox(o.root, o.name);
    if (raced) throw alreadyExists(o.name, raced.pausePid, raced.alive);
    rb.step('mkdir');
    mkdirSync(dir, { mode: 0o700 });
    rb.push('remove the sandbox directory', () => {
      // pins were undone before this runs; one still mounted makes rmSync fail (EBUSY) rather than go through it
      rmSync(dir, { recursive: true, force: true });
      releaseAndUnlink(lock);
    });

    rb.step('pause');
    const hostname = o.hostname ?? o.name;
    const pause = await startPause(dir, !!o.sharePid, hostname);
    rb.push('stop pause', () => terminate([pause], 2000));

    rb.step('state');
    const kinds: NsKind[] = NS_KINDS.filter((k) => k !== 'pid' || o.sharePid);
    const s: SandboxState = {
      version: 1, name: o.name, containerId: containerIdOf(o.name), created: new Date().toISOString(), phase: 'creating',
      hostname, sharePid: !!o.sharePid, pause,
      namespaces: Object.fromEntries(kinds.map((k) => [k, path.join(dir, k)])),
      cni: { path: o.cniPath, cacheDir: o.cacheDir }, networks: [],
    };
    writeState(o.root, s);

    rb.step('pin');
    for (const k of kinds) {
      native().pinNamespace(`/proc/${pause.pid}/ns/${k}`, s.namespaces[k]!);
      rb.push(`unpin ${k}`, () => native().removeNetns(s.namespaces[k]!));
    }

    rb.step('loopback');
    await loopbackUp(s.namespaces.net!);

    const io = { stderr: o.stderr, env: o.env };
    for (const [i, list] of lists.entries()) {
      rb.step(`attach:${list.name}`);
      const n: NetworkState = { name: list.name, ifName: `eth${i}`, config: list.bytes.toString('base64') };
      if (o.args?.length) n.args = o.args;
      if (o.capabilityArgs) n.capabilityArgs = o.capabilityArgs;
      s.networks.push(n);
      writeState(o.root, s);
      // libcni leaves a failed ADD to the runtime's DEL: so the undo comes first
      rb.push(`DEL ${list.name}`, () => detachNetwork(s, n, io));
      n.result = await attachNetwork(s, n, io);
      writeState(o.root, s);
    }

    rb.step('ready');
    s.phase = 'ready';
    writeState(o.root, s);
    rb.commit();
    return s;
  } catch (e) {
    await rb.run();
    throw e;
  }
}
