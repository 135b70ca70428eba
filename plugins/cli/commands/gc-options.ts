/** The yargs option table of `flax gc` (apart from gc.ts, so that the CLI
 * table does not load the sweeper until the command runs). */
import { OUTPUT_OPTIONS, confDirOption } from '../usage';

export const GC_OPTIONS = {
  'dry-run': { type: 'boolean', describe: 'print what would be removed; change nothing' },
  ...OUTPUT_OPTIONS,
  network: { type: 'string', array: true, describe: 'only this network (repeatable)' },
  'min-age': { type: 'number', default: 60, describe: 'seconds: nothing younger is touched (an ADD in progress is safe)' },
  'cni-conf-dir': confDirOption('network configurations (default: $NETCONFPATH or /etc/cni/net.d)'),
  'cni-path': { type: 'string', describe: 'plugin dirs, ":"-separated, for the DELs and GCs (default: $CNI_PATH or /opt/cni/bin)' },
  'cache-dir': { type: 'string', default: '/var/lib/cni', describe: 'libcni cache root (results/ below it)' },
  'sandbox-dir': { type: 'string', describe: 'root of `flax sandbox`\'s sandboxes, whose dead ones are removed (default: $FLAX_SANDBOX_DIR or /run/flax/sandboxes)' },
} as const;
