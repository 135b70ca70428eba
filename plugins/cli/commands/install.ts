/**
 * `flax install` — the self-contained package (npm run package → dist/pkg)
 * into a CNI bin dir, and a conflist into a conf dir; `--uninstall` removes
 * exactly that. The logic lives in ../install/.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Options } from 'yargs';
import type { Args, CliIo, CommandDef } from '../command';
import type { FirewallDeps } from '../../pkg/nft';
import { UsageError, confDirOption } from '../usage';
import type { ServerMode } from '../install/server';

declare const __flaxDir: string | undefined;

export const INSTALL_OPTIONS = {
  'cni-bin-dir': { type: 'string', describe: 'where the executables go (default /opt/cni/bin)' },
  'cni-conf-dir': confDirOption('where the conflist goes (default /etc/cni/net.d)'),
  conflist: { type: 'string', describe: 'install this conflist (JSON file; "-" reads stdin)' },
  'conf-name': { type: 'string', describe: 'file name of the conflist in --cni-conf-dir (default: the file\'s own name if it ends in .conflist, else 10-<network name>.conflist; --network: 10-flannel.conflist / 10-flax-bridge.conflist)' },
  network: { type: 'string', choices: ['bridge', 'flannel'], describe: 'install flax\'s conflist for this network instead of --conflist' },
  uninstall: { type: 'boolean', describe: 'first write the iptables tombstones the reference plugins\' DEL needs (as flax tombstones, in this netns), then remove what flax install put there (restoring files --force replaced)' },
  force: { type: 'boolean', describe: 'replace files flax did not install (each is kept beside as .<name>.flax-replaced); with --uninstall, also remove files changed since, and uninstall even when a tombstone could not be written' },
  'cache-dir': { type: 'string', describe: 'with --uninstall: libcni cache root, whose attachments (like --cni-conf-dir\'s networks) resolve hashed rule comments (default /var/lib/cni)' },
  from: { type: 'string', describe: 'the package dir to install (default: the one this flax runs from, or dist/pkg)' },
  server: { type: 'string', choices: ['systemd', 'auto', 'off'], describe: 'the resident CNI server on a host without flax\'s DaemonSet: systemd (flax-cni.socket + flax-cni.service), auto (the plugins start flaxd --no-overlay when none answers), off (default: a server is used when one answers); recorded in /etc/flax/cni-server' },
} as const satisfies Record<string, Options>;

/** The package dir: --from, else beside this executable (a packaged flax), else ../pkg of dist/bin, else ./dist/pkg. */
export function defaultPackageDir(): string {
  const cands = typeof __flaxDir === 'string' ? [__flaxDir, path.join(__flaxDir, '../pkg')] : [path.resolve('dist/pkg')];
  return cands.find((d) => fs.existsSync(path.join(d, 'PACKAGE.json'))) ?? cands[cands.length - 1];
}

export function checkInstall(a: Args): void {
  if (a.conflist !== undefined && a.network !== undefined) throw new UsageError('--conflist and --network exclude each other');
  if (a.uninstall && (a.conflist !== undefined || a.network !== undefined || a.confName !== undefined || a.from !== undefined || a.server !== undefined)) {
    throw new UsageError('--uninstall takes only --cni-bin-dir, --cni-conf-dir, --cache-dir and --force (it removes what the manifest lists)');
  }
  if (a.cacheDir !== undefined && !a.uninstall) throw new UsageError('--cache-dir is for --uninstall');
  if (a.confName !== undefined) {
    const n = String(a.confName);
    if (a.conflist === undefined && a.network === undefined) throw new UsageError('--conf-name needs --conflist or --network');
    if (!n || n.includes('/') || n.startsWith('.') || !/\.(conflist|conf|json)$/.test(n)) throw new UsageError(`--conf-name: a file name ending in .conflist, .conf or .json, got ${JSON.stringify(n)}`);
  }
}

/**
 * Before --uninstall: the tombstones of this netns (flax tombstones), so
 * that the reference's DEL succeeds for the pods flax added. A failure
 * stops the uninstall (exit 1) unless --force.
 */
