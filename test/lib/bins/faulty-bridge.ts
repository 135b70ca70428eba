/**
 * Test-only entry point: the bridge plugin with its fault seam wired to
 * FLAX_FAULT_INJECT=<step>. Production binaries (dist/bin/bridge) have no
 * such hook; tests bundle this file with `buildFaultyBridge()`.
 */
import { about, pluginMain } from '../../../plugins/pkg/skel/skel';
import { faultAt } from '../../../plugins/pkg/rollback';
import { bridge } from '../../../plugins/suite';

// as dist/bin/bridge's entry point builds it (host-local in-process), with the seam
pluginMain(bridge({ fault: faultAt(process.env.FLAX_FAULT_INJECT) }), about('bridge'));
