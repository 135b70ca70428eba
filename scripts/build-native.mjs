// Builds native/ : the N-API addon (node-gyp, offline, with an explicit
// --nodedir so nothing is downloaded) and the static, stripped helpers
// pause (the sandbox's infra process), nsexec (joins namespaces, execs) and
// cniclient (the CNI client of the resident server, see native/cniclient).
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nodedir = path.resolve(path.dirname(process.execPath), '..');
if (!existsSync(path.join(nodedir, 'include/node/node_api.h'))) {
  console.error(`build-native: Node headers not found under ${nodedir}/include/node`);
  process.exit(1);
}
function findNodeGyp() {
  const cands = [
    path.join(root, 'node_modules/node-gyp/bin/node-gyp.js'),
    path.join(nodedir, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  try {
    const g = execFileSync('npm', ['root', '-g'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    cands.push(path.join(g, 'npm/node_modules/node-gyp/bin/node-gyp.js'));
  } catch { /* npm not on PATH */ }
  const hit = cands.find((c) => existsSync(c));
  if (!hit) throw new Error('node-gyp not found (looked in ' + cands.join(', ') + ')');
  return hit;
}
const env = { ...process.env };
delete env.npm_config_nodedir;
execFileSync(process.execPath, [findNodeGyp(), 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], {
  cwd: path.join(root, 'native'), stdio: ['ignore', 'inherit', 'inherit'], env,
});
mkdirSync(path.join(root, 'native/build'), { recursive: true });
for (const name of ['pause', 'nsexec', 'cniclient']) {
  execFileSync('cc', ['-Os', '-static', '-s', '-Wall', '-Wextra', '-Werror', '-o', path.join(root, 'native/build', name), path.join(root, 'native', name, `${name}.c`)], { stdio: 'inherit' });
}
// the mark pkg/invoke/bundle.ts's isFlaxBundle looks for at the end of an ELF file
appendFileSync(path.join(root, 'native/build/cniclient'), '\n# flax-executable cniclient\n');