async function uninstallTombstones(a: Args, io: CliIo, fw?: FirewallDeps): Promise<number> {
  const { nodeTombstones, tombstoneProblems, tombstoneSummary } = await import('./tombstones');
  const o = { cniConfDir: (a.cniConfDir as string | undefined) ?? '/etc/cni/net.d', cacheDir: (a.cacheDir as string | undefined) ?? '/var/lib/cni' };
  let failure: string | undefined;
  try {
    const r = await nodeTombstones(o, fw);
    for (const l of tombstoneProblems(r)) io.stderr(`flax install: tombstones: ${l}\n`);
    io.stdout(`flax install: ${tombstoneSummary(r)} (iptables chains the reference plugins' DEL needs)\n`);
    if (r.failed.length) failure = `${r.failed.length} tombstone(s) could not be written`;
  } catch (e) {
    failure = `cannot write the tombstones: ${(e as Error).message}`;
  }
  if (!failure) return 0;
  if (a.force) {
    io.stderr(`flax install: ${failure}; uninstalling anyway (--force): the reference plugins' DEL will fail for those pods\n`);
    return 0;
  }
  io.stderr(`flax install: ${failure}: after uninstall the reference plugins' DEL would fail for those pods; nothing was uninstalled (re-run, or pass --force)\n`);
  return 1;
}

export async function runInstall(a: Args, io: CliIo, fw?: FirewallDeps): Promise<number> {
  const { install, installed, uninstall, InstallRefused } = await import('../install/install');
  const binDir = (a.cniBinDir as string | undefined) ?? '/opt/cni/bin';
  const report = (line: string) => io.stdout(`flax install: ${line}\n`);
  if (a.uninstall) {
    const code = installed(binDir) ? await uninstallTombstones(a, io, fw) : 0;
    if (code) return code;
    uninstall(binDir, !!a.force, report);
    return 0;
  }
  const { NETWORK_CONFLISTS, checkConflist, conflistFileName, renderConflist } = await import('../install/conflists');
  let conflist: { name: string; content: string } | undefined;
  if (a.network !== undefined) {
    const n = NETWORK_CONFLISTS[a.network as keyof typeof NETWORK_CONFLISTS];
    conflist = { name: (a.confName as string | undefined) ?? n.file, content: renderConflist(n.conf) };
  } else if (a.conflist !== undefined) {
    const file = String(a.conflist);
    let content: string;
    try {
      content = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
    } catch (e) {
      throw new UsageError(`--conflist ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const name = checkConflist(content, file);
    conflist = { name: (a.confName as string | undefined) ?? conflistFileName(file === '-' ? 'stdin' : file, name), content };
  }
  const from = (a.from as string | undefined) ?? defaultPackageDir();
  if (!fs.existsSync(path.join(from, 'PACKAGE.json'))) {
    throw new UsageError(`no flax package in ${from} (build one with npm run package, or pass --from DIR)`);
  }
  try {
    install({ from, binDir, confDir: (a.cniConfDir as string | undefined) ?? '/etc/cni/net.d', conflist, force: !!a.force, server: a.server as ServerMode | undefined }, report);
  } catch (e) {
    if (e instanceof InstallRefused) {
      io.stderr(`flax install: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  return 0;
}

export const INSTALL_COMMAND: CommandDef = {
  name: 'install',
  describe: 'install the self-contained executables into a CNI bin dir (and a conflist), or --uninstall them',
  options: INSTALL_OPTIONS as unknown as Record<string, Options>,
  examples: [
    ['flax install --network flannel', 'executables into /opt/cni/bin, 10-flannel.conflist into /etc/cni/net.d'],
    ['flax install --cni-bin-dir /opt/cni/bin --conflist my.conflist', 'a conflist of your own'],
    ['flax install --network bridge --server auto', 'also: the plugins start flaxd --no-overlay (the CNI server) when none answers; it exits after 10 idle minutes'],
    ['flax install --server systemd', 'also: flax-cni.socket + flax-cni.service, systemd starts flaxd at the first CNI call'],
    ['flax install --uninstall', 'write the tombstones for the reference plugins\' DEL, then remove exactly what was installed'],
  ],
  epilog: 'Executables are symlinks to one multi-call binary in <cni-bin-dir>/.flax/<version>/, swapped by rename (a running plugin never '
    + 'sees a half-written file); the conflist is written to a temporary name and renamed. What was written is listed in '
    + '<cni-bin-dir>/.flax/install.json: re-running is idempotent, and a file flax did not write is never replaced without --force.',
  check: checkInstall,
  run: runInstall,
};
