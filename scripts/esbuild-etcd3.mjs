// esbuild plugin for npm `etcd3` (flaxd's etcd store): its connection pool
// reads proto/rpc.proto (+ kv.proto, auth.proto) from beside its own files
// when the module is evaluated, which a bundle in dist/bin or the SEA does
// not have. The plugin parses the protos at build time, as etcd3 would
// (proto-loader, keepCase), and inlines the descriptor as JSON, loaded with
// proto-loader's fromJSON: the bundle needs no file at run time.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

export const etcd3Protos = {
  name: 'etcd3-protos',
  setup(b) {
    b.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      let src = await readFile(args.path, 'utf8');
      const call = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, \{/;
      if (!call.test(src)) throw new Error(`etcd3-protos: ${args.path} no longer loads proto/rpc.proto as expected; update scripts/esbuild-etcd3.mjs`);
      // etcd3's own proto-loader, so the descriptor matches what it would load
      const req = createRequire(args.path);
      const util = req(path.join(path.dirname(req.resolve('@grpc/proto-loader')), 'util.js'));
      const root = util.loadProtosWithOptionsSync(path.join(path.dirname(args.path), '../proto/rpc.proto'), { keepCase: true });
      src = src.replace(call, () => `(0, proto_loader_1.fromJSON)(${JSON.stringify(root.toJSON())}, {`);
      return { contents: src, loader: 'js' };
    });
  },
};
