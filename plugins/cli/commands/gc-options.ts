/** The yargs option table of `flax gc` (apart from gc.ts, so that the CLI
 * table does not load the sweeper until the command runs). */
export const GC_OPTIONS = {
  'dry-run': { type: 'boolean', describe: 'print what would be removed; change nothing' },
  json: { type: 'boolean', describe: 'print the report as JSON' },
  network: { type: 'string', array: true, describe: 'only this network (repeatable)' },
  'min-age': { type: 'number', default: 60, describe: 'seconds: nothing younger is touched (an ADD in progress is safe)' },
  'cni-conf-dir': { type: 'string', default: '/etc/cni/net.d', describe: 'network configurations' },
  'cni-path': { type: 'string', default: '/opt/cni/bin', describe: 'plugin dirs, ":"-separated, for the DELs and GCs' },
  'cache-dir': { type: 'string', default: '/var/lib/cni', describe: 'libcni cache root (results/ below it)' },
  'sandbox-dir': { type: 'string', describe: 'root of `flax sandbox`\'s sandboxes, whose dead ones are removed (default: $FLAX_SANDBOX_DIR or /run/flax/sandboxes)' },
} as const;
